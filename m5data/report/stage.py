"""The report stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` in the run
the contract opens (its lock, the watermarks of ``incremental.READS``, its state) and what beside the
tables decides the page (:func:`inputs`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from ..stages import RunContext, StageRun
from ..storage import StageStats


def check(settings, options: dict) -> None:
    """The ``[report]`` settings are usable (ConfigError naming the key) and, for a store in a folder, the
    report folder (``options["out"]``, else :func:`report_folder`) may be written (ReportError: inside or
    above the store, holding the working directory or files the report did not write), refused before
    any work (no run, no ``runs`` row). The run checks the folder again against the store it opened (on
    object storage: only there)."""
    from ..storage.location import local_folder
    from . import folder
    from .build import ReportError, check_settings

    check_settings(settings)
    root = local_folder(settings.store_path)
    if root is not None:
        try:
            folder.check(Path(options.get("out") or report_folder(settings)), root)
        except folder.FolderError as exc:
            raise ReportError(str(exc)) from None


def out_folder(ctx: RunContext) -> Path:
    """The report folder of a run (``options["out"]``, else :func:`report_folder`), absolute and resolved as
    the run's folder check (``folder.check``) makes it."""
    return Path(ctx.options.get("out") or report_folder(ctx.settings)).absolute().resolve()


def inputs(ctx: RunContext) -> Iterable:
    """What beside the tables decides the page (``incremental.inputs``): the ``[report]`` settings, the
    folder, the truth and training run folders (their files' names, sizes and times)."""
    from .incremental import inputs as of

    return of(ctx.settings, out_folder(ctx), ctx.options.get("truth"), ctx.options.get("train_run"))


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Write the store's HTML report into :func:`report_folder` (or ``options["out"]``); its page in ``details``.

    Options: ``truth`` (a demo shop's truth folder), ``train_run`` (a training run folder), ``full``
    (write it even when nothing it reads changed since its last complete run: by default that run
    does nothing and says ``new 0, changed 0, unchanged N`` in ``details["changes"]``).
    """
    from .build import build

    with (_status() if ctx.progress else contextlib.nullcontext(None)) as progress:
        result = build(ctx.store, ctx.settings, out=ctx.options.get("out") or report_folder(ctx.settings),
                       truth=ctx.options.get("truth"), train_run=ctx.options.get("train_run"), progress=progress,
                       run=run)
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
