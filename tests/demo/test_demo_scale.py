"""The scale world (m5data/demo/scale): determinism, the category long tail, and a store built from
it that doctor accepts and the global stages run on."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m5data.demo.scale import ScaleConfig
from m5data.demo.scale.generate import generate_scale
from m5data.demo.scale.store import build_scale_store
from m5data.demo.scale.workers import chunk_map
from m5data.demo.scale.world import ScaleTaxonomy, build_chunk

ROOT = Path(__file__).resolve().parents[2]
N = 2000


def _tree_digest(root: Path, *subdirs: str) -> dict[str, str]:
    out = {}
    for sub in subdirs:
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def m5data(store: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "m5data", "--store", str(store), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "world"
    # 20 chunks on 2 workers: more than one pool's worth (2 x 8), so the workers are replaced mid-way
    # (ProcessPoolExecutor's own max_tasks_per_child waited forever there: CPython gh-115634)
    generate_scale(out, ScaleConfig(products=N, seed=3, chunk_size=100, video_share=0.05), workers=2)
    return out


@pytest.fixture(scope="module")
def store(world) -> Path:
    path = world.parent / "store"
    build_scale_store(world, path, workers=2)
    return path


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    cfg = ScaleConfig(products=300, seed=5, chunk_size=100, video_share=0.0)
    generate_scale(tmp_path / "a", cfg, workers=2)
    generate_scale(tmp_path / "b", cfg, workers=1)  # chunk order and worker count do not matter
    a = _tree_digest(tmp_path / "a", "site", "chunks", "truth")
    assert a == _tree_digest(tmp_path / "b", "site", "chunks", "truth")
    assert len([k for k in a if k.endswith(".jpg")]) == 300
    other = ScaleConfig(products=300, seed=6, chunk_size=100, video_share=0.0)
    assert [p.title for p in build_chunk(other, 0).products] != [p.title for p in build_chunk(cfg, 0).products]


def test_long_tail_reaches_m5product_categories_at_1m():
    assert ScaleConfig(products=1_000_000).n_leaf_categories() == 6232
    big = ScaleTaxonomy(ScaleConfig(products=1_000_000))
    assert abs(len(big.leaves) - 6232) <= 60  # level-3 children of the sampled real sub-classes vary a little


def test_world_has_a_long_tail_duplicates_and_truth(world):
    man = __import__("json").loads((world / "truth" / "manifest.json").read_text())
    c = man["counts"]
    assert c["products"] == N and c["images"] == N
    assert c["leaf_categories_with_products"] >= 0.8 * ScaleConfig(products=N).n_leaf_categories()
    assert c["leaves_with_at_most_5_products"] >= 0.3 * c["leaf_categories_with_products"]  # a long tail
    assert c["products_per_leaf_top"] >= 5 * N / c["leaf_categories_with_products"]  # and a head
    products = pq.read_table(world / "truth" / "products.parquet").to_pylist()
    assert len({p["product_id"] for p in products}) == N
    by_instance: dict[str, set[str]] = {}
    for p in products:
        by_instance.setdefault(p["instance_id"], set()).add(p["platform"])
    assert sum(len(v) == 2 for v in by_instance.values()) >= 20  # duplicates across platforms
    assert 0.01 < sum(p["caption_mismatched"] for p in products) / N < 0.06
    assert any(p["merchant_id"] == "" for p in products)
    assert (world / "truth" / "level1_mapping.toml").read_text().startswith("# Level-1 mapping")
    assert pq.read_table(world / "truth" / "alignment.parquet").num_rows > 100


def test_store_matches_the_world_and_passes_doctor(world, store):
    from m5data.extract.text import caption_row
    from m5data.storage import Store

    s = Store.open(store)
    con = s.connect()
    try:
        assert con.execute("SELECT count(*) FROM products").fetchone()[0] == N
        assert con.execute("SELECT count(*) FROM specs").fetchone()[0] == pq.read_table(world / "truth" / "specs.parquet").num_rows
        ok = con.execute("SELECT count(*) FROM media WHERE kind = 'image' AND role = 'main' AND status = 'ok' "
                     "AND phash IS NOT NULL AND blob IS NOT NULL").fetchone()[0]
        norm = con.execute("SELECT count(*) FROM media WHERE kind = 'image_norm' AND status = 'ok'").fetchone()[0]
        videos = con.execute("SELECT count(*) FROM media WHERE kind = 'video' AND status = 'ok'").fetchone()[0]
        pid, title, tokens = con.execute("SELECT c.product_id, p.title, c.tokens FROM captions c "
                                     "JOIN products p USING (product_id) ORDER BY 1 LIMIT 1").fetchone()
        stages = {r[0] for r in con.execute("SELECT stage FROM runs").fetchall()}
    finally:
        con.close()
    assert ok == N and norm == N and videos > 0
    assert tokens == caption_row(pid, title)["tokens"]  # what extract's text job writes
    assert {"crawl", "download", "extract"} <= stages
    done = m5data(store, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(FileExistsError):
        build_scale_store(world, store)


def test_global_stages_run_on_the_scale_store(world, store, tmp_path):
    steps = [["align", "--mapping", str(world / "truth" / "level1_mapping.toml"), "--review-out", str(tmp_path / "r.csv")],
             ["annotate", "dedup", "--score-against", str(world / "truth")],
             ["build-splits"],
             ["export", "--split", "all", "--format", "parquet", "--out", str(tmp_path / "export")]]
    for argv in steps:
        done = m5data(store, *argv)
        assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    from m5data.storage import Store

    con = Store.open(store).connect()
    try:
        assert con.execute("SELECT count(*) FROM label_map WHERE class_id IS NOT NULL").fetchone()[0] > 100
        assert con.execute("SELECT count(DISTINCT group_id) FROM dedup").fetchone()[0] < N  # groups were found
        assert con.execute("SELECT count(DISTINCT product_id) FROM splits").fetchone()[0] >= 0.95 * N  # splits may leave a few out
    finally:
        con.close()
    assert any((tmp_path / "export").rglob("*.parquet"))


def _task(i: int) -> tuple[int, int]:
    return i * i, os.getpid()


@pytest.mark.timeout(120)
def test_chunk_workers_are_replaced_and_every_result_comes_back_in_order():
    """Python 3.11's ``ProcessPoolExecutor(2, max_tasks_per_child=2)`` stops after four of twelve tasks
    and waits forever; ``chunk_map`` replaces its processes by pools and returns all twelve."""
    out = list(chunk_map(_task, [(i,) for i in range(12)], workers=2, per_worker=2))
    assert [r for r, _ in out] == [i * i for i in range(12)]
    pids = [pid for _, pid in out]
    assert os.getpid() not in pids
    # three pools of at most two processes, none serving tasks of another pool
    assert len(set(pids)) >= 3 and not set(pids[:4]) & set(pids[4:])
    assert list(chunk_map(_task, [(3,)], workers=1, per_worker=2)) == [(9, os.getpid())]


def test_incomplete_world_is_refused(tmp_path):
    cfg = ScaleConfig(products=200, chunk_size=100, video_share=0.0)
    generate_scale(tmp_path / "w", cfg, workers=1)
    (tmp_path / "w" / "chunks" / "chunk-00001.json").unlink()
    with pytest.raises(ValueError, match="chunk-00001"):
        build_scale_store(tmp_path / "w", tmp_path / "s")


def test_site_is_served_and_crawled_to_the_worlds_products(tmp_path):
    """`--site` writes pages the real crawler reads: every product of the world is crawled from the
    home page with its title, price and spec table; listing pages, sitemaps and truth/pages agree;
    an interrupted site pass resumes to the same bytes."""
    from m5data.config import load
    from m5data.crawler.crawl import run as crawl
    from m5data.demo.scale.site import write_scale_site
    from m5data.demo.server import serve_in_thread
    from m5data.storage import Store

    world = tmp_path / "world"
    generate_scale(world, ScaleConfig(products=200, seed=4, chunk_size=100, video_share=0.05), workers=2)
    counts = write_scale_site(world, workers=2)
    truth = pq.read_table(world / "truth" / "products.parquet").to_pylist()
    pages = pq.read_table(world / "truth" / "pages.parquet").to_pylist()
    assert counts["product_pages"] == 200 == sum(p["kind"] == "product" for p in pages)
    assert counts["listing_pages"] == sum(p["kind"] == "listing" for p in pages) >= counts["categories"] > 10
    assert sum(p["n_products"] for p in pages if p["kind"] == "listing") == 200
    sitemap = (world / "site" / "shopa" / "sitemap.xml").read_text(encoding="utf-8")
    assert all(f"__BASE__{p['url']}</loc>" in sitemap for p in truth if p["platform"] == "shopa")

    first = _tree_digest(world, "site", "truth")
    (world / "chunks" / "pages-00001.json").unlink()  # as if killed before this chunk's marker ...
    lost = pq.read_table(world / "chunks" / "listings" / "chunk-00001.parquet").column("url")[0].as_py()
    (world / "site" / lost.lstrip("/")).unlink()  # ... with one of its pages not written yet
    write_scale_site(world, workers=1)
    assert _tree_digest(world, "site", "truth") == first

    store = Store.init(tmp_path / "store")
    settings = load(None, {"store.path": str(store.root), "crawl.allow_private": True}, environ={})
    with serve_in_thread(world) as running:
        stats = crawl(store, settings, start_urls=[f"{running.url}/"], progress=False)
    assert stats.n_failed == 0
    got = {r["product_id"]: r for r in store.read("products").to_pylist()}
    assert set(got) == {p["product_id"] for p in truth}
    specs = pq.read_table(world / "truth" / "specs.parquet").to_pylist()
    n_specs = {}
    for s in specs:
        n_specs[s["product_id"]] = n_specs.get(s["product_id"], 0) + 1
    for p in truth:
        row = got[p["product_id"]]
        assert row["title"] == p["title"] and row["price"] == pytest.approx(p["price"])
    stored = {}
    for s in store.read("specs").to_pylist():
        stored[s["product_id"]] = stored.get(s["product_id"], 0) + 1
    assert stored == n_specs
