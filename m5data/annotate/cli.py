"""``m5data annotate <verb>``: the curation stages' verbs (m5data/stages.py, ``parent="annotate"``), each
beside its stage's package."""

from __future__ import annotations

import typer

from ..verbs import mount

app = typer.Typer(no_args_is_help=True, help="Curation stages: dedup, match-level, pools, tasks, simulate, import, "
                                             "aggregate, serve, matcher.")
mount(app, "annotate")
