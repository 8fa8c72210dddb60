"""End to end: the Prefect pipeline flow and `m5data demo` over a served demo shop."""

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store


def test_pipeline_flow_builds_a_store_from_the_demo_shop(light_shop, prefect_harness, tmp_path):
    from m5data.flows.pipeline import pipeline_flow

    store_path = str(tmp_path / "store")
    runs = pipeline_flow(store_path, [f"{light_shop.url}/"], stages=["crawl", "download", "extract", "align"],
                         overrides={"download.allow_private": True, "crawl.allow_private": True, "extract.kinds": "image,text",
                                    "align.mapping": str(light_shop.truth_dir / "level1_mapping.toml")})
    assert list(runs) == ["crawl", "download", "extract", "align"]
    assert {e["status"] for e in runs.values()} == {"ok"}
    store = Store.open(store_path)
    truth = pq.read_table(light_shop.truth_dir / "products.parquet").to_pylist()
    reachable = {p["product_id"] for p in truth if p["reachable"]}
    con = store.connect()
    try:
        crawled = {r[0] for r in con.execute("SELECT product_id FROM products").fetchall()}
        assert reachable <= crawled
        stages = {r[0] for r in con.execute("SELECT stage FROM runs WHERE status = 'ok'").fetchall()}
        assert stages == {"crawl", "download", "extract", "align"}
        # every product with a downloadable main image got a normalised image and a caption row
        ok_images = con.execute("SELECT count(DISTINCT product_id) FROM media WHERE kind = 'image' AND status = 'ok'").fetchone()[0]
        assert ok_images >= 0.9 * len(reachable)
        assert con.execute("SELECT count(*) FROM captions").fetchone()[0] == len(crawled)
        labelled = con.execute(
            "SELECT count(*) FROM products p JOIN label_map l ON l.platform = p.platform "
            "AND l.raw_path = array_to_string(p.category_path, ' > ') WHERE l.class_id IS NOT NULL"
        ).fetchone()[0]
        with_path = con.execute("SELECT count(*) FROM products WHERE len(category_path) > 0").fetchone()[0]
        assert labelled == with_path >= len(crawled) - 5  # a few pages lack a breadcrumb on purpose
    finally:
        con.close()
    # the flow resumes: a second run adds no product, fetches nothing again and changes no table
    from support.store_compare import TABLES, table_rows

    before = {name: table_rows(store, name) for name in TABLES}
    again = pipeline_flow(store_path, [f"{light_shop.url}/"], stages=["crawl", "download", "extract"], kinds="image,text",
                          overrides={"download.allow_private": True, "crawl.allow_private": True})
    assert again["download"]["n_in"] == 0
    assert Store.open(store_path).count("products") == len(crawled)
    assert {name: table_rows(Store.open(store_path), name) for name in TABLES} == before


def test_demo_command_runs_every_stage(prefect_harness, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--products", "24", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for title in ("demo shop", "pipeline flow", "crawl", "download", "extract", "align", "report", "Completed",
                  "m5data --store"):
        assert title in result.output
    store = Store.open(out / "store")
    con = store.connect()
    try:
        stages = dict(con.execute("SELECT stage, status FROM runs").fetchall())
    finally:
        con.close()
    # the stages up to align always run; annotate, splits and export join when they are installed
    assert {"crawl": "ok", "download": "ok", "extract": "ok", "align": "ok"}.items() <= stages.items()
    assert set(stages.values()) == {"ok"}
    truth = pq.read_table(out / "shop" / "truth" / "products.parquet").to_pylist()
    # the demo's shop states opt-outs (m5data/demo/optouts.py): those pages' products are not stored
    opted = [pid for pid, v in json.loads((out / "shop" / "truth" / "optouts.json").read_text())["pages"].items()
             if v["opted_out"]]
    assert store.count("products") == sum(p["reachable"] for p in truth) - len(opted) > 0
    assert "opted out" in result.output


def test_demo_store_fixture_holds_every_stage_up_to_align(demo_store_factory, tmp_path):
    from support.demo_fixtures import copy_store

    # the small world's store, which the export, report and takedown tests read too: not one more build
    cached = demo_store_factory(products=60, seed=0)
    assert demo_store_factory(products=60, seed=0) == cached  # built once
    store = Store.open(copy_store(cached, tmp_path))
    con = store.connect()
    try:
        stages = {r[0] for r in con.execute("SELECT stage FROM runs").fetchall()}
        labelled = con.execute("SELECT count(*) FROM label_map WHERE class_id IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    assert stages == {"crawl", "download", "extract", "align"}
    assert labelled > 0 and store.count("captions") == store.count("products") > 0
