"""Incremental runs of the pipeline flow: a second run over a grown site adds the new products,
downloads only their media, re-runs the global stages and writes a new split version, leaving the
old one intact."""

import pyarrow.parquet as pq
from support.store_samples import query

from m5data.storage import Store

STAGES = ["crawl", "download", "extract", "align", "annotate", "splits"]
LOOPBACK = {"download.allow_private": True, "crawl.allow_private": True}


def test_a_second_run_over_a_grown_site_adds_only_what_is_new(demo_shop_factory, prefect_harness, tmp_path):
    from m5data.flows.pipeline import pipeline_flow

    first_shop, new_shop = demo_shop_factory(products=20, seed=1, image_scale=0.5), demo_shop_factory(products=20, seed=2, image_scale=0.5)
    path = str(tmp_path / "store")
    mapping = str(first_shop.truth_dir / "level1_mapping.toml")
    overrides = {**LOOPBACK, "align.mapping": mapping, "extract.kinds": "image,text"}
    first = pipeline_flow(path, [f"{first_shop.url}/"], stages=STAGES, overrides=overrides)
    assert {e["status"] for e in first.values()} == {"ok"}, first
    store = Store.open(path)
    products_before = {r[0] for r in query(store, "SELECT product_id FROM products")}
    media_sql = "SELECT media_id, product_id, url, blob, updated_at FROM media WHERE status = 'ok' ORDER BY media_id"
    media_before = query(store, media_sql)
    v1 = sorted(query(store, "SELECT product_id, split FROM splits WHERE version = 'v1'"))
    assert v1 and {r[0] for r in v1} == products_before

    # the site grew: the same shop plus a second one's listings
    second = pipeline_flow(path, [f"{first_shop.url}/", f"{new_shop.url}/"], stages=STAGES, overrides=overrides)
    assert {e["status"] for e in second.values()} == {"ok"}, second
    store = Store.open(path)
    new_truth = {p["product_id"] for p in pq.read_table(new_shop.truth_dir / "products.parquet").to_pylist()
                 if p["reachable"]}
    products_after = {r[0] for r in query(store, "SELECT product_id FROM products")}
    assert products_after == products_before | (new_truth & products_after) and new_truth <= products_after

    # only the new products' media were fetched; the old rows are untouched
    fetched = {r[0] for r in query(store, f"""SELECT DISTINCT m.product_id FROM media m
                                             WHERE m.status = 'ok' AND m.product_id NOT IN
                                             (SELECT unnest([{', '.join("'" + p + "'" for p in products_before)}]))""")}
    assert fetched and fetched <= new_truth
    assert second["download"]["n_in"] <= query(store, f"""SELECT count(*) FROM media WHERE product_id IN
        (SELECT unnest([{', '.join("'" + p + "'" for p in new_truth)}]))""")[0][0]
    media_old_now = [r for r in query(store, media_sql) if r[1] in products_before]
    assert media_old_now == media_before

    # the global stages ran again over the new state
    stages_run = query(store, "SELECT stage, count(*) FROM runs WHERE status = 'ok' GROUP BY stage")
    assert {s: n for s, n in stages_run if s in ("align", "splits")} == {"align": 2, "splits": 2}
    labelled_new = query(store, f"""SELECT count(*) FROM products p JOIN label_map l ON l.platform = p.platform
        AND l.raw_path = array_to_string(p.category_path, ' > ')
        WHERE l.class_id IS NOT NULL AND p.product_id IN (SELECT unnest([{', '.join("'" + p + "'" for p in new_truth)}]))""")
    assert labelled_new[0][0] >= len(new_truth) - 3  # a few pages lack a breadcrumb on purpose

    # a new split version over the grown store; v1 is as it was
    assert second["splits"]["details"]["version"] == "v2"
    assert sorted(query(store, "SELECT product_id, split FROM splits WHERE version = 'v1'")) == v1
    v2 = {r[0] for r in query(store, "SELECT product_id FROM splits WHERE version = 'v2'")}
    assert v2 == products_after
