"""Names and blob paths that would escape: split and version names read from the ``splits`` table,
blob paths read from ``media`` rows (absolute, ``../``, a symlink inside blobs/ that points out,
a frames listing naming files outside its folder), long product ids in the M5Product layout.

Every store here is written through the store API; the outside files hold a marker whose bytes
must appear in no output.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.export.run import export
from m5data.storage import Store

runner = CliRunner()
MARK = b"OUTSIDE-SECRET-7f3a9c"  # the outside files' bytes: must reach no output
FORMATS = ("webdataset", "parquet", "m5product")


def _jpeg(color, comment: bytes = b"") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, "JPEG", comment=comment)
    return buf.getvalue()


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def settings_for(store: Store, **overrides):
    return load(None, {"store.path": str(store.root), "export.workers": 1, "extract.workers": 1, **overrides},
                environ={})


def m5(store: Store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


@pytest.fixture
def world(tmp_path):
    """A store with one clean product and four whose media rows point outside the store."""
    outside = tmp_path / "outside"
    (outside / "frames").mkdir(parents=True)
    secret_jpg = _jpeg((200, 10, 10), MARK)
    (outside / "secret.jpg").write_bytes(secret_jpg)
    (outside / "secret.mp3").write_bytes(MARK * 64)
    (outside / "secret.mp4").write_bytes(MARK * 64)
    (outside / "secret.npy").write_bytes(_npy(np.frombuffer(MARK * 4, np.uint8).astype("float32").reshape(2, 2, -1)))
    (outside / "frames" / "000001.jpg").write_bytes(secret_jpg)
    (outside / "frames" / "frames.json").write_text(json.dumps({"files": ["000001.jpg"]}))

    store = Store.init(tmp_path / "store")
    image = store.blobs.put_bytes(_jpeg((10, 200, 10)), "jpg")
    mp3 = store.blobs.put_bytes(b"ID3 clean mp3 bytes" * 8, "mp3")
    video = store.blobs.put_bytes(b"clean mp4 bytes" * 8, "mp4")
    mfcc = store.blobs.put_bytes(_npy(np.ones((1, 4, 3), "float32")), "npy")
    frames = store.local_root() / "derived" / "frames" / "aa" / "clean"
    frames.mkdir(parents=True)
    (frames / "000001.jpg").write_bytes(_jpeg((10, 10, 200)))
    (frames / "frames.json").write_text(json.dumps({"files": ["000001.jpg"]}))
    # symlinks inside the store's blob areas that lead out
    links = store.local_root() / "blobs" / "ee"
    links.mkdir()
    for name in ("secret.jpg", "secret.mp3", "secret.mp4", "secret.npy"):
        os.symlink(outside / name, links / f"link-{name}")
    os.symlink(outside / "frames", store.local_root() / "derived" / "frames" / "aa" / "linkdir")
    # a frames folder inside the store whose listing and files lead out
    listing = store.local_root() / "derived" / "frames" / "aa" / "listing"
    listing.mkdir()
    os.symlink(outside / "secret.jpg", listing / "000002.jpg")
    (listing / "frames.json").write_text(json.dumps({"files": ["../../../../../outside/secret.jpg", "000002.jpg"]}))

    up = "blobs/../../outside"  # store is tmp/store: two levels up is tmp/
    media = {
        "good:1": {"image_norm": image.path, "audio": mp3.path, "video": video.path, "mfcc": mfcc.path,
                   "frames": "derived/frames/aa/clean"},
        "evil:abs": {"image_norm": str(outside / "secret.jpg"), "audio": str(outside / "secret.mp3"),
                     "video": str(outside / "secret.mp4"), "mfcc": str(outside / "secret.npy"),
                     "frames": str(outside / "frames")},
        "evil:up": {"image_norm": f"{up}/secret.jpg", "audio": f"{up}/secret.mp3", "video": f"{up}/secret.mp4",
                    "mfcc": f"{up}/secret.npy", "frames": f"{up}/frames"},
        "evil:link": {"image_norm": "blobs/ee/link-secret.jpg", "audio": "blobs/ee/link-secret.mp3",
                      "video": "blobs/ee/link-secret.mp4", "mfcc": "blobs/ee/link-secret.npy",
                      "frames": "derived/frames/aa/linkdir"},
        "evil:listing": {"frames": "derived/frames/aa/listing"},
    }
    products, rows, splits = [], [], []
    for pid, kinds in media.items():
        platform, _, source = pid.partition(":")
        products.append({"product_id": pid, "platform": platform, "source_id": source, "title": f"title {pid}"})
        for kind, blob in kinds.items():
            rows.append({"media_id": f"{pid}|{kind}", "product_id": pid, "kind": kind,
                         "role": "video" if kind == "video" else "derived", "position": 0, "blob": blob,
                         "status": "ok", "bytes": 100})
        splits.append({"product_id": pid, "split": "train", "version": "v1"})
    store.write("products", products)
    store.write("media", rows)
    store.write("splits", splits)
    return store, tmp_path


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _parquet_values(path: Path):
    """Every binary value of a Parquet file, decompressed (the file's own bytes are zstd)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for row in table.to_pylist():
        for value in (row.get("mp3"), (row.get("image") or {}).get("bytes"),
                      *[f["bytes"] for f in row.get("frames") or []]):
            if value is not None:
                yield value


@pytest.mark.parametrize("fmt", FORMATS)
def test_blob_paths_outside_the_store_reach_no_export(world, fmt):
    store, tmp = world
    out = tmp / f"out-{fmt}"
    report = export(store, settings_for(store), out=out, fmt=fmt)
    files = _files(out)
    assert files
    for path in files:
        assert MARK not in path.read_bytes(), path
        if path.suffix == ".parquet":
            assert not any(MARK in v for v in _parquet_values(path)), path
    failures = report.stats.failures
    outside = {r: n for r, n in failures.items() if "outside the store" in r}
    # every media path of evil:abs, evil:up and evil:link: counted, whether the layout copies it or not
    for what in ("image", "mp3", "video", "mfcc", "frames"):
        assert outside.get(f"{what} blob path outside the store") == 3, failures
    if fmt == "m5product":
        items = json.loads((out / "m5data_items.json").read_text())["items"]
        by_pid = {v["product_id"]: k for k, v in items.items()}
        assert (out / "images" / f"{by_pid['good:1']}.jpg").is_file()
        for pid in ("evil:abs", "evil:up", "evil:link"):
            assert not (out / "images" / f"{by_pid[pid]}.jpg").exists()
            assert not list((out / "videos").glob(f"{by_pid[pid]}.*"))
    else:
        assert failures.get("frame file outside its frames folder") == 2, failures  # evil:listing's two frames


def test_webdataset_samples_of_outside_blobs_lose_those_modalities(world):
    import tarfile

    store, tmp = world
    export(store, settings_for(store), out=tmp / "wds", fmt="webdataset")
    names = []
    records = {}
    for tar in (tmp / "wds").glob("*.tar"):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                names.append(m.name)
                if m.name.endswith(".json"):
                    rec = json.loads(tf.extractfile(m).read())
                    records[rec["product_id"]] = rec
    assert records["good:1"]["modalities"] == ["image", "caption", "video", "audio"]
    for pid in ("evil:abs", "evil:up", "evil:link", "evil:listing"):
        assert records[pid]["modalities"] == ["caption"], records[pid]
    assert not [n for n in names if n.startswith("evil") and not n.endswith((".json", ".txt"))]


def test_extract_refuses_blobs_outside_the_store(tmp_path):
    """Image inputs whose blob is absolute, climbs out or is a symlink out: failed with the reason,
    no derived file; a sha256 column that is not a hash names no output path."""
    from m5data.extract.run import run as run_extract

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(_jpeg((200, 10, 10), MARK))
    store = Store.init(tmp_path / "store")
    good = store.blobs.put_bytes(_jpeg((10, 200, 10)), "jpg")
    (store.local_root() / "blobs" / "ee").mkdir()
    os.symlink(outside / "secret.jpg", store.local_root() / "blobs" / "ee" / "link.jpg")
    blobs = {"evil:abs": str(outside / "secret.jpg"), "evil:up": "blobs/../../outside/secret.jpg",
             "evil:link": "blobs/ee/link.jpg", "good:1": good.path, "evil:sha": good.path}
    rows = [{"media_id": f"{pid}|image", "product_id": pid, "kind": "image", "role": "main", "position": 0,
             "url": f"http://shop.test/{pid}.jpg", "blob": blob, "status": "ok",
             "sha256": "../../../../escaped" if pid == "evil:sha" else None} for pid, blob in blobs.items()]
    store.write("media", rows)
    stats = run_extract(store, settings_for(store), kinds="image")
    derived = {r["product_id"]: r for r in store.read("media", where="kind = 'image_norm'").to_pylist()}
    for pid in ("evil:abs", "evil:up", "evil:link"):
        assert derived[pid]["status"] == "failed" and "outside the store" in derived[pid]["error"], derived[pid]
    assert derived["good:1"]["status"] == "ok"
    assert derived["evil:sha"]["status"] == "ok"
    assert resolved_inside(store, derived["evil:sha"]["blob"])
    assert stats.failures.get("image failed: blob path outside the store") == 3, stats.failures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "store"]  # nothing written beside the store
    assert not any(MARK in p.read_bytes() for p in _files(store.local_root() / "derived"))


def resolved_inside(store: Store, rel: str) -> bool:
    from m5data.storage.blobs import resolve_blob

    return resolve_blob(store.root, rel).is_file()


# ------------------------------------------------------------------------------------------ names


@pytest.fixture
def named_world(tmp_path):
    """A clean product in ``train`` and in splits named ``../escape`` and an absolute path."""
    store = Store.init(tmp_path / "store")
    image = store.blobs.put_bytes(_jpeg((10, 200, 10)), "jpg")
    store.write("products", [{"product_id": "good:1", "platform": "good", "source_id": "1", "title": "t"}])
    store.write("media", [{"media_id": "m1", "product_id": "good:1", "kind": "image_norm", "role": "derived",
                           "position": 0, "blob": image.path, "status": "ok", "bytes": image.bytes}])
    bad = ["../escape", str(tmp_path / "abs" / "split")]
    store.write("splits", [{"product_id": "good:1", "split": s, "version": "v1"} for s in ["train", *bad]])
    return store, tmp_path, bad


def _outside_listing(tmp: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if "store" not in p.relative_to(tmp).parts[:1]
                  and "out" not in p.relative_to(tmp).parts[:1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_split_names_are_skipped_and_nothing_lands_outside_out(named_world, fmt):
    store, tmp, bad = named_world
    before = _outside_listing(tmp)
    result = m5(store, "export", "--format", fmt, "--out", str(tmp / "out" / "x"), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _outside_listing(tmp) == before
    for name in bad:
        assert name in result.output.replace("\n", "")  # named in the skipped-split warning
    runs = store.read("runs", where="stage = 'export'").to_pylist()
    assert json.loads(runs[-1]["failures"]).get("split with a bad name (skipped)") == 2
    assert any(p.name.startswith("train") or p.name == "train.txt" for p in _files(tmp / "out" / "x"))


def test_a_bad_split_name_asked_for_is_a_one_line_error(named_world):
    store, tmp, bad = named_world
    result = m5(store, "export", "--split", "../escape", "--out", str(tmp / "out" / "y"))
    assert result.exit_code == 1 and "not a plain name" in result.output
    assert not (tmp / "escape").exists()


def test_a_bad_version_name_in_the_table_is_a_one_line_error(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", [{"product_id": "good:1", "platform": "good", "source_id": "1", "title": "t"}])
    store.write("splits", [{"product_id": "good:1", "split": "train", "version": "../../v"}])
    result = m5(store, "export", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "not a plain name" in result.output, result.output
    result = m5(store, "check-splits", "--version", "../../v")
    assert result.exit_code == 1 and "plain name" in result.output, result.output


def test_check_shards_refuses_index_entries_outside_the_folder(tmp_path):
    from m5data.export.check import check_shards
    from m5data.export.folder_reader import file_sha256

    victim = tmp_path / "victim.tar"
    victim.write_bytes(b"x" * 1024)
    out = tmp_path / "out"
    out.mkdir()
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "train",
             "shardlist": [{"url": "../victim.tar", "nsamples": 1, "filesize": 1024, "sha256": file_sha256(victim)},
                           {"url": str(victim), "nsamples": 1, "filesize": 1024, "sha256": file_sha256(victim)}]}
    (out / "train.index.json").write_text(json.dumps(index))
    report = check_shards(out)
    assert [p.problem for p in report.problems] == ["path outside the export folder (not checked)"] * 2
    assert report.samples == 0 and report.bytes == 0
    result = runner.invoke(app, ["check-shards", str(out)])
    assert result.exit_code == 1 and "outside" in result.output, result.output


def test_split_and_version_names_of_300_characters_are_refused_cleanly(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", [{"product_id": "good:1", "platform": "good", "source_id": "1", "title": "t"}])
    long = "v" * 300
    result = m5(store, "build-splits", "--version", long)
    assert result.exit_code == 1 and "splits.version" in result.output and "characters" in result.output, result.output
    assert not isinstance(result.exception, OSError)
    result = m5(store, "check-splits", "--version", long)
    assert result.exit_code == 1 and "characters" in result.output, result.output
    result = m5(store, "build-splits", "--version", "../x")  # still refused
    assert result.exit_code == 1 and "splits.version" in result.output


# ---------------------------------------------------------------------------------------- long ids


def test_m5product_export_of_a_300_character_id_round_trips(tmp_path):
    store = Store.init(tmp_path / "store")
    long_source = "9" * 300
    images = {}
    products, media = [], []
    for n, source in enumerate((long_source, "x/../y" * 40, "123")):
        pid = f"shop:{source}"
        ref = store.blobs.put_bytes(_jpeg((n * 50, 10, 10)), "jpg")
        images[pid] = ref.sha256
        products.append({"product_id": pid, "platform": "shop", "source_id": source, "title": f"product {n}"})
        media.append({"media_id": f"m{n}", "product_id": pid, "kind": "image_norm", "role": "derived", "position": 0,
                      "blob": ref.path, "status": "ok", "bytes": ref.bytes})
    store.write("products", products)
    store.write("media", media)
    store.write("splits", [{"product_id": p["product_id"], "split": "train", "version": "v1"} for p in products])
    out = tmp_path / "m5p"
    result = m5(store, "export", "--format", "m5product", "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(store.read("runs", where="stage = 'export'").to_pylist()[-1]["failures"])
    assert report == {}, report
    items = json.loads((out / "m5data_items.json").read_text())
    assert {v["product_id"] for v in items["items"].values()} == set(images)
    for iid in items["items"]:
        assert len(iid.encode()) <= 200 and "/" not in iid and (out / "images" / f"{iid}.jpg").is_file()
    assert sorted((out / "train.txt").read_text().split()) == sorted(items["items"])
    imported = Store.init(tmp_path / "imported")
    result = runner.invoke(app, ["--store", str(imported.root), "import", "m5product", str(out)])
    assert result.exit_code == 0, result.output
    rows = imported.read("media", where="kind = 'image'").to_pylist()
    assert {r["product_id"]: r["sha256"] for r in rows} == images
    titles = {r["product_id"]: r["title"] for r in imported.read("products").to_pylist()}
    assert titles == {p["product_id"]: p["title"] for p in products}


def test_m5product_reports_the_true_reason_of_a_failed_write(tmp_path):
    """A write that fails (here: images/ is a file) is counted as a write failure, not a missing
    blob, and the item's image is not counted as a modality."""
    store = Store.init(tmp_path / "store")
    ref = store.blobs.put_bytes(_jpeg((1, 2, 3)), "jpg")
    store.write("products", [{"product_id": "shop:1", "platform": "shop", "source_id": "1", "title": "t"}])
    store.write("media", [{"media_id": "m", "product_id": "shop:1", "kind": "image_norm", "role": "derived",
                           "position": 0, "blob": ref.path, "status": "ok", "bytes": ref.bytes}])
    store.write("splits", [{"product_id": "shop:1", "split": "train", "version": "v1"}])
    from m5data.export import m5product
    from m5data.export.run import Shard
    from m5data.export.sample_rows import load_samples

    out = tmp_path / "m5p"
    out.mkdir()
    (out / "images").write_text("not a folder")
    con = store.connect()
    try:
        samples = load_samples(con, ["shop:1"])
    finally:
        con.close()
    stats = m5product.write_shard(store.root, out, Shard("train", 0, 1, ("shop:1",)), samples,
                                  {"item_ids": "source_id", "mp3": True, "video": True})
    assert "missing image blob" not in stats["failures"]
    assert any(r.startswith("cannot write image file") for r in stats["failures"]), stats["failures"]
    assert "image" not in stats["modalities"], stats


# ------------------------------------------------------------------------- other readers of blobs


EVIL_IMAGES = ("evil:abs", "evil:up", "evil:link")


def _image_blobs(store: Store) -> dict[str, str]:
    return {r["product_id"]: r["blob"] for r in store.read("media", where="kind = 'image_norm'").to_pylist()}


def test_doctor_never_reads_a_blob_outside_the_store(world):
    from m5data.storage.doctor import blob_problem, missing_blobs

    store, _tmp = world
    rows = {r["product_id"]: r for r in store.read("media", where="kind = 'image_norm'").to_pylist()}
    assert blob_problem(store, rows["good:1"], True, {}) is None
    for pid in EVIL_IMAGES:  # the symlink was hashed (and its name compared) before: a content mismatch
        assert "outside the store" in blob_problem(store, rows[pid], True, {}), pid
    assert {r["product_id"] for r in missing_blobs(store) if r["kind"] == "image_norm"} == set(EVIL_IMAGES)


def test_image_descriptors_of_annotate_never_open_a_blob_outside_the_store(world):
    from m5data.annotate.match_level.job import image_descriptors

    store, _tmp = world
    blobs = _image_blobs(store)
    order = ["good:1", *EVIL_IMAGES]
    desc, reasons = image_descriptors(store.root, [blobs[p] for p in order], [None] * len(order))
    assert reasons == [None] + ["image blob path outside the store"] * 3
    assert desc[0].any() and not desc[1:].any()
    from m5data.annotate.pools.images import image_paths

    paths, outside = image_paths(store.root, [blobs[p] for p in order] + [None])
    assert outside == [1, 2, 3] and paths[1:] == [None] * 4 and Path(paths[0]).is_file()
