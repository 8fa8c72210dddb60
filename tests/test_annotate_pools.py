"""``m5data annotate pools`` / ``tasks`` on the default demo world: recall of true instance matches,
pool invariants, idempotent and resumable runs, bad rows with reasons, labelling-task export."""

import csv
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from m5data.annotate.pools import build_pools, sample_queries, score_pools
from m5data.annotate.tasks import export_tasks
from m5data.cli import app
from m5data.config import load
from m5data.demo.fixtures import copy_store
from m5data.storage import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def world(demo_store_factory, demo_shop_factory, tmp_path_factory):
    """A writable copy of the default demo world's store (300 products, seed 0) and its truth folder."""
    src = demo_store_factory(products=300, seed=0, kinds="image,text")
    root = copy_store(src, tmp_path_factory.mktemp("pools"))
    return Store.open(root), demo_shop_factory(products=300, seed=0).truth_dir


def settings(store, **annotate):
    return load(None, {"store.path": str(store.root), **{f"annotate.{k}": v for k, v in annotate.items()}}, environ={})


def pools_of(store):
    """The pools table without run_id (a re-searched block carries the new run's id)."""
    cols = ["query_id", "candidate_id", "rank", "score", "embedder"]
    return store.read("pools", columns=cols).sort_by([("query_id", "ascending"), ("rank", "ascending")]).to_pydict()


def test_recall_of_true_matches_and_pool_invariants(world):
    store, truth = world
    report = build_pools(store, settings(store, pool_queries=1.0))
    assert report.n_queries == 300 and report.n_gallery == 300
    # the demo world has products without an image and one with an empty caption: a reason, a zero block
    assert report.gaps["zero image block: no image"] >= 1
    assert report.gaps["zero text block: empty caption"] >= 1
    score = score_pools(store, truth, ks=(10, 50, 500))
    assert score["queries"] >= 30 and score["pairs"] >= 50
    assert score["recall"][500] >= 0.95
    assert score["recall"][50] >= 0.95  # measured 1.0
    assert score["recall"][10] >= 0.80  # measured 0.88: the informative figure on 300 products
    p = pools_of(store)
    by_query: dict[str, list] = {}
    for q, c, r, s in zip(p["query_id"], p["candidate_id"], p["rank"], p["score"]):
        by_query.setdefault(q, []).append((r, c, s))
    assert len(by_query) == 300
    for q, rows in by_query.items():
        assert all(c != q for _, c, _ in rows)  # never the query itself
        assert [r for r, _, _ in rows] == list(range(1, 300))  # K = 500 capped at the gallery less the query
        # sorted by score, ties by product_id
        assert rows == sorted(rows, key=lambda t: (-t[2], t[1]))


def test_rerun_is_idempotent_and_resumes_finished_blocks(world):
    store, _ = world
    s = settings(store, pool_queries=1.0, pool_block=64)
    first = build_pools(store, s)
    before = pools_of(store)
    again = build_pools(store, s)
    assert again.n_resumed == again.n_blocks == 5
    assert pools_of(store) == before
    # an interrupted run: the last block's marker is gone, so only that block is searched again
    ckpt = store.root / "derived" / "pools" / first.fingerprint
    (ckpt / "block-256.done").unlink()
    resumed = build_pools(store, s)
    assert resumed.n_resumed == 4
    assert pools_of(store) == before


def test_stable_query_sample_and_stale_pools_dropped(world):
    store, _ = world
    build_pools(store, settings(store, pool_queries=1.0))
    report = build_pools(store, settings(store, pool_queries=0.1, seed=3))
    ids = sorted(store.read("products", columns=["product_id"]).column("product_id").to_pylist())
    expected = sample_queries(ids, 0.1, 3)
    assert report.dropped_queries == 300 - len(expected)
    assert sorted(set(store.read("pools").column("query_id").to_pylist())) == expected
    # stable: adding products never changes which existing products are queries
    assert set(sample_queries(ids[:200], 0.1, 3)) == set(expected) & set(ids[:200])
    assert len(sample_queries(ids, 25, 3)) == 25


def test_missing_image_file_gets_a_reason_not_a_crash(world, tmp_path):
    store, _ = world
    copy = Store.open(copy_store(store.root, tmp_path))
    blob = copy.read("media", where="kind = 'image_norm' AND status = 'ok'").column("blob")[0].as_py()
    (copy.root / blob).unlink()
    report = build_pools(copy, settings(copy, pool_queries=20))
    assert report.gaps["zero image block: image file missing"] >= 1
    assert report.n_queries == 20


def test_faiss_search_option_matches_exact(world):
    store, _ = world
    build_pools(store, settings(store, pool_queries=40))
    exact = pools_of(store)
    report = build_pools(store, settings(store, pool_queries=40, pool_search="faiss-flat"), ann_check=40)
    assert report.ann_recall == 1.0
    flat = pools_of(store)
    # same pools; the order may differ only where two scores differ in float32's last bits
    same = np.mean([a == b for a, b in zip(flat["candidate_id"], exact["candidate_id"])])
    assert same >= 0.98
    assert np.allclose(flat["score"], exact["score"], atol=1e-5)


def test_cli_prints_recall_and_exports_tasks(world, tmp_path):
    store, truth = world
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "pools", "--queries", "1.0",
                                 "--score-against", str(truth)])
    assert result.exit_code == 0, result.output
    recall = {int(k): float(v) for k, v in re.findall(r"recall@(\d+) of true instance matches: ([0-9.]+)", result.output)}
    assert set(recall) == {10, 50, 500} and recall[500] >= 0.95
    out = tmp_path / "tasks"
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "tasks", "--out", str(out), "--top", "5",
                                 "--queries", "10"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (out / "tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 50
    first = lines[0]["data"]
    assert first["rank"] == 1 and first["query_id"] != first["candidate_id"]
    assert first["query_caption"] or first["query_note"]
    with_image = [t["data"] for t in lines if t["data"]["query_image"]]
    assert with_image and all((store.root / "x").parent.as_posix() in t["query_image"] for t in with_image)
    with (out / "tasks.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [t["id"] for t in lines]
    assert len(json.loads((out / "tasks.json").read_text(encoding="utf-8"))) == 50
    assert "<Choice value=\"match\"/>" in (out / "label_config.xml").read_text()
    rel = export_tasks(store, tmp_path / "rel", top=1, image_prefix="/data/local-files/?d=")
    assert rel.n_tasks == 300


def test_queries_and_gallery_from_a_split_version(world, tmp_path):
    store, _ = world
    copy = Store.open(copy_store(store.root, tmp_path))
    ids = sorted(copy.read("products", columns=["product_id"]).column("product_id").to_pylist())
    split = {p: "query-c" if i < 10 else "gallery-c" if i < 110 else "train" for i, p in enumerate(ids)}
    copy.write("splits", [{"product_id": p, "split": s, "version": "v1"} for p, s in split.items()])
    report = build_pools(copy, settings(copy, pool_k=20), split_version="v1")
    assert (report.n_queries, report.n_gallery) == (10, 100)
    p = copy.read("pools").to_pydict()
    assert set(p["query_id"]) == set(ids[:10]) and {split[c] for c in p["candidate_id"]} == {"gallery-c"}
    assert len(p["query_id"]) == 10 * 20
    from m5data.annotate.pools import PoolsError

    with pytest.raises(PoolsError, match="no split version 'v9'"):
        build_pools(copy, settings(copy), split_version="v9")


def products_only(world_store, folder) -> Store:
    """A store holding only the demo world's products (titles, no captions, no media): extract not run."""
    bare = Store.init(folder / "bare")
    bare.write("products", world_store.read("products"))
    return bare


def test_pools_before_extract_embed_the_raw_titles(world, tmp_path):
    """Issue 23 point 3: without captions the titles are embedded (cleaned and tokenised as extract
    would), not 300 products failed with 'no caption and no image'."""
    store, truth = world
    bare = products_only(store, tmp_path)
    result = runner.invoke(app, ["--store", str(bare.root), "annotate", "pools", "--queries", "1.0",
                                 "--score-against", str(truth)])
    assert result.exit_code == 0, result.output
    # the one product whose title cleans to nothing (extract makes its caption `empty`) is the only gap
    empty = store.read("captions", where="status <> 'ok'").column("product_id").to_pylist()
    assert len(empty) == 1
    assert re.search(r"captions made from titles \(extract not run\)\s+│\s+299 ", result.output), result.output
    assert re.search(r"failed: no caption and no image\s+│\s+1 ", result.output), result.output
    p = pools_of(bare)
    assert set(p["query_id"]) == set(bare.read("products").column("product_id").to_pylist()) - set(empty)
    assert len(p["query_id"]) == 299 * 298
    recall = {int(k): float(v) for k, v in re.findall(r"recall@(\d+) of true instance matches: ([0-9.]+)", result.output)}
    assert recall[50] >= 0.8, recall  # measured 0.85 (0.74 at 10): text alone, as with extract's captions
    # the captions made from the titles are the ones extract makes: once it has run, same inputs, same pools
    from m5data.extract.run import run as extract

    extract(bare, load(None, {"store.path": str(bare.root), "extract.workers": 1}, environ={}), kinds="text",
            progress=False)
    report = build_pools(bare, settings(bare, pool_queries=1.0))
    assert report.from_titles == 0 and report.n_resumed == report.n_blocks == 1
    assert pools_of(bare) == p


def test_pools_with_nothing_to_embed_name_the_stage_to_run(tmp_path):
    bare = Store.init(tmp_path / "bare")
    bare.write("products", [{"product_id": f"shop:{i}", "platform": "shop", "source_id": str(i), "title": t}
                            for i, t in enumerate(["", None, " 🔥 "])])
    result = runner.invoke(app, ["--store", str(bare.root), "annotate", "pools"])
    assert result.exit_code == 1, result.output
    assert "m5data extract" in result.output and "3 products" in result.output
    assert bare.read("pools").num_rows == 0
