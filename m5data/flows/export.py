"""Prefect task (and a one-task flow) for the export stage: thin wrappers over export.run.export."""

from __future__ import annotations

from prefect import flow, task


@task(name="export", retries=1, retry_delay_seconds=10)
def export_task(store_path: str, split: str = "all", fmt: str = "webdataset", out: str | None = None,
                version: str | None = None, overrides: dict | None = None, config_file: str | None = None) -> dict:
    """Export a split version from the store at ``store_path``; returns the run's ``runs`` row plus the export's counts.

    Safe to retry: a re-run skips every finished shard.

    Args:
        store_path: the store.
        split: a split name or ``all``.
        fmt: ``webdataset``, ``parquet`` or ``m5product``.
        out: output folder (default ``<store>/exports/<version>-<fmt>-<split>``).
        version: split version (default: the latest written).
        overrides: settings as ``{"section.key": value}``.
        config_file: a TOML settings file.
    """
    from pathlib import Path

    from ..config import load
    from ..export.run import export
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    if out is None:  # one folder per version, format and split: a new split version never meets an old plan
        from ..export.samples import latest_version

        from ..export.samples import plain_name

        version = version or latest_version(store)
        if version is not None:  # both become a folder name: never one that leads out of exports/
            plain_name("split version", version)
        plain_name("split", split)
        out = str(Path(store.root) / "exports" / f"{version}-{fmt}-{split}")
    report = export(store, settings, out=out, split=split, fmt=fmt, version=version)
    row = report.stats.row()
    row["failures"] = dict(report.stats.failures)
    row.update(out=str(report.out), format=report.fmt, version=report.version, splits=report.splits,
               shards=report.shards, shards_written=report.shards_written, shards_skipped=report.shards_skipped)
    return row


@flow(name="m5data-export")
def export_flow(store_path: str, split: str = "all", fmt: str = "webdataset", out: str | None = None,
                version: str | None = None, overrides: dict | None = None) -> dict:
    """Export one store's split version in one layout."""
    return export_task(store_path, split, fmt, out, version, overrides)
