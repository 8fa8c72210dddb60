"""The extract stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` and its
``check(settings, options)``."""

from __future__ import annotations

from ..stages import RunContext, StageRun, TransientFailure
from .run import ExtractStats

# failure reasons of extract items that may pass on a second try (extract/jobs.py words them)
TRANSIENT_REASONS = ("timeout", "timed out", "worker process died")


def check(settings, options: dict) -> None:
    """What extract cannot run with, refused before any work (ExtractError): ``extract.kinds`` naming an
    unknown kind (video, audio, image, text are), a negative ``options["limit"]``, the ``[extract]``
    settings config.py does not check itself and what the kinds asked need here (ffprobe, the face model)."""
    from .run import check_run

    check_run(settings, settings.extract.kinds, options.get("limit"))


def run(ctx: RunContext, run: StageRun) -> ExtractStats:
    """Extract what has no derived output yet (``extract.kinds``; options: ``limit`` items per kind,
    ``retry_failed``: also redo the failed ones), in the run the contract opened (stages.call: the
    extract's lock, the shard's for a shard).

    Items that failed transiently (an ffmpeg pass that timed out, a worker process that died)
    make the first attempt raise :class:`TransientFailure`; the flow's retry (``ctx.attempt`` 2)
    then redoes only the failed items. What still fails on the retry is recorded, not raised:
    per-item failures never fail the stage. ``options["shard"] = [i, n]``: only shard i of n.
    """
    from .run import run as extract

    is_retry = ctx.attempt > 1
    stats = extract(ctx.store, ctx.settings, kinds=ctx.settings.extract.kinds,
                    limit=ctx.options.get("limit"), progress=ctx.progress, retry_failed=is_retry or bool(ctx.options.get("retry_failed")),
                    shard=ctx.shard, run=run)
    stats.details["by_kind"] = {f"{k}/{s}": n for (k, s), n in sorted(stats.by_kind.items())}
    flaky = sum(n for reason, n in stats.failures.items() if any(t in reason.lower() for t in TRANSIENT_REASONS))
    if flaky and not is_retry:
        raise TransientFailure(f"extract run {stats.run_id}: {flaky} item(s) timed out or lost their worker; "
                               "retrying those", stats)
    return stats
