"""Hugging Face Parquet export of the demo store: ``datasets.load_dataset`` reads every split offline,
the image column is an Image feature, missing modalities are nulls, the layout follows the hub's."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from support.export_helpers import export_demo

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # nothing to fetch: the loader must work from the folder alone
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def exported(demo_store_factory, tmp_path_factory):
    return export_demo(demo_store_factory, tmp_path_factory.mktemp("hfp"), "parquet", shard_size=20, workers=1)


def test_layout_and_card(exported):
    import yaml

    store, root, report = exported
    out = root / "out"
    files = sorted(p.name for p in (out / "data").iterdir())
    assert all("-" not in f.split("-0")[0] for f in files)  # split names with underscores: query_c, not query-c
    train = [f for f in files if f.startswith("train-")]
    assert train == [f"train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))] and len(train) >= 2
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    names = [d["split"] for d in meta["configs"][0]["data_files"]]
    assert names == ["train", "query_c", "gallery_c", "cls_train", "cls_test"]
    sizes = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert sizes == {k.replace("-", "_"): v for k, v in report.splits.items()}
    assert {"name": "image", "dtype": "image"} in meta["dataset_info"]["features"]


def test_load_dataset_reads_every_split_with_images(exported, tmp_path):
    import datasets
    from PIL import Image

    store, root, report = exported
    ds = datasets.load_dataset(str(root / "out"), cache_dir=str(tmp_path / "hf"))
    assert set(ds) == {"train", "query_c", "gallery_c", "cls_train", "cls_test"}
    for split, n in report.splits.items():
        assert ds[split.replace("-", "_")].num_rows == n
    train = ds["train"]
    assert isinstance(train.features["image"], datasets.Image)
    assert isinstance(train.features["frames"], datasets.List) and isinstance(train.features["frames"].feature, datasets.Image)
    con = store.connect()
    try:
        norm = dict(con.execute("SELECT product_id, blob FROM media WHERE kind = 'image_norm' AND status = 'ok'").fetchall())
        frames = dict(con.execute("SELECT product_id, frame_count FROM media WHERE kind = 'frames' AND status = 'ok'").fetchall())
        specs = {}
        for pid, prop, value in con.execute("SELECT product_id, property, value FROM specs ORDER BY product_id, position").fetchall():
            specs.setdefault(pid, []).append({"property": prop, "value": value})
        ids = [r[0] for r in con.execute("SELECT product_id FROM splits WHERE split = 'train' ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert train["product_id"] == ids
    seen_image = seen_null = seen_frames = seen_no_frames = 0
    raw = train.cast_column("image", datasets.Image(decode=False))
    for row, undecoded in zip(train, raw):
        pid = row["product_id"]
        assert row["split"] == "train" and row["specs"] == specs.get(pid, [])
        if pid in norm:
            assert isinstance(row["image"], Image.Image)
            assert undecoded["image"]["bytes"] == (store.local_root() / norm[pid]).read_bytes()
            seen_image += 1
        else:
            assert row["image"] is None  # a null, never a placeholder image
            seen_null += 1
        if pid in frames:
            assert len(row["frames"]) == frames[pid] and isinstance(row["frames"][0], Image.Image)
            if row["mfcc"] is not None:
                arr = np.asarray(row["mfcc"], dtype=np.float32)
                assert arr.ndim == 3 and arr.shape[0] == frames[pid]
            seen_frames += 1
        else:
            assert row["frames"] is None and row["mfcc"] is None and row["mp3"] is None
            seen_no_frames += 1
    assert seen_image and seen_frames and seen_no_frames


def test_mfcc_column_equals_the_stored_array(exported):
    import pyarrow.parquet as pq

    store, root, _ = exported
    table = pq.read_table(sorted((root / "out" / "data").glob("train-*.parquet"))[0])
    assert b"huggingface" in table.schema.metadata
    assert json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]["image"] == {"_type": "Image"}
    con = store.connect()
    try:
        mfcc = dict(con.execute("SELECT product_id, blob FROM media WHERE kind = 'mfcc' AND status = 'ok'").fetchall())
    finally:
        con.close()
    checked = 0
    for pid, value in zip(table["product_id"].to_pylist(), table["mfcc"].to_pylist()):
        if pid in mfcc:
            stored = np.load(io.BytesIO((store.local_root() / mfcc[pid]).read_bytes()))
            assert np.array_equal(np.asarray(value, dtype=np.float32), stored)
            checked += 1
    assert checked


def test_check_shards_reads_the_parquet_stats(exported):
    from m5data.export.check import check_shards

    store, root, report = exported
    result = check_shards(root / "out")
    assert result.ok and result.samples == sum(report.splits.values())


def test_load_dataset_parquet_of_the_export_folder_gives_the_same_splits(exported, tmp_path):
    """``load_dataset("parquet", data_dir=<export>)`` reads no card: the files' names give the splits, and
    the export's other JSON (``_shards/``, ``_stats.json``) is never read as Parquet (issue 75, item 14)."""
    import datasets

    _, root, report = exported
    whole = datasets.load_dataset(str(root / "out"), cache_dir=str(tmp_path / "hf1"))
    data = datasets.load_dataset("parquet", data_dir=str(root / "out"), cache_dir=str(tmp_path / "hf2"))
    expected = {split.replace("-", "_"): n for split, n in report.splits.items()}
    assert {name: d.num_rows for name, d in whole.items()} == expected
    assert {name: d.num_rows for name, d in data.items()} == expected
    assert data["cls_train"]["product_id"] == whole["cls_train"]["product_id"]


def test_a_folder_of_the_older_one_level_layout_is_refused(exported, tmp_path):
    from support.export_helpers import settings_for

    from m5data.export.run import export
    from m5data.export.samples import ExportError

    store, root, _ = exported
    plan = json.loads((root / "out" / "_export.json").read_text())
    assert plan["layout"] == "data/<split>-NNNNN-of-NNNNN"
    old = tmp_path / "old"
    (old / "data").mkdir(parents=True)
    (old / "_export.json").write_text(json.dumps({**plan, "layout": "data/data"}))  # the two-level layout
    with pytest.raises(ExportError, match="holds another export \\(layout differ\\)"):
        export(store, settings_for(store, **{"export.shard_size": 20, "export.workers": 1}), out=old, fmt="parquet")
