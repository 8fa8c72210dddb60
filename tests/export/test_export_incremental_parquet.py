"""Incremental Hugging Face Parquet exports (m5data/export/incremental.py, carry.py): a new split version's
export writes only the files of new and changed samples, takes the others over from the previous version's
folder (hard links under this folder's Hub names; S3: server-side copies), copies a file that lost samples
without them (its rows filtered, no store read), and ``datasets.load_dataset("parquet", data_dir=...)`` of
the folder, copied alone, gives the rows of a full export of the same version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.export_helpers import hashed_splits, killed_export
from support.grow_store import grow, product_ids
from test_export_incremental import assert_self_contained, grown, mirrored  # noqa: F401 (grown: the fixture)

from m5data.export.check import check_shards
from m5data.export.run import export
from m5data.storage import Store


def changed_copy(fixture, tmp_path: Path, out: str) -> tuple:
    """A copy of the grown store with ``v3`` exported as Parquet into ``out``/v3-parquet-all, then three new
    products and one re-written title (split version ``v5``); (the copy, its settings)."""
    from support.demo_fixtures import copy_store

    store, settings, _, _ = fixture
    copy = Store.open(copy_store(store.root, tmp_path))
    export(copy, settings, out=f"{out}/v3-parquet-all", fmt="parquet", version="v3")
    grow(copy, "p", 3, sorted(product_ids(copy))[3])
    copy.write("splits", hashed_splits(product_ids(copy), "v5"))
    return copy, settings


def rows_of(folder: Path, cache: Path) -> dict:
    """Every split's rows as ``load_dataset("parquet", data_dir=folder)`` reads them, sorted by product id."""
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(folder), cache_dir=str(cache))
    return {name: d.data.table.sort_by("product_id").replace_schema_metadata(None) for name, d in ds.items()}


def same_rows(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for split, table in want.items():
        assert got[split].num_rows == table.num_rows, split
        assert got[split].to_pylist() == table.to_pylist(), split


def test_an_incremental_parquet_export_takes_files_over_and_loads_the_rows_of_a_full_one(grown, tmp_path):  # noqa: F811
    parent = tmp_path / "exports"
    store, settings = changed_copy(grown, tmp_path / "store", str(parent))
    v5 = export(store, settings, out=parent / "v5-parquet-all", fmt="parquet")
    assert v5.base == "v3-parquet-all" and v5.full_because == ""
    assert v5.shards_inherited > 0 and v5.shards_kept >= 1  # the re-written product's old file, copied without it
    assert v5.shards_written == v5.shards - v5.shards_inherited < v5.shards
    assert v5.changes["changed"] == 1 and v5.changes["new"] >= 1
    assert v5.stats.details["taken_over"] == {"link": v5.shards_inherited}
    full = export(store, settings, out=tmp_path / "full", fmt="parquet", version="v5", full=True)
    assert full.shards_inherited == 0 and full.shards_written == full.shards
    out = Path(v5.out)
    same_rows(rows_of(out, tmp_path / "hf1"), want := rows_of(tmp_path / "full", tmp_path / "hf2"))
    # every file carries the Hub's name with its split's count; taken-over ones are v3's files (hard links)
    files = sorted(p.relative_to(out).as_posix() for p in (out / "data").iterdir())
    stats = json.loads((out / "_stats.json").read_text())["splits"]
    assert files == sorted(f["path"] for s in stats.values() for f in s["files"])
    for split, s in stats.items():
        count = len(s["files"])
        assert sorted(f["path"] for f in s["files"]) == [f"data/{split.replace('-', '_')}-{i:05d}-of-{count:05d}.parquet"
                                                         for i in range(count)]
    taken = [json.loads(p.read_text()) for p in (out / "_shards").glob("*-of-*.stats.json")]
    taken = [t for t in taken if "inherited_from" in t]
    assert len(taken) == v5.shards_inherited
    for t in taken:
        assert os.path.samefile(out / t["path"], parent / t["inherited_from"])
    # the card counts the folder's own rows and files
    assert {s: v["nsamples"] for s, v in stats.items()} == {s: v["nsamples"] for s, v in json.loads(
        (tmp_path / "full" / "_stats.json").read_text())["splits"].items()}
    assert_self_contained(out)
    # copied alone, with v3 removed: it checks clean and loads the same rows
    alone = tmp_path / "alone" / "v5"
    shutil.copytree(out, alone)
    shutil.rmtree(parent / "v3-parquet-all")
    report = check_shards(alone)
    assert report.ok and report.samples == full.stats.n_in, report.problems
    same_rows(rows_of(alone, tmp_path / "hf3"), want)
    assert check_shards(out).ok  # the hard links outlive the folder they came from


def test_an_incremental_parquet_export_on_object_storage(grown, aws, tmp_path):  # noqa: F811
    """On s3://: v5 takes v3's unchanged files over by server-side copies into its own prefix and copies the
    re-written product's old file without it; read back, it loads the rows of a full local export, and
    checks clean once v3's objects are gone."""
    pytest.importorskip("s3fs")
    parent = f"s3://{aws['bucket']}/incpq-{tmp_path.name}"
    store, settings = changed_copy(grown, tmp_path / "store", parent)
    v5 = export(store, settings, out=f"{parent}/v5-parquet-all", fmt="parquet")
    assert v5.base == "v3-parquet-all" and v5.shards_inherited > 0 and v5.shards_kept >= 1
    assert v5.stats.details["taken_over"] == {"server copy": v5.shards_inherited}
    client, prefix = aws["client"], parent.split("/", 3)[3]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=aws["bucket"], Prefix=f"{prefix}/v3-parquet-all/"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=aws["bucket"], Key=obj["Key"])
    report = check_shards(f"{parent}/v5-parquet-all")
    assert report.ok, report.problems
    mirror = mirrored(aws, parent, tmp_path / "mirror") / "v5-parquet-all"
    assert_self_contained(mirror)
    export(store, settings, out=tmp_path / "full", fmt="parquet", version="v5", full=True)
    same_rows(rows_of(mirror, tmp_path / "hf1"), rows_of(tmp_path / "full", tmp_path / "hf2"))


def test_a_shard_is_taken_over_by_a_copy_where_the_file_system_has_no_hard_link(tmp_path, monkeypatch):
    """``carry.link_or_copy``: a hard link where it can; a whole copy (through a temp name) where ``os.link``
    fails (another file system: EXDEV); a missing source is an error, and no temp file is left."""
    import errno

    from m5data.export import carry

    src = tmp_path / "a" / "x.tar"
    src.parent.mkdir()
    src.write_bytes(b"shard" * 1000)
    (tmp_path / "b").mkdir()
    assert carry.link_or_copy(src, tmp_path / "b" / "linked.tar") == "link"
    assert os.path.samefile(src, tmp_path / "b" / "linked.tar")

    def no_link(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(carry.os, "link", no_link)
    assert carry.link_or_copy(src, tmp_path / "b" / "copied.tar") == "copy"
    copied = tmp_path / "b" / "copied.tar"
    assert copied.read_bytes() == src.read_bytes() and not os.path.samefile(src, copied)
    with pytest.raises(FileNotFoundError):
        carry.link_or_copy(tmp_path / "a" / "gone.tar", tmp_path / "b" / "gone.tar")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["copied.tar", "linked.tar"]


def test_a_killed_incremental_parquet_export_resumes_to_the_rows_of_a_full_one(grown, tmp_path):  # noqa: F811
    """Killed after its first file, run again: the files taken over and copied stand (their markers), the rest
    is written, and the folder loads the rows of a full export."""
    parent = tmp_path / "exports"
    store, settings = changed_copy(grown, tmp_path / "store", str(parent))
    out = parent / "v5-parquet-all"
    killed_export(store, settings, out, fmt="parquet")
    assert not (out / "_manifest.json").exists() and list((out / "_shards").glob("*-of-*.stats.json"))
    resumed = export(store, settings, out=out, fmt="parquet")
    assert resumed.base == "v3-parquet-all" and resumed.shards_skipped == 1
    export(store, settings, out=tmp_path / "full", fmt="parquet", version="v5", full=True)
    same_rows(rows_of(out, tmp_path / "hf1"), rows_of(tmp_path / "full", tmp_path / "hf2"))
    assert check_shards(out).ok
