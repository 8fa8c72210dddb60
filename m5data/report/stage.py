"""The report stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``."""

from __future__ import annotations

import contextlib

from ..stages import RunContext
from ..storage import StageStats


def check(settings, options: dict) -> None:
    """The ``[report]`` settings are usable (ConfigError naming the key). Its folder is checked by the run,
    against the store it reads."""
    from .build import check_settings

    check_settings(settings)


def run(ctx: RunContext) -> StageStats:
    """Write the store's HTML report into :func:`report_folder` (or ``options["out"]``); its page in ``details``.

    Options: ``truth`` (a demo shop's truth folder), ``train_run`` (a training run folder), ``full``
    (write it even when nothing it reads changed since its last complete run: by default that run
    does nothing and says ``new 0, changed 0, unchanged N`` in ``details["changes"]``).
    """
    from .build import build

    with (_status() if ctx.progress else contextlib.nullcontext(None)) as progress:
        result = build(ctx.store, ctx.settings, out=ctx.options.get("out") or report_folder(ctx.settings),
                       truth=ctx.options.get("truth"), train_run=ctx.options.get("train_run"),
                       full=bool(ctx.options.get("full")), progress=progress)
    result.stats.details.update(index=str(result.index), empty_sections=result.empty_sections,
                                sections=len(result.sections), figures=len(result.figures))
    return result.stats


@contextlib.contextmanager
def _status():
    """The section being written, on a rich status line shown from the first section on (a report
    whose folder or store fails its checks prints its error alone)."""
    from ..console import console

    status = None

    def show(section: str) -> None:
        nonlocal status
        if status is None:
            status = console.status("writing the report ...")
            status.start()
        status.update(f"report: {section} ...")

    try:
        yield show
    finally:
        if status is not None:
            status.stop()


def report_folder(settings) -> str:
    """Where the report stage writes the HTML report: ``report.out``, else beside the store (a store
    on object storage has no folder beside it: ``m5data-report`` in the working directory)."""
    from pathlib import Path

    from ..storage.location import local_folder

    if settings.report.out:
        return settings.report.out
    folder = local_folder(settings.store_path)
    return str((Path.cwd() if folder is None else folder.absolute().parent) / "m5data-report")
