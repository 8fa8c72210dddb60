"""M5Product ``finish``: the streamed merge (one shard in memory, DuckDB's sort) writes byte for byte
the files the in-memory merge wrote (kept here, only, as the reference), and the streaming JSON
writer is ``json.dumps(..., ensure_ascii=False, sort_keys=True, indent=1)``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.m5product_reference import finish_in_memory

from m5data.export import m5product, m5product_format
from m5data.export.json_stream import ObjectWriter, atomic_text, dumps, write_json_atomic

# ------------------------------------------------------------------------------------------ exports

NASTY = ['say "hi"', "back\\slash", "two\nlines", "line\u2028sep", "para\u2029sep", "tab\there", "nul\x00ctl\x1f",
         "商品 KBDfans 黑色", "emoji 🎧", "é accent", "#:# and #;# kept", ""]
CLASSES = [(1, "服装", 11, "T恤"), (1, "服装", 12, "裙子 \"a\""), (2, "Home\\Garden", 21, "lamp\u2028x"),
           (3, "c3", 31, "s31")]


def record(n: int, *, title: str | None = None) -> dict:
    """A shard record as ``write_shard`` writes it; every 6th product has no sub-class."""
    c, cname, s, sname = CLASSES[n % len(CLASSES)]
    unlabelled = n % 6 == 5
    return {"title": title if title is not None else f"{NASTY[n % len(NASTY)]} #{n}",
            "pv": m5product_format.pv_string([(NASTY[(n + 1) % len(NASTY)], NASTY[(n + 2) % len(NASTY)]), ("品牌", f"v{n}")]),
            "product_id": f"shop:{n:05d}", "class_id": c, "class_name": cname,
            "sub_class_id": None if unlabelled else s, "sub_class_name": None if unlabelled else sname,
            "subsub_class_id": None, "subsub_class_name": None, "group_id": f"g{n // 4}" if n % 3 else None}


def write_export(out: Path, plan: list[tuple[str, list[int]]], iid=lambda n: f"{(n * 7919) % 100_003}",
                 titles: dict | None = None) -> list[dict]:
    """Write ``_shards/<split>-<index>.part.json`` for each ``(split, products)`` in plan order (a
    shard's products in product id order) the way ``write_shard`` does; the shards' stats dicts."""
    shards, index = [], {}
    for split, products in plan:
        n_shard = index[split] = index.get(split, -1) + 1
        path = Path("_shards") / f"{split}-{n_shard:05d}.part.json"
        write_json_atomic(out / path, {iid(n): record(n, title=(titles or {}).get((split, n))) for n in products})
        shards.append({"path": str(path), "split": split, "index": n_shard})
    return shards


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "_shards" not in p.parts and p.name != m5product_format.STATS}


def both(tmp_path: Path, plan, options: dict, **kw) -> tuple[dict, dict]:
    """The files of the reference merge and of ``m5product.finish`` over the same shards."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    shards = write_export(old, plan, **kw)
    shutil.copytree(old, new)
    finish_in_memory(old, "v1", shards, options)
    m5product.finish(None, new, "v1", None, shards, options)
    assert not (new / "_shards" / ".finish").exists()  # finish's scratch files are gone
    assert not [p for p in new.rglob(".tmp-*")]
    return files_of(old), files_of(new)


# ------------------------------------------------------------------------------------------ tests


def test_streamed_finish_writes_the_bytes_of_the_in_memory_merge(tmp_path):
    # products 0-99 in train (3 shards), every 3rd in cls-train (2 shards), 10 query/gallery items,
    # one product in train AND query-c; cls-train's record of product 3 has another title: the last
    # shard in plan order wins, as records.update did
    train = list(range(100))
    plan = [("train", train[:40]), ("train", train[40:80]), ("train", train[80:]),
            ("query-c", [100, 101, 102, 7]), ("gallery-c", [103, 104, 105]), ("query-fg", [106]),
            ("gallery-fg", [107, 108]), ("cls-train", train[:60:3]), ("cls-train", train[60::3]),
            ("cls-test", [5, 11, 17])]
    old, new = both(tmp_path, plan, {"item_ids": "source_id"}, titles={("cls-train", 3): "renamed \"later\"\n"})
    assert set(old) == set(new) and new == old
    three = str(3 * 7919)  # product 3's item id
    assert json.loads(new["m5data_items.json"])["items"][three]["splits"] == ["train", "cls-train"]
    assert json.loads(new["captions.json"])[three]["title"] == "renamed \"later\"\n"
    assert "retrieval/coarse/query.txt" in new and "retrieval/fine/train.txt" in new
    assert b"\\u2028" not in new["captions.json"] and "\u2028".encode() in new["captions.json"]


@pytest.mark.parametrize("plan", [[], [("train", [])], [("train", []), ("query-c", []), ("gallery-c", [])]],
                         ids=["no-shards", "empty-shard", "empty-splits"])
def test_empty_exports_give_the_same_files(tmp_path, plan):
    old, new = both(tmp_path, plan, {"item_ids": "key"})
    assert new == old
    assert new["captions.json"] == b"{}\n" and new["m5product_label_list.json"] == b"[]\n"


def test_non_contiguous_splits_and_one_list_name_for_two_splits(tmp_path):
    # not what plan_export makes, but what the old merge handled: a split's shards apart, and
    # cls-train / cls_train writing one list file (the later split wins)
    plan = [("train", [1, 2, 3]), ("cls-train", [2]), ("train", [4, 5]), ("cls_train", [3, 4]), ("train", [2])]
    old, new = both(tmp_path, plan, {"item_ids": "key"}, iid=lambda n: f"shop~3A{n:05d}")
    assert new == old
    assert json.loads(new["m5data_items.json"])["items"]["shop~3A00002"]["splits"] == ["train", "train", "cls-train"]


def test_finish_resumes_over_a_killed_finish(tmp_path):
    shards = write_export(tmp_path, [("train", [1, 2]), ("cls-test", [2])])
    scratch = tmp_path / "_shards" / ".finish"
    scratch.mkdir()
    (scratch / "records.parquet").write_bytes(b"half a file")  # what a killed finish left
    (tmp_path / ".tmp-captions.json").write_text("{", encoding="utf-8")
    m5product.finish(None, tmp_path, "v1", None, shards, {"item_ids": "source_id"})
    assert sorted(json.loads((tmp_path / "captions.json").read_text(encoding="utf-8"))) == ["15838", "7919"]
    assert not scratch.exists() and not (tmp_path / ".tmp-captions.json").exists()


def test_demo_export_equals_the_in_memory_merge(demo_store_factory, tmp_path):
    from support.export_helpers import settings_for, store_with_splits

    from m5data.export.members import split_counts
    from m5data.export.run import export, plan_export

    store = store_with_splits(demo_store_factory(products=60, seed=0), tmp_path)
    out = tmp_path / "out"
    export(store, settings_for(store, **{"export.shard_size": 16, "export.workers": 1}), out=out, fmt="m5product")
    ref = tmp_path / "ref"
    shutil.copytree(out, ref)
    members = split_counts(store, "v1", "all")
    shards, _digest = plan_export(store, members, 16, 0, m5product.MEDIA_KINDS)  # plan order, as export hands them
    stats = [json.loads((out / m5product.stats_path(Path(), sh)).read_text(encoding="utf-8")) for sh in shards]
    assert len({st_["split"] for st_ in stats}) == 5 and len(stats) > 5
    finish_in_memory(ref, "v1", stats, {"item_ids": stats[0]["item_ids"]})
    assert files_of(ref) == files_of(out)


# ------------------------------------------------------------------------------------------ the writer

json_leaf = st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats(allow_nan=False) | st.text()
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


def write_streamed(writer: ObjectWriter, obj: dict, stream: st.DataObject) -> None:
    """Write ``obj`` key by key, opening a nested streamed writer for dict values hypothesis picks."""
    for key in sorted(obj):
        value = obj[key]
        if isinstance(value, dict) and stream.draw(st.booleans()):
            write_streamed(writer.open(key), value, stream)
        else:
            writer.add(key, value)
    writer.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(st.text(max_size=8), json_value, max_size=6), stream=st.data())
def test_object_writer_equals_json_dumps(obj, stream):
    fh = io.StringIO()
    write_streamed(ObjectWriter(fh), obj, stream)
    assert fh.getvalue() == json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) == dumps(obj)


def test_object_writer_refuses_keys_out_of_order_and_unclosed_children():
    w = ObjectWriter(io.StringIO())
    w.add("b", 1)
    with pytest.raises(ValueError, match="out of order"):
        w.add("a", 2)
    with pytest.raises(ValueError, match="out of order"):
        w.add("b", 2)  # a duplicate key too
    child = w.open("c")
    with pytest.raises(ValueError, match="still open"):
        w.add("d", 1)
    child.close()
    w.add("d", 1)
    with pytest.raises(TypeError):
        w.add(5, 1)


def test_atomic_text_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_text(path) as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert path.read_text(encoding="utf-8") == "old\n" and not (tmp_path / ".tmp-captions.json").exists()
