"""``m5data annotate <job>``: one sub-command per curation job; each job's verb lives beside its module.

A job module that fails to import is an error, as for the verbs of m5data/stages.py: never a verb that vanishes.
"""

from __future__ import annotations

import typer

from ..stages import load
from ..verbs import VerbGroup

app = typer.Typer(no_args_is_help=True, help="Curation jobs: dedup, match-level, pools, simulate, import, aggregate, tasks, serve.")

JOBS: list[tuple[str, str, str]] = [  # verb, module, function
    ("dedup", "m5data.annotate.dedup.cli", "dedup"),
    ("match-level", "m5data.annotate.match_level.cli", "match_level"),
    ("pools", "m5data.annotate.pools.cli", "pools"),
    ("tasks", "m5data.annotate.crowd.cli", "tasks"),
    ("simulate", "m5data.annotate.crowd.cli", "simulate"),
    ("import", "m5data.annotate.crowd.cli", "import_judgements"),
    ("aggregate", "m5data.annotate.crowd.cli", "aggregate"),
    ("serve", "m5data.annotate.ui.cli", "serve"),
]

for _name, _module, _func in JOBS:
    app.command(_name)(load(f"{_module}:{_func}"))
app.add_typer(load("m5data.annotate.matcher.cli:app"), name="matcher", cls=VerbGroup)
