"""The report stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``."""

from __future__ import annotations

from ..stages import RunContext
from ..storage import StageStats


def run(ctx: RunContext) -> StageStats:
    """Write the store's HTML report into :func:`report_folder` (or ``options["out"]``); its page in ``details``."""
    from .build import build

    result = build(ctx.store, ctx.settings, out=ctx.options.get("out") or report_folder(ctx.settings),
                   truth=ctx.options.get("truth"))
    result.stats.details.update(index=str(result.index), empty_sections=result.empty_sections)
    return result.stats


def report_folder(settings) -> str:
    """Where the report stage writes the HTML report: ``flows.report_out``, else beside the store."""
    return settings.flows.report_out or str(settings.store_path.absolute().parent / "m5data-report")
