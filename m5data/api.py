"""The Python API: open a store and run a stage from Python, as the ``m5data`` verbs do.

    from m5data.api import open_store, run_stage

    stats = run_stage("splits", "m5data-store")          # what `m5data build-splits` runs (after align)
    products = open_store("m5data-store").read("products")

Settings are built as a verb builds them (defaults < ``m5data.toml`` or ``config`` < ``M5DATA_*``
environment variables < ``overrides``), and a stage runs through its registry entry
(m5data/stages.py): the same ``run(ctx)`` that its verb and ``m5data run``'s task call. The README's
"Python API" section runs this way (tests/contract/test_docs.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import config as cfg
from . import stages


def settings(store: str | Path | None = None, *, config: str | Path | None = None,
             overrides: dict[str, Any] | None = None) -> cfg.Settings:
    """The effective settings, with ``store`` (a folder or ``s3://bucket/prefix``) as ``store.path``.

    Args:
        config: a TOML settings file (default: ``./m5data.toml`` when there is one).
        overrides: settings by key, as ``--set`` gives them (``{"crawl.max_pages": 10}``).
    """
    values = {**(overrides or {}), **({"store.path": str(store)} if store is not None else {})}
    return cfg.load(config, values)


def open_store(store: str | Path | None = None, *, config: str | Path | None = None, create: bool = False):
    """The :class:`~m5data.storage.Store` at ``store`` (default: ``store.path``), read and written
    with its settings (compression, part size); ``create`` makes it when it is missing."""
    from .storage import Store

    return Store.from_settings(settings(store, config=config), create=create)


def run_stage(name: str, store: str | Path | None = None, *, config: str | Path | None = None,
              overrides: dict[str, Any] | None = None, create: bool = False, progress: bool = False,
              **options: Any):
    """Run the registered stage ``name`` (crawl, download, extract, align, dedup, match_level, pools, crowd,
    matcher, splits, export, report, train) over ``store`` once; its :class:`~m5data.storage.StageStats`.

    Args:
        options: the stage's own options, as its verb passes them (crawl: ``start_urls=[...]``;
            crowd: ``method="majority"``; splits: ``version="v2"``; global stages: ``full=True``).
        create: create the store when it is missing.
        progress: show the stage's progress bars.

    An unknown ``name`` raises :class:`~m5data.stages.UnknownStage` (a KeyError) naming the stages, and the
    stage a verb's name runs (``"build-splits"``: ``'splits'``). A stage's errors are raised as they are (``stages.TransientFailure`` carries the run's stats). It
    runs holding its lock as its verb does (``stages.call``): StoreBusy while another run of it lives. What
    the stage's check refuses (a bad setting or option) is refused before any work, as by its verb: no run.
    """
    stages.get(name)  # an unknown name: UnknownStage in one line (a KeyError too), before any work
    ctx = stages.RunContext(settings(store, config=config, overrides=overrides), options=options,
                            create=create, progress=progress)
    stages.check(name, ctx.settings, ctx.options)
    return stages.call(name, ctx)


def read(table: str, store: str | Path | None = None, *, config: str | Path | None = None,
         columns: list[str] | None = None, where: str | None = None, overrides: dict[str, Any] | None = None):
    """The table ``table``'s rows as they may leave the store (an Arrow table): through the egress gate
    (m5data/egress/gate.py), without the rows of taken-down and opted-out products and with personal data
    masked in its text columns (``export.mask_personal_data``), as ``m5data sql``'s views and the exports
    give them. ``columns``/``where`` as :meth:`~m5data.storage.Store.read` (a ``where`` on the table's own
    columns). ``open_store(...).read(...)`` is the store's raw record (every row, as crawled), as
    ``m5data sql``'s ``raw.<table>``."""
    from .egress.gate import Gate

    s = settings(store, config=config, overrides=overrides)
    from .storage import Store

    opened = Store.from_settings(s)
    return Gate.of(opened, s).rows(opened.read(table, where=where, columns=columns))
