"""Shared setup of the export tests: a writable copy of the demo store with a split version."""

from __future__ import annotations

from pathlib import Path

from m5data.storage import Store

SPLITS = ("train", "query-c", "gallery-c", "cls-train", "cls-test")


def split_rows(product_ids: list[str], version: str = "v1") -> list[dict]:
    """A deterministic split version: every 5th product a coarse query, the next a gallery item,
    the rest train; every 7th product also in cls-test, every 3rd in cls-train (a product may sit
    in several splits, as in the papers' classification subsets)."""
    rows = []
    for i, pid in enumerate(sorted(product_ids)):
        main = {0: "query-c", 1: "gallery-c"}.get(i % 5, "train")
        rows.append({"product_id": pid, "split": main, "version": version})
        if i % 7 == 0:
            rows.append({"product_id": pid, "split": "cls-test", "version": version})
        elif i % 3 == 0:
            rows.append({"product_id": pid, "split": "cls-train", "version": version})
    return rows


def store_with_splits(src: Path, dst_parent: Path, version: str = "v1") -> Store:
    from support.demo_fixtures import copy_store

    store = Store.open(copy_store(src, dst_parent))
    ids = [r["product_id"] for r in store.read("products", columns=["product_id"]).to_pylist()]
    store.write("splits", split_rows(ids, version))
    return store


def settings_for(store: Store, **overrides):
    from m5data.config import load

    return load(None, {"store.path": str(store.root), **overrides}, environ={})


def export_demo(demo_store_factory, root: Path, fmt: str, *, shard_size: int, workers: int):
    """``(store, root, report)`` of one ``fmt`` export into ``root/out`` of a writable copy (in
    ``root``) of the 60-product demo store with split version v1: each format's module fixture."""
    from m5data.export.run import export

    store = store_with_splits(demo_store_factory(products=60, seed=0), root)
    report = export(store, settings_for(store, **{"export.shard_size": shard_size, "export.workers": workers}),
                    out=root / "out", fmt=fmt)
    return store, root, report


def killed_export(store: Store, settings, out: Path, **options) -> None:
    """An export (``m5data.export.run.export``) interrupted by a KeyboardInterrupt as its second unit of work
    ends (as Ctrl-C would), so that a test can resume it."""
    import pytest

    from m5data.export.run import export

    calls = []

    def stop(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(store, settings, out=out, progress=stop, **options)
