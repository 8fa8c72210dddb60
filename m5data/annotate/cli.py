"""``m5data annotate <job>``: one sub-command per curation job; each job's verb lives beside its module.

A job module that is not there yet is skipped, like the stage verbs of ``m5data/cli.py``.
"""

from __future__ import annotations

import importlib

import typer


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("m5data"):
            return None
        raise


app = typer.Typer(no_args_is_help=True, help="Curation jobs: dedup, match-level, pools, simulate, import, aggregate, tasks, serve.")

JOBS: list[tuple[str, str, str]] = [  # verb, module, function
    ("dedup", "m5data.annotate.dedup_cli", "dedup"),
    ("match-level", "m5data.annotate.match_level_cli", "match_level"),
    ("pools", "m5data.annotate.pools_cli", "pools"),
    ("tasks", "m5data.annotate.pools_cli", "tasks"),
    ("simulate", "m5data.annotate.crowd_cli", "simulate"),
    ("import", "m5data.annotate.crowd_cli", "import_judgements"),
    ("aggregate", "m5data.annotate.crowd_cli", "aggregate"),
    ("serve", "m5data.annotate.ui.cli", "serve"),
]

for _name, _module, _func in JOBS:
    if (_mod := _import(_module)) is not None and hasattr(_mod, _func):
        app.command(_name)(getattr(_mod, _func))
