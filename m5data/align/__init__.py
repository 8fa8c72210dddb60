"""Hierarchical label alignment (MEP-3M section 3.1): one 3-level taxonomy over all platforms.

    from m5data.align import run            # the stage: run(store, settings, mapping=...) -> StageStats
    from m5data.align.run import align      # same, returning an AlignReport
    from m5data.align.labels import product_labels

Modules: ``mapping`` (level-1 file), ``inventory`` (raw paths and sub-classes from products),
``similarity`` (S_label, S_content: bulk engine and simtext), ``candidates`` (pairs, decisions),
``merge`` (union-find, names, level 3, stable ids), ``review`` (review file), ``score`` (against a
truth), ``labels`` (per-product labels). The tests' and benchmark's seeded world is
``tests/support/align_world.py``.
"""

from __future__ import annotations


def run(store, settings, **kwargs):
    """The align stage (see :func:`m5data.align.run.align`)."""
    from .run import run as _run

    return _run(store, settings, **kwargs)
