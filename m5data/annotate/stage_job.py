"""What every curation stage's ``run(ctx, run)`` (``annotate/<stage>/stage.py``; ``run(ctx)`` for one whose
work opens its own run) shares: its job function called on the context's store and settings (and the run
the contract opened), with its steps shown, and the job's report in ``details``.

No retries: the curation stages are deterministic global jobs over the store; a failure would fail again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from ..stages import RunContext, StageRun
from ..storage import StageStats


def run_job(ctx: RunContext, name: str, work: Callable, *, run: StageRun | None = None, status: str | None = None,
            bar: bool = False, **kwargs) -> StageStats:
    """Stage ``name``'s ``work(store, settings, **kwargs)``, a job returning a report with ``stats``; the
    report's other fields go into ``stats.details``. ``run``: the run the contract opened (a stage it owns,
    ``stages.call``), passed on as ``work(..., run=run)``; None: a stage whose work opens its own. With
    ``ctx.progress`` its steps are shown: a bar (``bar``) or a status line (``status``: what it does) it
    updates as ``progress(step, done, total)``."""
    with _progress(name, status, bar) if ctx.progress else contextlib.nullcontext(None) as progress:
        if progress is not None:
            kwargs["progress"] = progress
        if run is not None:
            kwargs["run"] = run
        report = work(ctx.store, ctx.settings, **kwargs)
    report.stats.details.update(report_details(report))
    return report.stats


def report_details(report) -> dict:
    """A job report's fields as plain values for ``details`` (its stats and written rows left out)."""
    out = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if f.name in ("stats", "table"):
            continue
        if isinstance(value, Mapping):
            value = {str(k): v for k, v in value.items()}
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


@contextlib.contextmanager
def _progress(name: str, status: str | None, bar: bool):
    from ..console import StepProgress, console

    if bar:
        with StepProgress(name, transient=True) as steps:
            yield steps
    elif status:
        label = name.replace("_", "-")
        with console.status(f"[bold]{label}[/] {status}") as line:
            yield lambda step, done, total: line.update(f"[bold]{label}[/] {step} {done}/{total}")
    else:
        yield None
