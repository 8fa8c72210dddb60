"""What changed since a stage last completed, read from the store (``m5data/storage/changes.py``).

``watermark`` then ``changed`` find exactly the groups written since (new or re-written), on a
folder store and on an S3 store; a write in progress when the watermark is read (a streaming write
that already published a part) is never passed; a compaction keeps the answer; a part at or below
the watermark is not read; a stage's state is kept only when saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from m5data.stages import fingerprint
from m5data.storage import Store
from m5data.storage import changes as ch
from m5data.storage.parts import OPEN_SUFFIX
from m5data.storage.temps import TMP_PREFIX

try:  # a moto S3 server for the S3 test (skipped without s3fs / moto)
    from support.s3_server import aws, s3  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def _products(*ids: str, title: str = "t") -> list[dict]:
    return [{"product_id": i, "platform": i.split(":")[0], "title": f"{title} {i}"} for i in ids]


def _changed(store, table: str, since: int) -> dict[str, bool]:
    t = store.changed(table, since)
    return dict(zip(t.column(t.schema.names[0]).to_pylist(), t.column("is_new").to_pylist()))


@pytest.fixture
def store(tmp_path):
    return Store.init(tmp_path / "store")


def test_changed_gives_new_and_rewritten_groups_since_a_watermark(store):
    store.write("products", _products("a:1", "a:2"))
    assert store.watermark("products") > 0
    assert _changed(store, "products", 0) == {"a:1": True, "a:2": True}
    w1 = store.watermark("products")
    assert _changed(store, "products", w1) == {}
    store.write("products", _products("a:2", "a:3", title="new"))
    assert _changed(store, "products", w1) == {"a:2": False, "a:3": True}
    w2 = store.watermark("products")
    assert w2 > w1 and _changed(store, "products", w2) == {}
    counts = ch.changed_counts(store.changed("products", w1), store.count("products"))
    assert counts == {"new": 1, "changed": 1, "unchanged": 1}


def _values(store, table: str, since: int, columns: tuple[str, ...]) -> dict:
    t = store.changed(table, since, columns)
    return {r[t.schema.names[0]]: tuple(r[c] for c in columns) for r in t.to_pylist()}


def test_changed_gives_the_newest_row_of_each_group_with_columns(store):
    """``columns``: each changed group's values as a read of the table gives them now (its newest row),
    from the parts written since; a ``replace_by`` table's group is several rows, so none is asked."""
    store.write("products", _products("a:1", "a:2"))
    w1 = store.watermark("products")
    store.write("products", [{"product_id": "a:2", "platform": "a", "title": "second", "category_path": ["x", "y"]}])
    store.write("products", [{"product_id": "a:2", "platform": "b", "title": "third", "category_path": ["z"]},
                             {"product_id": "a:3", "platform": "a", "title": "new"}])
    got = _values(store, "products", w1, ("title", "category_path", "platform"))
    assert got == {"a:2": ("third", ["z"], "b"), "a:3": ("new", None, "a")}
    assert got == {r["product_id"]: (r["title"], r["category_path"], r["platform"])
                   for r in store.read("products", where="product_id IN ('a:2', 'a:3')").to_pylist()}
    assert store.changed("products", w1, new=False).column("product_id").to_pylist() == ["a:2", "a:3"]
    empty = store.changed("products", store.watermark("products"), ("title",))
    assert len(empty) == 0 and empty.schema.names == ["product_id", "title", "is_new"]
    with pytest.raises(ValueError, match="several rows"):
        store.changed("specs", 0, ("value",))
    with pytest.raises(ValueError, match="not a value column"):
        store.changed("products", 0, ("product_id",))


def test_a_replace_by_table_reports_its_groups(store):
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "p", "value": "v"},
                          {"product_id": "a:1", "position": 1, "property": "q", "value": "w"}])
    w = store.watermark("specs")
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "p", "value": "x"},
                          {"product_id": "a:9", "position": 0, "property": "p", "value": "y"}])
    assert _changed(store, "specs", w) == {"a:1": False, "a:9": True}
    assert store.changed("specs", w).schema.names == ["product_id", "is_new"]


def test_a_compaction_keeps_the_changed_set(store):
    store.write("products", _products("a:1", "a:2"))
    w = store.watermark("products")
    store.write("products", _products("a:2", "a:3", title="new"))
    store.compact("products")
    assert set(_changed(store, "products", w)) == {"a:2", "a:3"}  # a:2's older row is compacted away
    assert _changed(store, "products", w)["a:3"] is True


def test_parts_at_or_below_the_watermark_are_not_read(store):
    store.write("products", _products("a:1"))
    old = store.parts("products")[0]
    w = store.watermark("products")
    store.write("products", _products("a:2"))
    (old.parent / "_keys").mkdir(exist_ok=True)
    old.write_bytes(b"not parquet any more")  # reading it would fail
    ch.keyindex._save(old, ch.keyindex.PartKeys(1, True, ch.np.empty(0, ch.np.uint64)))  # its sidecar, as made before
    assert _changed(store, "products", w) == {"a:2": True}


def test_count_grown_counts_on_from_the_parts_counted_as_a_count_again_would(store):
    store.write("products", _products("a:1", "a:2"))
    n, parts = store.count_parts("products")
    assert n == 2 and len(parts) == 1
    assert store.count_grown("products", n, parts) == (2, parts)  # nothing written since
    store.write("products", _products("a:2", "a:3", "a:4", title="new"))  # one re-written, two new
    store.write("products", _products("a:4", "a:5"))  # one new twice, one new
    n2, parts2 = store.count_grown("products", n, parts)
    assert n2 == store.count("products") == 5 and parts2 == store.count_parts("products")[1]
    # a table of several rows per group (splits: a version's rows): new versions are counted on ...
    rows = lambda v, k: [{"version": v, "split": "train", "product_id": f"a:{i}"} for i in range(k)]  # noqa: E731
    store.write("splits", rows("v1", 3))
    n, parts = store.count_parts("splits")
    store.write("splits", rows("v2", 4))
    assert store.count_grown("splits", n, parts)[0] == store.count("splits") == 7
    n, parts = store.count_parts("splits")
    store.write("splits", rows("v2", 2))  # ... a version written again (two rows fewer) moves the count ...
    assert store.count_grown("splits", n, parts)[0] == store.count("splits") == 5
    with store.writer("splits") as w:  # ... and so do a version written again and one new, in one write
        w.write(rows("v1", 5) + rows("v3", 1))
    ns, ps = store.count_grown("splits", n, parts)
    assert ns == store.count("splits") == 5 + 2 + 1 and ps == [p.name for p in store.parts("splits")]
    for part in store.parts("splits"):  # sidecars of the first format (NumPy's zip, without each group's rows)
        keys = ch.keyindex._load(part)
        ch.keyindex.sidecar_path(part).unlink()
        np.savez(ch.keyindex._legacy_path(part), meta=np.array([1, part.stat().st_size, keys.rows, int(keys.unique)]),
                 version=np.array(ch.keyindex._version()), hashes=keys.hashes)
        assert ch.keyindex._load(part).counts is None
    assert store.count_grown("splits", n, parts) is None  # a version written again: counted again
    store.compact("products")  # the parts counted are gone: count again
    assert store.count_grown("products", n2, parts2) is None and store.count("products") == 5


def test_count_grown_reads_no_part_when_the_writers_made_their_sidecars(store, monkeypatch):
    """The parts written since are known by their sidecars (made by their writers): counting on opens no
    DuckDB connection; a part whose sidecar is gone is read, and counted the same."""
    import duckdb

    from m5data.storage import readdb

    store.write("products", _products("a:1", "a:2"))
    n, parts = store.count_parts("products")
    store.write("products", _products("a:2", "a:3", title="new"))
    store.write("products", _products("a:4"))
    expected = store.count("products")

    def refuse(*args, **kwargs):
        raise AssertionError("a part was read")

    with monkeypatch.context() as m:
        m.setattr(duckdb, "connect", refuse)
        m.setattr(readdb, "read_cursor", refuse)
        assert store.count_grown("products", n, parts)[0] == expected == 4
    ch.keyindex.sidecar_path(store.parts("products")[-1]).unlink()
    assert store.count_grown("products", n, parts)[0] == expected


def test_a_compacted_table_is_counted_from_its_parts_footers_and_counted_on_from_them(store):
    store.write("products", _products("a:1", "a:2", "a:3"))
    store.write("products", _products("a:2", "a:4", title="new"))
    store.compact("products")
    n, parts = store.count_parts("products")  # the parts are named: a later count goes on from them
    assert n == store.count("products") == 4 and parts == [p.name for p in store.parts("products")]
    store.write("products", _products("a:4", "a:5", title="newer"))  # one re-written, one new
    assert store.count_grown("products", n, parts) == (5, parts + [store.parts("products")[-1].name])


def test_group_parts_names_the_parts_holding_a_group_and_reading_them_gives_its_view_rows(store):
    import pyarrow as pa

    from m5data.storage.schema import table_spec

    store.write("products", _products("a:1", "a:2"))
    store.write("products", _products("a:3"))
    store.write("products", _products("a:1", title="new"))  # a:1 re-written: in the first and third parts
    parts = store.parts("products")
    held = store.group_parts("products", pa.table({"product_id": ["a:1"]}))
    assert held == [parts[0], parts[2]]
    assert store.group_parts("products", pa.table({"product_id": ["a:3", "a:9"]})) == [parts[1]]
    assert store.group_parts("products", pa.table({"product_id": pa.array([], pa.string())})) == []
    con = store.connect(only=())
    try:
        rows = con.execute(f"SELECT product_id, title FROM ({store.read_sql(con, table_spec('products'), parts=held)}) "
                           "WHERE product_id = 'a:1'").fetchall()
    finally:
        con.close()
    assert rows == [("a:1", "new a:1")]
    got = store.read_groups("products", ["a:1", "a:3", "a:9"])
    assert sorted(zip(got.column("product_id").to_pylist(), got.column("title").to_pylist())) == [
        ("a:1", "new a:1"), ("a:3", "t a:3")]
    assert got.schema == store.read("products").schema
    # a group of several rows (a product's spec rows): its newest write's rows only
    store.write("specs", [{"product_id": "a:1", "position": k, "property": "p", "value": str(k)} for k in range(3)])
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "p", "value": "new"}])
    got = store.read_groups("specs", ["a:1"])
    assert got.select(["position", "value"]).to_pylist() == [{"position": 0, "value": "new"}]


def test_read_of_gives_the_view_rows_of_a_column_filter(store):
    """``read_of`` filters ahead of the view's window but gives what the view filtered gives: a media
    row re-written with another product is that product's, not the first's (its older row names the
    first), a re-written row's newest version wins, and a column no part has comes back null."""
    import pyarrow as pa

    def media(mid, pid, position, sha):
        return {"media_id": mid, "product_id": pid, "kind": "image", "role": "main", "position": position,
                "sha256": sha, "status": "ok"}

    assert store.read_of("media", "product_id", pa.array(["a:1"])).num_rows == 0  # no parts
    store.write("media", [media("m1", "a:1", 0, "x"), media("m2", "a:1", 1, "y"), media("m3", "a:2", 0, "z")])
    store.write("media", [media("m1", "a:2", 0, "x2"), media("m2", "a:1", 1, "y2")])
    store.write("media", [media("m4", "a:3", 0, "w")])
    for wanted in (["a:1"], ["a:2"], ["a:1", "a:3", "a:9"], []):
        got = store.read_of("media", "product_id", pa.array(wanted, pa.string()))
        quoted = ", ".join(f"'{w}'" for w in wanted) or "NULL"
        view = store.read("media", where=f"product_id IN ({quoted})")
        assert got.schema == view.schema
        assert got.sort_by("media_id").equals(view.sort_by("media_id")), wanted
    got = store.read_of("media", "product_id", pa.array(["a:1"]))
    assert got.select(["media_id", "sha256"]).to_pylist() == [{"media_id": "m2", "sha256": "y2"}]
    assert got.column("phash").null_count == 1


def test_a_write_in_progress_is_never_passed(store):
    """A streaming write has published a part but not finished: the watermark stays below its _seq."""
    store.part_rows = 1
    before = store.watermark("products")
    with store.writer("products") as stream:
        stream.write(_products("a:1", "a:2"))  # two parts of one row, both published
        assert len(store.parts("products")) == 2
        w = store.watermark("products")
        assert w < stream.seq
    assert w >= before
    assert _changed(store, "products", w) == {"a:1": True, "a:2": True}
    assert not list(store.table_dir("products").glob(f"{TMP_PREFIX}*{OPEN_SUFFIX}"))


def test_a_killed_writers_marker_does_not_hold_the_watermark(store, tmp_path):
    store.write("products", _products("a:1"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = store.table_dir("products") / f"{TMP_PREFIX}{int(dead.stdout)}-{'0' * 32}{OPEN_SUFFIX}"
    marker.touch()
    os.utime(marker, ns=(1, 1))
    assert store.watermark("products") == ch.part_seq(store.parts("products")[0])
    live = store.table_dir("products") / f"{TMP_PREFIX}{os.getpid()}-{'1' * 32}{OPEN_SUFFIX}"
    live.touch()
    os.utime(live, ns=(10**18, 10**18))
    assert store.watermark("products") == 10**18 - ch.CLOCK_MARGIN_NS


def test_the_state_is_kept_only_when_saved(store):
    assert ch.load_state(store, "align") is None
    store.write("products", _products("a:1"))
    marks = ch.watermarks(store, ["products"])
    inputs = fingerprint({"x": 1})
    assert not ch.unchanged_since(None, marks, inputs)
    ch.save_state(store, "align", marks, inputs, subclasses=3)
    state = ch.load_state(store, "align")
    assert state["subclasses"] == 3 and ch.unchanged_since(state, marks, inputs)
    assert not ch.unchanged_since(state, marks, fingerprint({"x": 2}))
    time.sleep(0.001)
    store.write("products", _products("a:2"))
    assert not ch.unchanged_since(state, ch.watermarks(store, ["products"]), inputs)
    store.write_text(ch.state_file("align"), "{torn")
    assert ch.load_state(store, "align") is None


def test_an_s3_store_answers_the_same(tmp_path, request):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    aws = request.getfixturevalue("aws")
    store = Store.init(f"s3://{aws['bucket']}/changes-{time.time_ns()}")
    assert store.watermark("products") == 0 and _changed(store, "products", 0) == {}
    store.write("products", _products("a:1", "a:2"))
    w1 = store.watermark("products")
    assert w1 >= 1 and _changed(store, "products", 0) == {"a:1": True, "a:2": True}
    store.write("products", _products("a:2", "a:3", title="new"))
    assert _changed(store, "products", w1) == {"a:2": False, "a:3": True}
    assert _changed(store, "products", store.watermark("products")) == {}
    assert _values(store, "products", w1, ("title",)) == {"a:2": ("new a:2",), "a:3": ("new a:3",)}
