"""Shared setup of the export tests: a writable copy of the demo store with a split version."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow as pa

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


def hashed_splits(ids, version: str) -> list[dict]:
    rows = []
    for pid in ids:
        h = int(hashlib.sha256(pid.encode()).hexdigest(), 16)
        rows.append({"product_id": pid, "split": {0: "query-c", 1: "gallery-c"}.get(h % 5, "train"), "version": version})
        if h % 7 == 0:
            rows.append({"product_id": pid, "split": "cls-test", "version": version})
    return rows


def samples_of(folder: Path) -> dict:
    """``{(split, key): {field: bytes}}`` of every shard the folder's indexes list (inherited ones too)."""
    out = {}
    for index in sorted(folder.glob("*.index.json")):
        split = json.loads(index.read_text())["name"]
        for entry in json.loads(index.read_text())["shardlist"]:
            with tarfile.open(folder / entry["url"]) as tar:
                for m in tar:
                    key, field = m.name.split(".", 1)
                    assert field not in out.setdefault((split, key), {}), f"{m.name} twice"
                    out[(split, key)][field] = tar.extractfile(m).read()
    return out


def written_keys(folder: Path) -> set:
    """``(split, key)`` of the samples in the shards the folder wrote from the store (not inherited, not copies)."""
    out = set()
    for index in folder.glob("*.index.json"):
        split = json.loads(index.read_text())["name"]
        for entry in json.loads(index.read_text())["shardlist"]:
            if "-kept-" not in entry["url"] and "-inherited-" not in entry["url"]:
                with tarfile.open(folder / entry["url"]) as tar:
                    out |= {(split, m.name.split(".", 1)[0]) for m in tar}
    return out


def same_members(store, version: str, new: str) -> list[tuple[str, str]]:
    """Write split version ``new`` with the members of ``version``; its ``(split, product_id)``."""
    import pyarrow.compute as pc

    rows = store.read("splits")
    rows = rows.filter(pc.equal(rows.column("version"), version))
    store.write("splits", rows.set_column(rows.schema.get_field_index("version"), "version",
                                          pa.array([new] * rows.num_rows, pa.string())))
    return list(zip(rows.column("split").to_pylist(), rows.column("product_id").to_pylist()))


def shard_of(folder: Path, split: str, key: str) -> str:
    for entry in json.loads((folder / f"{split}.index.json").read_text())["shardlist"]:
        with tarfile.open(folder / entry["url"]) as tar:
            if any(m.name.startswith(key + ".") for m in tar):
                return entry["url"]
    raise AssertionError(f"{key} in no shard")


def version_ids(store: Store, version: str) -> set[str]:
    rows = store.read("splits", columns=["product_id", "version"]).to_pylist()
    return {r["product_id"] for r in rows if r["version"] == version}


def folder_files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
