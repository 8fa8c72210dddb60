"""Prefect tasks for the annotate jobs: thin wrappers over ``m5data.annotate.<job>.run``."""

from __future__ import annotations

import importlib

from prefect import flow, task

JOBS = ("dedup", "match_level", "pools", "crowd")


@task(name="annotate", retries=0, task_run_name="annotate-{job}")
def annotate_task(store_path: str, job: str, overrides: dict | None = None, config_file: str | None = None,
                  options: dict | None = None) -> dict:
    """Run one annotate job (``dedup``, ``match_level``, ``pools``, ``crowd``) on a store; returns its ``runs`` row.

    No retries: the jobs are deterministic global jobs over the store; a failure would fail again.
    """
    from ..config import load
    from ..storage import Store

    if job not in JOBS:
        raise ValueError(f"unknown annotate job {job!r} (jobs: {', '.join(JOBS)})")
    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    stats = importlib.import_module(f"m5data.annotate.{job}").run(store, settings, **(options or {}))
    row = stats.row()
    row["failures"] = dict(stats.failures)
    return row


@flow(name="m5data-annotate")
def annotate_flow(store_path: str, jobs: list[str] | None = None, overrides: dict | None = None) -> dict:
    """Run the annotate jobs in order (default: dedup, match_level, pools)."""
    return {job: annotate_task(store_path, job, overrides) for job in (jobs or ["dedup", "match_level", "pools"])}
