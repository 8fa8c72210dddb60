"""The report's gallery never shows a taken-down product nor its image (issue 76, finding 9): a product
the last run showed, taken down since (by its URL in another case, with a trailing ``/`` and a fragment:
the takedown rule of the store's views, storage/takedowns.py), is neither on the page nor among the
copied images of the next run, incremental or full, and the two runs agree."""

from __future__ import annotations

import hashlib
import re

from support.demo_fixtures import copy_store

from m5data.config import load
from m5data.report.build import build
from m5data.storage import Store, changes, takedowns


def _samples(store) -> list[dict]:
    return changes.load_state(store, "report")["summary"]["gallery"]["samples"]


def _page(result) -> str:
    page = re.sub(r"written \d{4}-\d\d-\d\d \d\d:\d\d UTC", "written -", result.index.read_text(encoding="utf-8"))
    return re.sub(r'data-key="table.runs" data-value="\d+">\d+', "runs -", page)


def test_a_taken_down_product_leaves_the_gallery(demo_store_factory, tmp_path):
    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    settings = load(None, {"store.path": str(store.root)}, environ={})
    first = build(store, settings, out=tmp_path / "r")
    shown = [s for s in _samples(store) if s["image"]]
    gone = shown[0]
    asset = hashlib.sha1(gone["image"].encode()).hexdigest()[:16]
    assert gone["product_id"] in first.index.read_text(encoding="utf-8")
    assert any(f.name.startswith(asset) for f in (first.index.parent / "assets").iterdir())

    url = store.read("products", where=f"product_id = '{gone['product_id']}'").to_pylist()[0]["url"]
    takedowns.record(store, "url", re.sub(r"^(\w+)://([^/]+)", lambda m: f"{m[1].upper()}://{m[2].upper()}",
                                          url.split("#")[0].rstrip("/")) + "/#gallery")
    again = build(store, settings, out=tmp_path / "r")
    full = build(store, settings, out=tmp_path / "full", full=True)
    for result in (again, full):
        page = result.index.read_text(encoding="utf-8")
        assert gone["product_id"] not in page and gone["title"] not in page
        assert not any(f.name.startswith(asset) for f in (result.index.parent / "assets").iterdir())
    assert all(s["product_id"] != gone["product_id"] for s in _samples(store))
    assert _page(again) == _page(full)
