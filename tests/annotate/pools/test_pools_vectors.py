"""Pools whose image block is the vision stage's vectors (``pools.image = vectors``, issue 78): the main
image's ``image_vectors`` row of one model (m5data/annotate/pools/image_vectors.py). Runs on a small demo
store whose vectors a tiny TorchScript model made (the vision stage with ``vision.model`` a file): a
product given another's vector ranks higher in that one's pool than by text alone; no vectors, or two
models and none named, are refused in one line; a vector written since the last run makes its product a
changed one, and the incremental run's pools are the full search's; another model is a full run."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from support.demo_fixtures import copy_store
from support.pool_compare import assert_same, full_search, pools_of
from typer.testing import CliRunner

from m5data import stages
from m5data.annotate.pools.image_vectors import ImageVectorsError
from m5data.annotate.pools.job import build_pools
from m5data.cli import app
from m5data.config import ConfigError, load
from m5data.storage import Store
from m5data.storage.main_image import main_image_sql

K = 20


def settings(store, **pools):
    pools = {"queries": 1.0, "k": K, "margin": 10, **pools}
    return load(None, {"store.path": str(store.root), **{f"pools.{k}": v for k, v in pools.items()}}, environ={})


@pytest.fixture(scope="module")
def demo60(demo_store_factory):
    return demo_store_factory(products=60, seed=0)  # the store 28 other tests share: built once per suite


@pytest.fixture(scope="module")
def with_vectors(demo60, tmp_path_factory):
    """A copy of the 60-product demo store with the image vectors of a tiny TorchScript model, and its model name."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)

        def forward(self, x):
            return torch.relu(self.conv(x))  # (N, 16, h, w): averaged into 16-d vectors

    root = tmp_path_factory.mktemp("pools-vectors")
    model = root / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny()), str(model))
    store = Store.open(copy_store(demo60, root))
    s = load(None, {"store.path": str(store.root), "vision.model": str(model), "vision.image_size": 64}, environ={})
    stages.check("vision", s, {})
    made = stages.call("vision", stages.RunContext(s, _store=store))
    assert made.n_out > 50 and not made.n_failed
    return store.root, made.details["model"]


@pytest.fixture()
def store(with_vectors, tmp_path):
    root, model = with_vectors
    return Store.open(copy_store(root, tmp_path)), model


def main_norm(store) -> dict[str, str]:
    """product_id -> the media_id of its main image's normalised copy."""
    con = store.connect()
    try:
        rows = con.sql(f"SELECT m.product_id, d.media_id FROM ({main_image_sql('product_id, media_id')}) m "
                       "JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm' AND d.status = 'ok'").fetchall()
    finally:
        con.close()
    return dict(rows)


def vectors_of(store, model: str) -> dict[str, list[float]]:
    return {r["media_id"]: r["vector"] for r in store.read("image_vectors", where="vector IS NOT NULL").to_pylist()
            if r["model"] == model}


def put_vector(store, model: str, product: str, media: str, vector, error: str | None = None) -> None:
    store.write("image_vectors", [{"media_id": media, "model": model, "product_id": product, "blob": None,
                                   "dim": None if vector is None else len(vector), "vector": vector, "error": error,
                                   "made_at": datetime.now(timezone.utc)}])


def rank(store, query: str, candidate: str) -> int:
    """``candidate``'s place in ``query``'s pool (K + 1: not in it)."""
    return next((i for i, (c, _) in enumerate(pools_of(store).get(query, []), 1) if c == candidate), K + 1)


def test_vectors_run_and_a_product_given_anothers_vector_ranks_higher_than_by_text(store):
    store, model = store
    s_none = settings(store, image="none", k=59)
    build_pools(store, s_none, full=True)
    text_only = pools_of(store)
    norm = main_norm(store)
    have = vectors_of(store, model)
    query = sorted(q for q in text_only if norm.get(q) in have)[0]
    # the product that ranks last by text in the query's pool, and has a main image: gets the query's vector
    partner = next(c for c, _ in reversed(text_only[query]) if norm.get(c) in have)
    before = rank(store, query, partner)
    assert before > K  # out of the top K by text alone
    report = build_pools(store, settings(store, image="vectors"), full=True)
    assert report.embedder == f"tfidf-svd128+vectors:{model}" and not report.stats.n_failed
    assert report.n_queries == 60 and "zero image block: no image vector of the model" not in report.gaps
    plain = rank(store, query, partner)
    put_vector(store, model, partner, norm[partner], have[norm[query]])
    report = build_pools(store, settings(store, image="vectors"), full=True)
    after = rank(store, query, partner)
    print(f"rank of the partner: text only {before}, vectors {plain}, with the query's own vector {after}")
    assert after < plain and after <= 10  # measured: 57th by text, 8th with the query's own vector
    # a vector row with the picture's error: a zero image block, counted, the product kept by its text
    put_vector(store, model, partner, norm[partner], None, error="not an image")
    report = build_pools(store, settings(store, image="vectors"))
    assert report.gaps["zero image block: image vector error"] == 1 and partner in pools_of(store)


def test_no_vectors_or_two_models_unnamed_are_refused_in_one_line(demo60, store, tmp_path):
    bare = Store.open(copy_store(demo60, tmp_path, "bare"))
    with pytest.raises(ImageVectorsError, match=r"no image vectors.*m5data vision") as e:
        build_pools(bare, settings(bare, image="vectors"))
    assert "\n" not in str(e.value)
    out = CliRunner().invoke(app, ["--store", str(bare.root), "annotate", "pools", "--image", "vectors"])
    assert out.exit_code == 1 and "m5data vision" in out.output and "Traceback" not in out.output
    assert len([line for line in out.output.splitlines() if line.strip()]) <= 2, out.output
    store, model = store
    norm = main_norm(store)
    product = sorted(norm)[0]
    put_vector(store, "other (sha256 0123)", product, norm[product], [1.0] + [0.0] * 15)
    with pytest.raises(ImageVectorsError, match=r"2 models.*pools.image_model") as e:
        build_pools(store, settings(store, image="vectors"))
    assert "\n" not in str(e.value) and model in str(e.value) and "other (sha256 0123)" in str(e.value)
    with pytest.raises(ImageVectorsError, match="pools.image_model 'nothing'"):
        build_pools(store, settings(store, image="vectors", image_model="nothing"))
    report = build_pools(store, settings(store, image="vectors", image_model=model))
    assert report.embedder.endswith(model) and report.n_queries == 60


@pytest.mark.parametrize(("pools", "key"), [({"image": "vector"}, "pools.image must be one of descriptor, none, vectors"),
                                            ({"image": "descriptor", "image_model": "m"}, "pools.image_model")])
def test_the_stage_check_refuses_bad_image_settings(tmp_path, monkeypatch, pools, key):
    monkeypatch.chdir(tmp_path)
    s = load(None, {f"pools.{k}": v for k, v in pools.items()}, environ={})
    with pytest.raises(ConfigError, match=key):
        stages.check("pools", s, {})


def test_a_new_vector_makes_its_product_changed_and_the_incremental_run_is_the_full_search(store):
    store, model = store
    s = settings(store, image="vectors")
    first = build_pools(store, s)
    assert first.refit == "no earlier complete run"
    norm = main_norm(store)
    have = vectors_of(store, model)
    with_image = sorted(p for p in norm if norm[p] in have)
    query, partner = with_image[0], with_image[-1]
    old_rank = rank(store, query, partner)
    put_vector(store, model, partner, norm[partner], have[norm[query]])  # written since the last run
    again = build_pools(store, s)
    assert again.refit is None, again.refit
    assert again.changes == {"new": 0, "changed": 1, "unchanged": 59}, again.changes
    incremental = pools_of(store)
    assert rank(store, query, partner) < min(old_rank, K + 1)
    assert_same(incremental, full_search(store, s))
    rebuilt = build_pools(store, s, full=True)  # the refit moves the image block's mean a little
    assert rebuilt.refit == "full run asked" and rank(store, query, partner) == incremental_rank(incremental, query, partner)
    full = pools_of(store)
    agree = sum(c in {x for x, _ in full[q]} for q in incremental for c, _ in incremental[q]) / sum(map(len, full.values()))
    assert agree >= 0.95, agree
    # the table's one model replaced by another (pools.image_model unset): what decides the pools changed, a full run
    rows = store.read("image_vectors").to_pylist()
    for i, r in enumerate(rows):
        r["model"], r["vector"] = "other (sha256 0123)", list(np.eye(16, dtype=float)[i % 16])
    store.replace("image_vectors", rows)
    other = build_pools(store, s)
    assert other.refit == "settings changed" and other.embedder.endswith("other (sha256 0123)")


def incremental_rank(pools: dict, query: str, candidate: str) -> int:
    return next((i for i, (c, _) in enumerate(pools.get(query, []), 1) if c == candidate), K + 1)
