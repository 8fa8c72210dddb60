"""The align stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``.

No retries: align is a deterministic global job, so a failure (bad mapping or review file) would
fail again; re-running after a fix keeps ids stable.
"""

from __future__ import annotations

from ..stages import RunContext
from ..storage import StageStats


def run(ctx: RunContext) -> StageStats:
    """Align the store's category labels with ``options["mapping"]``; align's counts go into ``details``."""
    from .run import align

    report = align(ctx.store, ctx.settings, mapping=ctx.options.get("mapping"), review=ctx.options.get("review"))
    report.stats.details.update(
        subclasses=report.n_subclasses, unified_subclasses=report.n_groups, level3_labels=report.n_children,
        merged_pairs=dict(report.merges), unmapped_level1=len(report.unmapped),
        untitled_subclasses=len(report.untitled), review_file=str(report.review_path))
    return report.stats
