"""Every export layout writes a card (m5data/export/card.py): README.md with a Hugging Face YAML header
(licence, languages, task and size categories), the sources, what the pipeline honoured (opt-outs,
takedowns, blurred faces, masked fields) and the citations; and croissant.json, Croissant 1.0 that
mlcroissant validates and reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml
from support.export_helpers import settings_for
from test_export_masking import contact_store  # noqa: F401  (the fixture)

from m5data.export.run import export


@pytest.fixture(scope="module")
def exports(contact_store, tmp_path_factory):  # noqa: F811
    """The contact store with one takedown (a product outside the split version), exported in each layout."""
    store = contact_store
    store.write("takedowns", [{"kind": "product_id", "value": "nowhere:1", "reason": "test",
                               "taken_at": datetime(2026, 11, 27, tzinfo=timezone.utc)}])
    root = tmp_path_factory.mktemp("cards")
    settings = settings_for(store, **{"export.workers": 1})
    return {fmt: export(store, settings, out=root / fmt, fmt=fmt, full=True)
            for fmt in ("webdataset", "parquet", "m5product")}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "m5product"])
def test_the_card_says_what_the_export_is_and_honoured(exports, fmt):
    report = exports[fmt]
    card = (report.out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "other"  # the store has no licence column
    assert meta["language"] == ["zh"] and meta["size_categories"] == ["n<1K"]
    assert "image-classification" in meta["task_categories"]
    body = card.split("---\n", 2)[2]
    assert "- source domains (products): 127.0.0.1 (6)" in body
    assert "- takedowns: 1\n" in body and "- opt-outs honoured: 0\n" in body and "- faces blurred: 0\n" in body
    masked = ", ".join(f"{k} {n}" for k, n in sorted(report.stats.details["masked"].items()))
    assert f"- personal data masked (per field): {masked}\n" in body
    assert "M5Product: Self-harmonized Contrastive Learning" in body and "MEP-3M" in body
    if fmt == "parquet":  # the layout's own part stays: the splits datasets reads
        assert [d["split"] for d in meta["configs"][0]["data_files"]] == ["train", "query_c", "gallery_c", "cls_train",
                                                                          "cls_test"][:len(report.splits)]


@pytest.mark.parametrize("fmt, records", [("webdataset", "samples"), ("parquet", "products"), ("m5product", "images")])
def test_croissant_is_valid_and_reads_the_records(exports, fmt, records):
    import mlcroissant as mlc

    report = exports[fmt]
    path = report.out / "croissant.json"
    doc = json.loads(path.read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0" and doc["license"] == "other"
    dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on invalid metadata
    assert not dataset.metadata.ctx.issues.errors, dataset.metadata.ctx.issues.report()
    rows = list(dataset.records(records))
    if fmt == "m5product":  # one image per item that has one
        assert {r["images/item_id"].decode() + ".jpg" for r in rows} == {p.name for p in (report.out / "images").iterdir()}
        return
    assert len(rows) == sum(report.splits.values())
    assert {r[f"{records}/product_id"].decode() for r in rows} == _ids(report)


def _ids(report) -> set:
    import pyarrow.parquet as pq

    if (report.out / "_samples.parquet").exists():
        return set(pq.read_table(report.out / "_samples.parquet").column("product_id").to_pylist())
    return set(pq.read_table(report.out / "data").column("product_id").to_pylist())
