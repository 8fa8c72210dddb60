"""The export's streamed plan and samples: the same shards, plan digest and samples as the in-memory
functions they replace (plan_shards, load_samples), on a small hand-written store."""

from __future__ import annotations

import random

import pytest

from m5data.export.members import split_counts, stream_samples
from m5data.export.plan import plan_record as _plan_record
from m5data.export.run import Shard, ShardPlan, plan_export, plan_shards, shard_samples
from m5data.export.sample_rows import load_samples
from m5data.export.samples import ExportError
from m5data.storage import Store


def _ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return sorted({f"{rng.choice('ab')}:{rng.randrange(10 ** 6)}{rng.choice(['', '~', 'é', '商'])}" for _ in range(n)})


@pytest.mark.parametrize("shard_size, shard_bytes", [(7, 0), (1000, 0), (1, 0), (5, 9000)])
def test_shard_plan_equals_plan_shards_across_batch_cuts(shard_size, shard_bytes):
    from m5data.config import load

    members = {"train": _ids(90, 1), "query-c": _ids(23, 2), "cls-test": _ids(1, 3)}
    sizes = {p: random.Random(p).randrange(0, 6000) for ids in members.values() for p in ids}
    plan = ShardPlan(shard_size, shard_bytes)
    for split, ids in members.items():  # runs of one split arrive in pieces (Arrow batches)
        for lo in range(0, len(ids), 13):
            chunk = ids[lo:lo + 13]
            plan.add(split, chunk, [sizes[p] for p in chunk])
    streamed = plan.shards()
    listed = plan_shards(members, shard_size, shard_bytes, sizes)
    assert [(s.split, s.index, s.count, s.size, s.last) for s in streamed] == \
           [(s.split, s.index, s.count, len(s.product_ids), s.product_ids[-1]) for s in listed]
    settings = load(None, {"export.shard_size": shard_size, "export.shard_bytes": shard_bytes}, environ={})
    # the plan file of a streamed plan is byte for byte the one of the listed plan (old exports resume)
    assert _plan_record("webdataset", "v1", streamed, settings, plan.digest.hexdigest()) == \
           _plan_record("webdataset", "v1", listed, settings)


def test_shard_samples_cuts_by_last_id_and_counts_missing_members():
    shards = [Shard("train", 0, 2, last="b:2", size=2), Shard("train", 1, 2, last="b:9", size=2),
              Shard("query-c", 0, 1, last="a:5", size=1)]
    rows = [("train", "a:1", "s-a1"), ("train", "b:2", None), ("train", "b:3", "s-b3"), ("train", "b:9", "s-b9"),
            ("query-c", "a:5", "s-a5")]
    out = [(sh.index, sh.split, sh.product_ids, samples) for sh, samples in shard_samples(rows, shards)]
    assert out == [(0, "train", ("a:1", "b:2"), ["s-a1"]), (1, "train", ("b:3", "b:9"), ["s-b3", "s-b9"]),
                   (0, "query-c", ("a:5",), ["s-a5"])]


@pytest.fixture()
def small_store(tmp_path):
    store = Store.init(tmp_path / "store")
    ids = [f"shop:{n}" for n in range(12)]
    store.write("products", [{"product_id": p, "platform": "shop", "source_id": p[5:], "title": f"t{p}",
                              "category_path": ["家电", "冰箱"] if int(p[5:]) % 2 else ["家电"]} for p in ids])
    store.write("specs", [{"product_id": p, "position": k, "property": f"p{k}", "value": None if k == 1 else f"v{k}"}
                          for p in ids[:8] for k in (2, 0, 1)])
    media = []
    for n, p in enumerate(ids):
        media.append({"media_id": f"{p}|norm", "product_id": p, "kind": "image_norm", "position": 0,
                      "blob": f"blobs/00/{n}.jpg", "status": "ok" if n % 3 else "failed"})
        media.append({"media_id": f"{p}|png", "product_id": p, "kind": "image", "role": "main", "position": 0,
                      "blob": f"blobs/01/{n}.png", "mime": "image/png", "status": "ok"})
        media.append({"media_id": f"{p}|jpg", "product_id": p, "kind": "image", "role": "main", "position": 1,
                      "blob": f"blobs/02/{n}.jpg", "mime": "image/jpeg", "status": "ok"})
    store.write("media", media)
    store.write("captions", [{"product_id": p, "text": f"caption {p}", "status": "ok"} for p in ids[::4]])
    # a member that is not a product (skipped), one product in two splits
    store.write("splits", [{"product_id": p, "split": "train" if n % 4 else "query-c", "version": "v1"}
                           for n, p in enumerate(ids + ["shop:gone"])]
                + [{"product_id": ids[3], "split": "cls-test", "version": "v1"}])
    return store


def test_stream_samples_equal_load_samples(small_store):
    members = split_counts(small_store)
    assert members.version == "v1" and list(members.counts) == ["train", "query-c", "cls-test"]
    con = small_store.connect()
    try:
        rows = list(stream_samples(con, members, batch=5))
        for split in members.counts:
            ids = sorted(p for s, p, _ in rows if s == split)
            assert [p for s, p, _ in rows if s == split] == ids  # export order: product ids sorted
            assert [x for s, _, x in rows if s == split and x is not None] == load_samples(con, ids)
    finally:
        con.close()
    assert ("query-c", "shop:gone", None) in rows
    sample = next(x for _, p, x in rows if p == "shop:1")
    assert sample.specs == [("p0", "v0"), ("p1", ""), ("p2", "v2")]
    assert sample.image == "blobs/00/1.jpg"  # the normalised image; the PNG original never stands in
    assert next(x for _, p, x in rows if p == "shop:3").image == "blobs/02/3.jpg"


def test_plan_export_reads_the_store_and_refuses_unknown_splits(small_store):
    members = split_counts(small_store, "v1", "train")
    shards, digest = plan_export(small_store, members, 4)
    assert [(s.split, s.index, s.count, s.size) for s in shards] == [("train", 0, 3, 4), ("train", 1, 3, 4),
                                                                      ("train", 2, 3, 1)]
    assert len(digest) == 64
    with pytest.raises(ExportError, match="not in version"):
        split_counts(small_store, "v1", "gallery-fg")
    with pytest.raises(ExportError, match="no split version"):
        split_counts(small_store, "v9")


def test_stream_samples_read_the_newest_rows_of_products_written_twice(small_store):
    """Products whose specs and media were written again (their keys are in two parts, read through
    the store's window): every cursor of the stream's connection reads the newest rows."""
    small_store.write("specs", [{"product_id": "shop:1", "position": 0, "property": "p0", "value": "new"}])
    small_store.write("media", [{"media_id": "shop:1|norm", "product_id": "shop:1", "kind": "image_norm",
                                 "position": 0, "blob": "blobs/09/1.jpg", "status": "ok"}])
    members = split_counts(small_store)
    con = small_store.connect()
    try:
        rows = list(stream_samples(con, members, batch=3))
        for split in members.counts:
            ids = sorted(p for s, p, _ in rows if s == split)
            assert [x for s, _, x in rows if s == split and x is not None] == load_samples(con, ids)
    finally:
        con.close()
    sample = next(x for _, p, x in rows if p == "shop:1")
    assert sample.specs == [("p0", "new")]  # a product's spec rows are replaced together
    assert sample.image == "blobs/09/1.jpg"


def test_stream_samples_spill_instead_of_running_out_of_memory(tmp_path):
    """Specs many times larger than DuckDB's memory limit stream in order: the samples are sorted as
    flat rows, which spill to the temp folder (lists of each product's specs, sorted whole, did not:
    the export of a 1M-product store ran out of its 2 GB)."""
    store = Store.init(tmp_path / "store")
    ids = [f"shop:{n:05d}" for n in range(4000)]
    store.write("products", [{"product_id": p, "platform": "shop", "source_id": p[5:], "title": f"t{p}"} for p in ids])
    store.write("specs", [{"product_id": p, "position": k, "property": f"p{k}", "value": f"{p}-{k}-" + "x" * 300}
                          for p in ids for k in range(40)])
    store.write("splits", [{"product_id": p, "split": "train", "version": "v1"} for p in ids])
    con = store.connect()
    try:
        con.execute("SET memory_limit = '96MB'")
        con.execute(f"SET temp_directory = '{tmp_path / 'spill'}'")
        con.execute("SET threads = 1")
        n = 0
        for split, pid, sample in stream_samples(con, split_counts(store)):
            assert pid == ids[n] and len(sample.specs) == 40
            assert sample.specs[39] == ("p39", f"{pid}-39-" + "x" * 300)
            n += 1
    finally:
        con.close()
    assert n == len(ids)
