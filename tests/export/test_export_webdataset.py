"""WebDataset export of the demo store: read back with webdataset and wids, index, byte-identical
re-export, resume after a lost shard, another plan refused, check-shards on a truncated shard."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from support.export_helpers import export_demo, settings_for, store_with_splits
from typer.testing import CliRunner

from m5data.cli import app
from m5data.export.run import export
from m5data.export.samples import ExportError, product_id_from_key, safe_key

SHARD = 8


@pytest.fixture(scope="module")
def exported(demo_store_factory, tmp_path_factory):
    return export_demo(demo_store_factory, tmp_path_factory.mktemp("wds"), "webdataset", shard_size=SHARD, workers=1)


def _members(store, split):
    con = store.connect()
    try:
        return [r[0] for r in con.execute("SELECT product_id FROM splits WHERE split = ? ORDER BY 1", [split]).fetchall()]
    finally:
        con.close()


def test_keys_are_tar_safe_and_reversible():
    for pid in ["shopa:123", "shopb:a.b/c", "x:商品~1", "plain_id-9"]:
        key = safe_key(pid)
        assert "." not in key and "/" not in key and ":" not in key
        assert product_id_from_key(key) == pid


def test_every_sample_reads_back_with_webdataset(exported):
    import webdataset as wds
    from PIL import Image

    store, root, report = exported
    out = root / "out"
    ids = _members(store, "train")
    urls = [str(p) for p in sorted(out.glob("train-*.tar"))]
    assert len(urls) == -(-len(ids) // SHARD)
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert [product_id_from_key(s["__key__"]) for s in samples] == ids
    con = store.connect()
    try:
        titles = dict(con.execute("SELECT product_id, title FROM products").fetchall())
        specs = {}
        for pid, prop, value in con.execute("SELECT product_id, property, value FROM specs ORDER BY product_id, position").fetchall():
            specs.setdefault(pid, []).append([prop, value])
        norm = dict(con.execute("SELECT product_id, blob FROM media WHERE kind = 'image_norm' AND status = 'ok'").fetchall())
        frames = dict(con.execute("SELECT product_id, frame_count FROM media WHERE kind = 'frames' AND status = 'ok'").fetchall())
        labels = dict(con.execute(
            "SELECT p.product_id, l.sub_class_id FROM products p JOIN label_map l ON l.platform = p.platform "
            "AND l.raw_path = array_to_string(p.category_path, ' > ')").fetchall())
    finally:
        con.close()
    with_video = without_video = 0
    for s in samples:
        meta = json.loads(s["json"])
        pid = meta["product_id"]
        assert meta["split"] == "train" and meta["title"] == titles[pid]
        assert meta["specs"] == specs.get(pid, [])
        assert meta["sub_class_id"] == labels.get(pid)
        if titles[pid]:
            assert s["txt"].decode() and "caption" in meta["modalities"]
        else:  # an untitled page of the demo world: no caption member at all
            assert "txt" not in s and "caption" not in meta["modalities"]
        if pid in norm:
            assert s["jpg"] == (store.local_root() / norm[pid]).read_bytes()
            Image.open(io.BytesIO(s["jpg"])).verify()
            assert "image" in meta["modalities"]
        else:
            assert "jpg" not in s and "image" not in meta["modalities"]
        frame_keys = sorted(k for k in s if k.startswith("frame"))
        if pid in frames:
            with_video += 1
            assert len(frame_keys) == frames[pid] and frame_keys[0] == "frame000.jpg"
            if "mfcc.npy" in s:
                mfcc = np.load(io.BytesIO(s["mfcc.npy"]))
                assert mfcc.shape[0] == len(frame_keys) and mfcc.dtype == np.float32
        else:
            without_video += 1
            assert not frame_keys and "mfcc.npy" not in s and "mp3" not in s  # absent, never placeholders
            assert "video" not in meta["modalities"]
    assert with_video and without_video  # the demo world has both, so both branches ran
    assert any("mp3" in s for s in samples)


def test_index_is_a_wids_descriptor_with_sizes_and_hashes(exported):
    import hashlib

    import wids

    store, root, report = exported
    out = root / "out"
    for split in report.splits:
        index = json.loads((out / f"{split}.index.json").read_text())
        assert index["__kind__"] == "wids-shard-index-v1" and index["wids_version"] == 1
        assert sum(sh["nsamples"] for sh in index["shardlist"]) == report.splits[split] == len(_members(store, split))
        for sh in index["shardlist"]:
            data = (out / sh["url"]).read_bytes()
            assert sh["filesize"] == len(data) and sh["sha256"] == hashlib.sha256(data).hexdigest()
            stats = json.loads((out / sh["url"].replace(".tar", ".stats.json")).read_text())
            assert stats["nsamples"] == sh["nsamples"] and stats["sha256"] == sh["sha256"]
    summary = json.loads((out / "_stats.json").read_text())
    assert summary["version"] == "v1" and set(summary["splits"]) == set(report.splits)
    ds = wids.ShardListDataset(str(out / "query-c.index.json"), localname=lambda s: s)
    assert len(ds) == report.splits["query-c"]
    first = ds[0]
    assert first[".json"]["split"] == "query-c"  # wids decodes the json member
    assert product_id_from_key(first["__key__"]) == _members(store, "query-c")[0]


def test_runs_row_records_the_export(exported):
    store, root, report = exported
    runs = store.read("runs", where=f"run_id = '{report.stats.run_id}'").to_pylist()
    assert len(runs) == 1 and runs[0]["stage"] == "export" and runs[0]["status"] == "ok"
    assert runs[0]["n_out"] == sum(report.splits.values()) and runs[0]["bytes"] > 0
    assert json.loads(runs[0]["config"])["version"] == "v1"


def test_reexport_in_parallel_is_byte_identical(exported):
    store, root, report = exported
    again = export(store, settings_for(store, **{"export.shard_size": SHARD, "export.workers": 2}),
                   out=root / "again", fmt="webdataset")
    assert again.shards_written == report.shards
    first = sorted(p.relative_to(root / "out") for p in (root / "out").rglob("*") if p.is_file())
    second = sorted(p.relative_to(root / "again") for p in (root / "again").rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (root / "out" / rel).read_bytes() == (root / "again" / rel).read_bytes(), rel


def test_resume_rewrites_only_unfinished_shards(exported):
    store, root, report = exported
    out = root / "resume"
    shutil.copytree(root / "out", out)
    lost = out / "train-000001.tar"
    lost_bytes = lost.read_bytes()
    lost.unlink()  # a shard the killed run had not finished: no tar ...
    (out / "train-000002.stats.json").unlink()  # ... and one whose stats (completion marker) were never written
    (out / ".tmp-train-000003.tar").write_bytes(b"half a shard")  # a killed writer's temp file
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("train-*.tar") if p.name != "train-000002.tar"}
    again = export(store, settings_for(store, **{"export.shard_size": SHARD, "export.workers": 1}), out=out)
    assert again.shards_written == 2 and again.shards_skipped == report.shards - 2
    assert lost.read_bytes() == lost_bytes
    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime, f"{name} was rewritten"
    assert (out / "train-000002.stats.json").is_file()
    assert not (out / ".tmp-train-000003.tar").exists()  # the killed writer's temp file is gone
    nothing = export(store, settings_for(store, **{"export.shard_size": SHARD, "export.workers": 1}), out=out)
    assert nothing.shards_written == 0 and nothing.stats.n_out == 0


def test_an_output_folder_of_another_plan_is_refused(exported, tmp_path):
    store, root, _ = exported
    with pytest.raises(ExportError, match="shard_size"):
        export(store, settings_for(store, **{"export.shard_size": SHARD + 1, "export.workers": 1}), out=root / "out")
    (tmp_path / "foreign.txt").write_text("not an export")
    with pytest.raises(ExportError, match="not empty"):
        export(store, settings_for(store, **{"export.workers": 1}), out=tmp_path)
    with pytest.raises(ExportError, match="no split version 'v9'"):
        export(store, settings_for(store, **{"export.workers": 1}), out=tmp_path / "x", version="v9")
    with pytest.raises(ExportError, match="split 'subset' is not in version"):
        export(store, settings_for(store, **{"export.workers": 1}), out=tmp_path / "x", split="subset")


def test_check_shards_names_a_truncated_shard(exported):
    store, root, _ = exported
    runner = CliRunner()
    ok = runner.invoke(app, ["check-shards", str(root / "out")])
    assert ok.exit_code == 0, ok.output
    assert "shard(s) ok" in ok.output
    bad = root / "bad"
    shutil.copytree(root / "out", bad)
    shard = bad / "train-000001.tar"
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    result = runner.invoke(app, ["check-shards", str(bad)])
    assert result.exit_code == 1
    assert "train-000001.tar" in result.output and "truncated" in result.output
    other = bad / "train-000000.tar"
    data = bytearray(other.read_bytes())
    data[1000] ^= 0xFF
    other.write_bytes(bytes(data))
    result = runner.invoke(app, ["check-shards", str(bad)])
    assert result.exit_code == 1 and "train-000000.tar" in result.output and "sha256" in result.output
    (root / "empty").mkdir()
    empty = runner.invoke(app, ["check-shards", str(root / "empty")])
    assert empty.exit_code == 1 and "no shard index" in empty.output


@pytest.mark.parametrize("name,size", [("a.jpg", 0), ("shopa~3A123.frame000.jpg", 123_456), ("x" * 99, 1),
                                       ("x" * 100, 5), ("商品.txt", 3), ("k.mp3", 8 ** 11 - 1), ("k.big", 8 ** 11 + 5)])
def test_fast_tar_header_equals_tarfiles(name, size):
    import tarfile

    from m5data.export.tar_blocks import tar_header, tarinfo

    assert tar_header(name, size) == tarinfo(name, size).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def test_a_blob_missing_from_the_store_is_an_absent_member_and_a_counted_failure(demo_store_factory, tmp_path):
    import pyarrow.parquet as pq
    import webdataset as wds

    store = store_with_splits(demo_store_factory(products=60, seed=0), tmp_path)
    con = store.connect()
    try:
        pid, image, mp3 = con.execute(
            "SELECT s.product_id, i.blob, a.blob FROM splits s JOIN media i ON i.product_id = s.product_id "
            "AND i.kind = 'image_norm' AND i.status = 'ok' JOIN media a ON a.product_id = s.product_id "
            "AND a.kind = 'audio' AND a.status = 'ok' WHERE s.split = 'query-c' ORDER BY 1 LIMIT 1").fetchone()
    finally:
        con.close()
    (store.local_root() / image).unlink()
    (store.local_root() / mp3).unlink()  # a hard link of the cached store's blob: the cache keeps its copy
    settings = settings_for(store, **{"export.workers": 1})
    report = export(store, settings, out=tmp_path / "w", split="query-c")
    assert dict(report.stats.failures) == {"missing image blob": 1, "missing mp3 blob": 1}
    sample = next(s for s in wds.WebDataset(str(tmp_path / "w" / "query-c-000000.tar"), shardshuffle=False)
                  if product_id_from_key(s["__key__"]) == pid)
    meta = json.loads(sample["json"])
    assert "jpg" not in sample and "mp3" not in sample and "image" not in meta["modalities"]
    assert "mfcc.npy" in sample and "audio" in meta["modalities"]  # the MFCC is still there
    runs = store.read("runs", where=f"run_id = '{report.stats.run_id}'").to_pylist()
    assert json.loads(runs[0]["failures"]) == {"missing image blob": 1, "missing mp3 blob": 1}
    export(store, settings, out=tmp_path / "p", split="query-c", fmt="parquet")
    table = pq.read_table(next((tmp_path / "p" / "data").glob("*.parquet"))).to_pylist()
    row = next(r for r in table if r["product_id"] == pid)
    assert row["image"] is None and row["mp3"] is None and "image" not in row["modalities"]
