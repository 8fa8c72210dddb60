"""Prefect task (and a one-task flow) for the splits stage: a thin wrapper over ``m5data.splits.build``."""

from __future__ import annotations

from prefect import flow, task


@task(name="splits", retries=0)
def splits_task(store_path: str, version: str | None = None, seed: int | None = None,
                overrides: dict | None = None, config_file: str | None = None) -> dict:
    """Build one split version; returns the run's ``runs`` row plus the manifest's per-split products.

    No retries: the assignment is a deterministic global job; a failure (a version built with other
    settings, an empty store) would fail again.
    """
    from ..config import load
    from ..splits import build
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    report = build(store, settings, version=version, seed=seed)
    row = report.stats.row()
    row["failures"] = dict(report.stats.failures)
    row.update(version=report.version, manifest=str(report.manifest), groups=report.groups.source,
               splits={name: entry["products"] for name, entry in report.splits.items()},
               held_out=report.held_out, moved=report.moved)
    return row


def incremental_version(store, default: str) -> str:
    """The split version a pipeline run builds, so that a later run on a grown store keeps the old version intact.

    A store without splits gets ``default``. Otherwise the newest version (by the number it ends
    with) is built again when the store still holds what it was built from (same product count, no
    product crawled since its manifest was written): a re-run changes nothing. When products were
    added or re-crawled since, the next version is built (``v1`` -> ``v2``) and the old one is kept.
    """
    import json
    import re
    from datetime import datetime

    con = store.connect()
    try:
        from ..splits.names import name_problem

        # a version name is a folder name (derived/splits/<version>/): one that is not plain is ignored
        versions = [r[0] for r in con.execute("SELECT DISTINCT version FROM splits").fetchall() if not name_problem(r[0])]
        products, newest = con.execute("SELECT count(*), max(crawled_at) FROM products").fetchone()
    finally:
        con.close()
    if not versions:
        return default

    def number(v: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", v)
        return (int(m.group(1)) if m else 0, v)

    latest = max(versions, key=number)
    manifest = store.root / "derived" / "splits" / latest / "manifest.json"
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        built = datetime.fromisoformat(info["created_at"])
        unchanged = info.get("products") == products and (newest is None or newest <= built)
    except (OSError, ValueError, KeyError, TypeError):
        unchanged = False
    if unchanged:
        return latest
    m = re.search(r"(\d+)$", latest)
    stem, n = (latest[: m.start()], int(m.group(1))) if m else (latest + "-", 1)
    candidate = f"{stem}{n + 1}"
    while candidate in versions:
        n += 1
        candidate = f"{stem}{n + 1}"
    return candidate


@flow(name="m5data-splits")
def splits_flow(store_path: str, version: str | None = None, seed: int | None = None,
                overrides: dict | None = None) -> dict:
    """Build one split version of a store."""
    return splits_task(store_path, version, seed, overrides)
