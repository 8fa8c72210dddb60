"""The align stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` in the run
the contract opens (its lock, the watermarks of ``incremental.READS``, its state) and what beside
``products`` decides its result (:func:`inputs`).

No retries: align is a deterministic global job, so a failure (bad mapping or review file) would
fail again; re-running after a fix keeps ids stable.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..stages import RunContext, StageRun
from ..storage import StageStats

SHOWN = 50  # untitled sub-classes and review-file problems kept in ``details`` (the verb shows these)


def check(settings, options: dict) -> None:
    """The ``[align]`` settings are usable, ``align.mapping`` names a mapping file that reads and a ``review``
    option names a file (ConfigError, AlignError, MappingError, ReviewError: one line naming the key or the
    file)."""
    from .mapping import Level1Mapping
    from .run import NO_MAPPING, AlignError, check_settings

    check_settings(settings)
    if not settings.align.mapping:
        raise AlignError(NO_MAPPING)
    Level1Mapping.load(settings.align.mapping)
    if options.get("review"):  # a missing --review file is refused before any work (the run reads its rows)
        from pathlib import Path

        from .review import ReviewError

        if not Path(options["review"]).is_file():
            raise ReviewError(f"review file not found: {Path(options['review'])}")


def inputs(ctx: RunContext) -> Iterable:
    """What beside ``products`` decides align's result (``incremental.inputs``): the ``[align]`` settings, the
    mapping file (``options["mapping"]``, else ``align.mapping``) and the review file by content, a renumber,
    where the review file goes."""
    from . import incremental
    from .run import REVIEW, review_target

    o, settings = ctx.options, ctx.settings
    out = review_target(settings, o.get("review_out"))
    return incremental.inputs(settings, o.get("mapping") or settings.align.mapping, o.get("review"),
                              bool(o.get("renumber")), out if out is not None else REVIEW)


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Align the store's category labels with the level-1 mapping file ``align.mapping``.

    Options: ``review`` (a reviewed file to re-apply), ``review_out``, ``renumber``, ``full`` (score
    every pair again; default: only pairs of sub-classes new or changed since the last complete run,
    and nothing when no product was written since: ``details["changes"]``). Align's counts
    and what a person must look at (unmapped level-1 names, untitled sub-classes, review-file
    problems) go into ``details``.
    """
    import contextlib

    from .run import align

    o = ctx.options
    with (_step_progress() if ctx.progress else contextlib.nullcontext(None)) as progress:
        report = align(ctx.store, ctx.settings, mapping=o.get("mapping"), review=o.get("review"),
                       review_out=o.get("review_out"), renumber=bool(o.get("renumber")), progress=progress, run=run)
    report.stats.details.update(
        subclasses=report.n_subclasses, unified_subclasses=report.n_groups, level3_labels=report.n_children,
        candidate_pairs=report.n_pairs, scored_pairs=report.n_scored,
        merged_pairs=dict(report.merges), overrides=dict(report.overrides), unmapped_level1=len(report.unmapped),
        unmapped=[[platform, name, n] for (platform, name), n in sorted(report.unmapped.items(), key=lambda kv: -kv[1])],
        untitled_subclasses=len(report.untitled), untitled=[list(key) for key in report.untitled[:SHOWN]],
        problems=report.problems[:SHOWN], review_file=str(report.review_path))
    return report.stats


def _step_progress():
    from ..console import StepProgress

    return StepProgress("align")
