"""Prefect task (and a one-task flow) for the extract stage: thin wrappers over extract.run.run."""

from __future__ import annotations

from prefect import flow, task

from .retry import TransientFailure, transient

# failure reasons of extract items that may pass on a second try (extract/jobs.py words them)
TRANSIENT_REASONS = ("timeout", "timed out", "worker process died")


@task(name="extract", retries=1, retry_delay_seconds=10, retry_condition_fn=transient)
def extract_task(store_path: str, kinds: str = "video,audio,image,text", limit: int | None = None,
                 overrides: dict | None = None, config_file: str | None = None,
                 shard: list[int] | None = None, progress: bool = False) -> dict:
    """Run the extract stage on the store at ``store_path``; returns the run's ``runs`` row.

    Items that failed transiently (an ffmpeg pass that timed out, a worker process that died)
    make the first attempt raise :class:`TransientFailure`; Prefect's retry then redoes only the
    failed items (``retry_failed``). What still fails on the retry is recorded, not raised: per-item
    failures never fail the stage. ``shard=[i, n]`` extracts only shard i of n (docs/flows.md).
    """
    from prefect.runtime import task_run

    from ..config import load
    from ..extract.run import run
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    is_retry = (task_run.run_count or 1) > 1
    stats = run(store, settings, kinds=kinds, limit=limit, progress=progress, retry_failed=is_retry,
                shard=tuple(shard) if shard else None)
    row = stats.row()
    row["failures"] = dict(stats.failures)
    row["by_kind"] = {f"{k}/{s}": n for (k, s), n in sorted(stats.by_kind.items())}
    flaky = sum(n for reason, n in stats.failures.items() if any(t in reason.lower() for t in TRANSIENT_REASONS))
    if flaky and not is_retry:
        raise TransientFailure(f"extract run {stats.run_id}: {flaky} item(s) timed out or lost their worker; "
                               "retrying those")
    return row


@flow(name="m5data-extract")
def extract_flow(store_path: str, kinds: str = "video,audio,image,text", limit: int | None = None,
                 overrides: dict | None = None) -> dict:
    """Extract everything not done yet in one store."""
    return extract_task(store_path, kinds, limit, overrides)
