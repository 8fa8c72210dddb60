"""A cluster's scheduler going away while the shards of a stage run.

When the Dask client loses its scheduler (the process died, its machine went away, or it stopped
answering), the shards it had submitted are lost to this run: distributed cancels every future of
the client at once (reason ``scheduler-connection-lost``), and nothing tells the flow how the
shards on the workers end. :func:`wait_shards` waits for the shards of one stage and says when that
happened, so that the stage becomes fatal with one line (``dask runner: scheduler tcp://... went
away during download (...)``) instead of a traceback about an unfinished task run;
:func:`record_lost_run` keeps a ``runs`` row of the lost stage run with that reason. The store
needs nothing else: every shard resumes from it (docs/flows.md, "When the scheduler goes away").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

LOST_REASON = "scheduler went away"
POLL_SECONDS = 5.0  # how often a stage waiting for its shards asks whether the scheduler still answers


def _dask_futures(futures) -> list | None:
    """The distributed futures behind prefect-dask's futures, or None for another task runner."""
    wrapped = [getattr(f, "wrapped_future", None) for f in futures]
    if not wrapped or not all(hasattr(w, "client") and hasattr(w, "cancelled") for w in wrapped):
        return None
    return wrapped


def _answers(client, timeout: float) -> bool:
    """Whether the scheduler of ``client`` answers an identity call within ``timeout`` seconds."""
    async def ping():
        await asyncio.wait_for(client.scheduler.identity(), timeout)

    try:
        client.sync(ping)
        return True
    except Exception:  # a closed comm, a refused connection, a timeout: all mean no answer
        return False


def _cancelled_reason(future) -> str:
    """Why distributed cancelled ``future`` (``scheduler-connection-lost`` when the client lost its scheduler)."""
    try:
        future.result(timeout=5)  # a cancelled future raises at once; timeout=0 would time out before looking
    except BaseException as exc:  # noqa: BLE001 - FutureCancelledError carries the reason
        return str(getattr(exc, "reason", "") or type(exc).__name__)
    return ""


def _until_done(futures, seconds: float) -> None:
    """Sleep until every future is done (or cancelled), at most ``seconds``.

    Polls ``done()``: ``distributed.wait`` needs a default client, and prefect-dask's is not one.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(f.done() for f in futures):
        time.sleep(0.1)


def wait_shards(futures, stage: str, timeout: float) -> tuple[str, list[int]] | None:
    """Wait for the shard futures of ``stage``; if the scheduler went away, the stage's one-line fatal
    message and the shards lost with it.

    For Dask futures the wait is bounded: every :data:`POLL_SECONDS` the scheduler is asked to
    answer, and one that does not answer within ``timeout`` seconds counts as gone (a hung or
    unreachable scheduler would otherwise keep the run waiting forever). Other task runners'
    futures are waited for as before, with no bound.

    Returns:
        None when every shard ended (ok or failed: the caller reads their states), else
        ``("dask runner: scheduler <address> went away during <stage> (...)", [shard, ...])``.
    """
    from prefect.futures import wait

    dask = _dask_futures(futures)
    if dask is None:
        wait(futures)
        return None
    client = dask[0].client
    address = getattr(client.scheduler, "address", None) or "(unknown address)"
    while True:
        _until_done(dask, POLL_SECONDS)
        cancelled = [i for i, f in enumerate(dask) if f.cancelled()]
        unfinished = [i for i, f in enumerate(dask) if not f.done()]
        if cancelled:
            reason = _cancelled_reason(dask[cancelled[0]])
            why = "the client lost its connection" if reason == "scheduler-connection-lost" else f"cancelled: {reason}"
            lost = sorted(cancelled + unfinished)
            return lost_message(address, stage, lost, len(dask), why), lost
        if not unfinished:
            wait(futures)  # done: this fetches each shard's final state (prefect-dask keeps it on the future)
            return None
        if not _answers(client, timeout):
            why = f"it did not answer for {timeout:g} s"
            return lost_message(address, stage, unfinished, len(dask), why), unfinished


def lost_message(address: str, stage: str, shards: list[int], n: int, why: str) -> str:
    """``dask runner: scheduler tcp://h:p went away during download (shards 0, 1 of 2 lost with it: why) ...``."""
    which = ", ".join(str(i) for i in shards)
    return (f"dask runner: scheduler {address} went away during {stage} (shard{'s' if len(shards) > 1 else ''} "
            f"{which} of {n} lost with it: {why}); run again to resume from the store")


def record_lost_run(store_path: str, stage: str, message: str, n_lost: int, settings) -> str | None:
    """Write the lost stage run's ``runs`` row (status ``failed``, reason :data:`LOST_REASON`); its run id.

    The shards on the workers may still write rows of their own when they end (they lost only
    their scheduler); this row is the flow's account of the run it gave up on. Never raises: the
    run is already failing, and the message reaches the user anyway.
    """
    from .. import config as cfg
    from ..stage_run import record
    from ..storage import StageStats, Store

    try:
        stats = StageStats(stage=stage, n_failed=0)
        stats.failures[LOST_REASON] = n_lost  # shards lost with the scheduler
        # no lock: the lost shards may still hold theirs; this is the flow's account of the run
        record(Store.open(store_path), stats, {**cfg.as_dict(settings), "message": message}, "failed")
        return stats.run_id
    except Exception as exc:  # noqa: BLE001 - the store may be what went away with the cluster
        logging.getLogger(__name__).warning(f"could not write the lost {stage} run's runs row: {exc}")
        return None


class _DropReconnectCancel(logging.Filter):
    """distributed logs a traceback when a client that is reconnecting to a dead scheduler is closed
    (its reconnect loop is cancelled): noise once the run has said the scheduler went away."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


@contextlib.contextmanager
def quiet_lost_client() -> Iterator[None]:
    """Drop distributed.client's CancelledError tracebacks while a task runner's client closes."""
    logger = logging.getLogger("distributed.client")
    flt = _DropReconnectCancel()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)
