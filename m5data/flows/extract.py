"""Prefect task (and a one-task flow) for the extract stage: thin wrappers over extract.run.run."""

from __future__ import annotations

from prefect import flow, task


@task(name="extract", retries=1, retry_delay_seconds=10)
def extract_task(store_path: str, kinds: str = "video,audio,image,text", limit: int | None = None,
                 overrides: dict | None = None, config_file: str | None = None) -> dict:
    """Run the extract stage on the store at ``store_path``; returns the run's ``runs`` row.

    Safe to retry: a re-run only picks items that have no derived output yet.
    """
    from ..config import load
    from ..extract.run import run
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    stats = run(store, settings, kinds=kinds, limit=limit, progress=False)
    row = stats.row()
    row["by_kind"] = {f"{k}/{s}": n for (k, s), n in sorted(stats.by_kind.items())}
    return row


@flow(name="m5data-extract")
def extract_flow(store_path: str, kinds: str = "video,audio,image,text", limit: int | None = None,
                 overrides: dict | None = None) -> dict:
    """Extract everything not done yet in one store."""
    return extract_task(store_path, kinds, limit, overrides)
