"""Prefect task for the report stage: a thin wrapper over report.build.build."""

from __future__ import annotations

from prefect import task


@task(name="report", retries=0)
def report_task(store_path: str, out: str, truth: str | None = None, overrides: dict | None = None,
                config_file: str | None = None) -> dict:
    """Write the store's HTML report into ``out``; returns the run's ``runs`` row plus the page's path."""
    from ..config import load
    from ..report.build import build
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    result = build(Store.from_settings(settings), settings, out=out, truth=truth)
    row = result.stats.row()
    row.update(index=str(result.index), empty_sections=result.empty_sections)
    return row
