"""The default demo world (300 products, seed 0): every export layout read back by its own reader,
and the M5Product round trip. Slow (builds the 300-product store once; cached afterwards)."""

from __future__ import annotations

import json
import os

import pytest
from support.export_helpers import settings_for, store_with_splits

from m5data.export.run import export
from m5data.export.samples import product_id_from_key
from m5data.importer.run import import_m5product
from m5data.storage import Store

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.slow
@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_default_demo_world_round_trips(demo_store_factory, tmp_path):
    import datasets
    import webdataset as wds

    store = store_with_splits(demo_store_factory(products=300, seed=0, faces=False), tmp_path)
    con = store.connect()
    try:
        members = {}
        for split, pid in con.execute("SELECT split, product_id FROM splits ORDER BY split, product_id").fetchall():
            members.setdefault(split, []).append(pid)
        titles = dict(con.execute("SELECT product_id, title FROM products").fetchall())
        specs = sorted(con.execute("SELECT product_id, position, property, value FROM specs").fetchall())
        images = dict(con.execute("SELECT product_id, sha256 FROM media WHERE kind = 'image_norm' AND status = 'ok'").fetchall())
    finally:
        con.close()
    assert sum(map(len, members.values())) > 300

    # the store was extracted without looking for faces (the demo world draws none: support.demo_fixtures.demo300)
    settings = settings_for(store, **{"export.shard_size": 64, "export.workers": 2, "export.blur_faces": False})
    wds_report = export(store, settings, out=tmp_path / "wds", fmt="webdataset")
    for split, ids in members.items():
        urls = [str(p) for p in sorted((tmp_path / "wds").glob(f"{split}-[0-9]*.tar"))]
        samples = list(wds.WebDataset(urls, shardshuffle=False))
        assert [product_id_from_key(s["__key__"]) for s in samples] == ids
        assert all(json.loads(s["json"])["title"] == titles[product_id_from_key(s["__key__"])] for s in samples)
    assert wds_report.stats.n_failed == 0

    export(store, settings, out=tmp_path / "hf", fmt="parquet")
    ds = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "hf-cache"))
    assert {name: d.num_rows for name, d in ds.items()} == {s.replace("-", "_"): len(v) for s, v in members.items()}
    assert isinstance(ds["train"].features["image"], datasets.Image)

    export(store, settings, out=tmp_path / "m5p", fmt="m5product")
    new = Store.init(tmp_path / "imported")
    import_m5product(new, tmp_path / "m5p")
    con = new.connect()
    try:
        assert dict(con.execute("SELECT product_id, title FROM products").fetchall()) == titles
        assert sorted(con.execute("SELECT product_id, position, property, value FROM specs").fetchall()) == specs
        assert dict(con.execute("SELECT product_id, sha256 FROM media WHERE kind = 'image'").fetchall()) == images
    finally:
        con.close()
