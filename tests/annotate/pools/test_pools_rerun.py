"""Issue 21: a pools re-run whose work is done reads no catalog (the saved input state of the last
complete run is the store's and the settings' state), and any change falls back to the full run,
whose pools are a from-scratch run's."""

import json
import shutil

import pytest
from support.demo_fixtures import copy_store
from typer.testing import CliRunner

from m5data.annotate.pools import full_run
from m5data.annotate.pools.job import build_pools
from m5data.cli import app
from m5data.config import load
from m5data.storage import Store

# one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("demo300")

runner = CliRunner()
QUERIES = 30


@pytest.fixture(scope="module")
def done(demo_store_factory, tmp_path_factory):
    """The default demo world's store (300 products, images and captions) after one complete pools run."""
    src = demo_store_factory(products=300, seed=0, faces=False)
    store = Store.open(copy_store(src, tmp_path_factory.mktemp("rerun")))
    shutil.rmtree(store.local_root() / "derived" / "pools", ignore_errors=True)
    build_pools(store, settings(store), fresh=True)
    return store


def settings(store, **pools):
    pools = {"queries": QUERIES, **pools}
    return load(None, {"store.path": str(store.root), **{f"pools.{k}": v for k, v in pools.items()}}, environ={})


def pools_of(store):
    """The pools table without run_id (a re-searched block carries the new run's id)."""
    cols = ["query_id", "candidate_id", "rank", "score", "embedder"]
    return store.read("pools", columns=cols).sort_by([("query_id", "ascending"), ("rank", "ascending")]).to_pydict()


def pool_runs(store) -> list[dict]:
    rows = store.read("runs", where="stage = 'pools'").sort_by("started_at").to_pylist()
    return [{**r, "config": json.loads(r["config"])} for r in rows]


def no_catalog_read(monkeypatch):
    """Make reading the catalog (or the vectors) an error: an up-to-date re-run never does."""
    def refuse(*args, **kwargs):
        raise AssertionError("an up-to-date pools re-run read the catalog")

    monkeypatch.setattr(full_run, "read_catalog", refuse)
    monkeypatch.setattr(full_run, "product_vectors", refuse)


def test_unchanged_rerun_reads_no_catalog(done, tmp_path, monkeypatch):
    store = Store.open(copy_store(done.root, tmp_path))
    first_run = pool_runs(store)[-1]
    before, parts = pools_of(store), sorted(p.name for p in store.parts("pools"))
    no_catalog_read(monkeypatch)
    again = build_pools(store, settings(store))
    assert again.up_to_date and again.n_resumed == again.n_blocks == 1 and again.vectors_reused
    assert (again.n_products, again.n_queries, again.n_gallery) == (300, QUERIES, 300)
    assert again.gaps["zero image block: no image"] >= 1  # the saved report's counts
    assert pools_of(store) == before and sorted(p.name for p in store.parts("pools")) == parts
    row = pool_runs(store)[-1]
    assert row["run_id"] == again.stats.run_id != first_run["run_id"]
    # the runs row of the run that made the pools, but for its id, times and the up_to_date flag
    assert row["config"].pop("up_to_date") is True
    for key in ("stage", "status", "n_in", "n_out", "n_failed", "bytes", "failures", "config"):
        assert row[key] == first_run[key], key
    assert row["n_in"] == QUERIES and row["n_out"] == QUERIES
    # the CLI says so (and still reads nothing)
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "pools", "--queries", str(QUERIES)])
    assert result.exit_code == 0, result.output
    assert "pools up to date: nothing changed" in result.output
    assert "not read (pools up to date)" in result.output
    assert len(pool_runs(store)) == len(pool_runs(done)) + 2


def _new_product(store):
    p = store.read("products").sort_by("product_id").slice(0, 1).to_pylist()[0]
    store.write("products", [{**p, "product_id": p["product_id"] + "-copy", "source_id": p["source_id"] + "-copy"}])


def _new_caption(store):
    cap = store.read("captions", where="status = 'ok'").sort_by("product_id").slice(0, 1).to_pylist()[0]
    store.write("captions", [{**cap, "text": cap["text"] + " 新", "tokens": cap["tokens"] + ["新"]}])


def _compacted_captions(store):
    """An old captions row written again (a part of its own), a complete run, then the table compacted."""
    cap = store.read("captions").sort_by("product_id").slice(0, 1).to_pylist()[0]
    store.write("captions", [cap])
    build_pools(store, settings(store))
    names = sorted(p.name for p in store.parts("captions"))
    store.compact("captions")
    assert sorted(p.name for p in store.parts("captions")) != names


def _lost_image(store):
    """The normalised main image of one product (the one pools embed) removed from its folder."""
    from m5data.annotate.pools.vectors import read_catalog

    blob = next(b for b in read_catalog(store).column("blob") if b)
    (store.local_root() / blob).unlink()


CHANGES = {
    "new products part": (_new_product, {}, False),
    "new captions part": (_new_caption, {}, False),
    "captions compacted": (_compacted_captions, {}, False),
    "image file lost": (_lost_image, {}, False),
    "setting": (None, {"k": 40}, False),
    "fresh": (None, {}, True),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_runs_the_full_path_and_the_next_run_is_up_to_date(done, tmp_path, change):
    store = Store.open(copy_store(done.root, tmp_path, "changed"))
    edit, overrides, fresh = CHANGES[change]
    if edit:
        edit(store)
    s = settings(store, **overrides)
    report = build_pools(store, s, fresh=fresh)
    assert not report.up_to_date
    if fresh:
        assert report.n_resumed == 0
    if change == "image file lost":
        assert report.gaps["zero image block: image file missing"] >= 1  # listings may share an image
    assert build_pools(store, s).up_to_date  # the full run saved its state


def test_the_full_path_after_a_change_gives_a_from_scratch_runs_pools(done, tmp_path):
    """One change case compared with a run from scratch (each costs a full embedding of the store:
    the other cases check only that the full path ran; the existing pools tests check what it gives)."""
    store = Store.open(copy_store(done.root, tmp_path, "changed"))
    _new_caption(store)
    assert not build_pools(store, settings(store, k=40)).up_to_date
    scratch = Store.open(copy_store(store.root, tmp_path, "scratch"))
    for p in scratch.parts("pools"):
        p.unlink()
    shutil.rmtree(scratch.local_root() / "derived" / "pools")
    assert not build_pools(scratch, settings(scratch, k=40)).up_to_date
    assert pools_of(store) == pools_of(scratch)


def test_pools_changed_behind_the_run_are_not_up_to_date(done, tmp_path):
    """A pools part deleted or a block marker removed: the full path runs and searches that block again."""
    store = Store.open(copy_store(done.root, tmp_path))
    store.parts("pools")[0].unlink()
    report = build_pools(store, settings(store))
    assert not report.up_to_date and report.n_resumed == 0  # its block is searched again
    assert pools_of(store) == pools_of(done)
    store = Store.open(copy_store(done.root, tmp_path, "marker"))
    for marker in (store.local_root() / "derived" / "pools").glob("*/block-*.done"):
        marker.unlink()
    report = build_pools(store, settings(store))
    assert not report.up_to_date and report.n_resumed == 0
    assert pools_of(store) == pools_of(done)
    # an approximate-search check always searches
    assert build_pools(store, settings(store), ann_check=5).ann_recall is not None
