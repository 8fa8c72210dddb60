"""The store's contract (storage/protocol.py), one set of tests run over every backend: a folder store
and a store on object storage (a local moto server). What a stage may count on from ``Store.open``."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from m5data.storage import Store, StoreBusy
from m5data.storage.location import Location
from m5data.storage.protocol import TableStore


@pytest.fixture(params=["folder", "s3"])
def make_store(request, tmp_path):
    """Makes a fresh store of the backend (keyword arguments: its settings), the same one each call."""
    if request.param == "folder":
        return lambda **kwargs: Store.init(tmp_path / "store", **kwargs)
    pytest.importorskip("moto")
    url = request.getfixturevalue("s3_url")
    return lambda **kwargs: Store.init(url, **kwargs)


@pytest.fixture
def store(make_store):
    return make_store()


def workers(store) -> dict:
    return {r["worker_id"]: r["ability"] for r in store.read("workers").to_pylist()}


def test_both_backends_are_table_stores(store):
    assert isinstance(store, TableStore)
    assert isinstance(Store.open(store.root), type(store))


def test_root_is_the_location_as_text_with_no_path_behaviour(store, tmp_path):
    """Issue 77 (3): one type of ``root`` on both backends; the folder, where there is one, is local_root()."""
    assert isinstance(store.root, Location) and store.root == str(store.root)
    with pytest.raises(TypeError):
        store.root / "x"
    assert not hasattr(store.root, "exists") and not hasattr(store.root, "glob")
    folder = store.local_root()
    if str(store.root).startswith("s3://"):
        assert folder is None
    else:
        assert isinstance(folder, Path) and folder == tmp_path / "store" and str(folder) == store.root


def test_a_read_gives_the_newest_row_per_key_and_a_group_replaced_whole(store):
    assert store.count("workers") == 0 and store.read("workers").num_rows == 0
    assert store.write("workers", [{"worker_id": "w1", "ability": 1.0}, {"worker_id": "w2", "ability": 2.0}]) == 2
    assert store.write("workers", [{"worker_id": "w1", "ability": 3.0}]) == 1
    assert workers(store) == {"w1": 3.0, "w2": 2.0}
    assert store.count("workers") == 2
    assert store.read("workers", where="ability > 2.5", columns=["worker_id"]).to_pylist() == [{"worker_id": "w1"}]
    old = [{"product_id": "a:1", "position": i, "property": p, "value": "v"} for i, p in enumerate("xyz")]
    store.write("specs", old + [{"product_id": "a:2", "position": 0, "property": "x", "value": "v"}])
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "x", "value": "w"}])  # a:1's rows: this write's
    rows = store.read("specs").to_pylist()
    assert sorted((r["product_id"], r["position"], r["value"]) for r in rows) == [("a:1", 0, "w"), ("a:2", 0, "v")]
    assert store.read_groups("specs", ["a:1"]).to_pylist() == [r for r in rows if r["product_id"] == "a:1"]


def test_a_repeat_of_the_newest_write_is_a_no_op(store):
    rows = [{"worker_id": f"w{i}", "ability": float(i)} for i in range(4)]
    assert store.write("workers", rows) == 4
    mark, parts = store.watermark("workers"), len(store.parts("workers"))
    assert store.write("workers", rows) == 0
    assert store.watermark("workers") == mark and len(store.parts("workers")) == parts
    assert store.write("workers", list(reversed(rows[:2]))) == 2  # an overlapping batch is a new write (upsert)
    assert store.count("workers") == 4 and store.stored_rows("workers") == 6


def test_if_absent_writes_only_new_keys(store):
    store.write("media", [{"media_id": "m1", "product_id": "p", "kind": "image", "status": "ok"}])
    written = store.write("media", [{"media_id": "m1", "product_id": "p", "kind": "image", "status": "pending"},
                                    {"media_id": "m2", "product_id": "p", "kind": "image", "status": "pending"}],
                          if_absent=True)
    assert written == 1
    assert {r["media_id"]: r["status"] for r in store.read("media").to_pylist()} == {"m1": "ok", "m2": "pending"}
    assert store.read_of("media", "product_id", pa.array(["p"])).num_rows == 2


def test_bad_rows_are_refused_before_anything_is_written(store):
    with pytest.raises(ValueError, match="unknown columns"):
        store.write("products", [{"product_id": "x", "colour": "red"}])
    assert store.parts("products") == [] and store.count("products") == 0


def test_a_streamed_write_is_all_or_nothing(make_store):
    store = make_store(part_rows=10)
    batches = [[{"product_id": f"p{b}", "position": i, "property": "k", "value": str(i)} for i in range(10)]
               for b in range(3)]
    with pytest.raises(RuntimeError, match="stage crashed"):
        with store.writer("specs") as w:
            for batch in batches:
                w.write(batch)
            raise RuntimeError("stage crashed")
    assert store.parts("specs") == [] and store.count("specs") == 0
    with store.writer("specs") as w:
        for batch in batches:
            w.write(batch)
    assert len(store.parts("specs")) == 3 and store.count("specs") == 30


def test_replace_makes_the_rows_the_whole_table(store):
    store.write("workers", [{"worker_id": "w1", "ability": 1.0}, {"worker_id": "w2", "ability": 2.0}])
    assert store.replace("workers", [{"worker_id": "w3", "ability": 3.0}]) == 1
    assert workers(store) == {"w3": 3.0}
    schema = store.read("workers").schema
    reader = pa.RecordBatchReader.from_batches(schema, pa.Table.from_pylist(
        [{"worker_id": "w4", "ability": 4.0}, {"worker_id": "w5", "ability": 5.0}], schema).to_batches())
    assert store.replace("workers", reader) == 2
    assert workers(store) == {"w4": 4.0, "w5": 5.0}
    assert store.replace("workers", []) == 0 and store.count("workers") == 0


def test_replace_tables_rewrites_every_table_or_none(store):
    store.write("workers", [{"worker_id": "w1", "ability": 1.0}])
    store.write("taxonomy", [{"level": 1, "label_id": 1, "name": "old"}])
    new_label = [{"level": 1, "label_id": 2, "name": "new"}]
    with pytest.raises(ValueError, match="unknown columns"):
        store.replace_tables({"taxonomy": new_label, "workers": [{"worker_id": "w2", "bogus": 1}]})
    assert workers(store) == {"w1": 1.0} and store.read("taxonomy", columns=["name"]).to_pylist() == [{"name": "old"}]
    assert store.replace_tables({"taxonomy": new_label, "workers": [{"worker_id": "w2", "ability": 2.0}]}) == {
        "taxonomy": 1, "workers": 1}
    assert workers(store) == {"w2": 2.0} and store.read("taxonomy", columns=["name"]).to_pylist() == [{"name": "new"}]


def test_compact_keeps_what_a_read_gives_and_later_writes_still_win(store):
    for i in range(3):
        store.write("workers", [{"worker_id": "w1", "ability": float(i)}, {"worker_id": f"x{i}", "ability": 0.0}])
    old = [{"product_id": "a:1", "position": i, "property": "k", "value": "old"} for i in range(3)]
    store.write("specs", old)
    store.write("specs", old[:1])
    before = {t: sorted(store.read(t).to_pylist(), key=str) for t in ("workers", "specs")}
    parts, left = store.compact("workers")
    assert (parts, left) == (3, 1)
    store.compact("specs")
    assert {t: sorted(store.read(t).to_pylist(), key=str) for t in ("workers", "specs")} == before
    assert store.count("workers") == 4 and store.stored_rows("workers") == 4
    store.write("workers", [{"worker_id": "w1", "ability": 9.0}])
    assert workers(store)["w1"] == 9.0 and store.count("workers") == 4


def test_changed_gives_the_groups_written_since_a_watermark(store):
    assert store.watermark("workers") == 0
    store.write("workers", [{"worker_id": "w1", "ability": 1.0}, {"worker_id": "w2", "ability": 2.0}])
    mark = store.watermark("workers")
    assert mark > 0 and store.changed("workers", mark).num_rows == 0
    store.write("workers", [{"worker_id": "w2", "ability": 5.0}, {"worker_id": "w3", "ability": 3.0}])
    assert store.watermark("workers") > mark
    got = store.changed("workers", mark, columns=("ability",))
    assert sorted(got.to_pylist(), key=lambda r: r["worker_id"]) == [
        {"worker_id": "w2", "ability": 5.0, "is_new": False}, {"worker_id": "w3", "ability": 3.0, "is_new": True}]
    assert sorted(r["worker_id"] for r in store.changed("workers", 0).to_pylist() if r["is_new"]) == ["w1", "w2", "w3"]


def test_a_connection_reads_every_table_as_a_read_does(store):
    store.write("workers", [{"worker_id": "w1", "ability": 1.0}])
    store.write("workers", [{"worker_id": "w1", "ability": 2.0}, {"worker_id": "w2", "ability": 3.0}])
    store.write("runs", [{"run_id": "r1", "stage": "crawl"}])
    con = store.connect()
    try:
        assert con.sql("SELECT worker_id, ability FROM workers ORDER BY worker_id").fetchall() == [
            ("w1", 2.0), ("w2", 3.0)]
        assert con.execute("SELECT count(*) FROM runs, workers").fetchall() == [(2,)]
    finally:
        con.close()


@pytest.mark.parametrize("limit", [8 << 20, 0])
def test_a_whole_read_reads_as_a_read_does_on_the_shared_database_or_one_of_its_own(store, limit, monkeypatch):
    """``connect_whole``: small parts (a folder store) read through the process's read database, larger
    ones (``limit`` 0) and a store on S3 (part sizes not listed) through a database of their own; the rows
    are those of :meth:`read` either way, and only the asked tables have views."""
    from m5data.storage import reading
    from m5data.storage.readdb import READ_DB

    monkeypatch.setattr(reading, "SHARED_READ_BYTES", limit)
    store.write("workers", [{"worker_id": "w1", "ability": 1.0}])
    store.write("workers", [{"worker_id": "w1", "ability": 2.0}, {"worker_id": "w2", "ability": 3.0}])
    con = store.connect_whole(("workers",))
    try:
        assert con.sql("SELECT worker_id, ability FROM workers ORDER BY worker_id").fetchall() == [
            ("w1", 2.0), ("w2", 3.0)]
        assert "runs" not in {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        probe = READ_DB.cursor()  # a table of the process's read database: seen only by its cursors
        probe.execute("CREATE OR REPLACE TABLE _contract_probe AS SELECT 1 AS x")
        try:
            shared = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_contract_probe'").fetchone()[0]
        finally:
            probe.execute("DROP TABLE _contract_probe")
            probe.close()
        assert shared == (limit > 0 and not str(store.root).startswith("s3://"))
    finally:
        con.close()


def test_files_are_written_whole_read_back_and_listed(store):
    assert store.read_bytes("derived/x/a.bin") is None and store.read_text("derived/x/t.json") is None
    store.write_bytes("derived/x/a.bin", b"one")
    store.write_bytes("derived/x/a.bin", b"two")
    store.write_text("derived/x/t.json", "{}")
    store.write_bytes("derived/y/b.bin", b"b")
    assert store.read_bytes("derived/x/a.bin") == b"two" and store.read_text("derived/x/t.json") == "{}"
    assert bytes(store.read_mapped("derived/x/a.bin")) == b"two"
    assert store.files("derived/x") == ["derived/x/a.bin", "derived/x/t.json"]
    assert str(store.where("derived/x/a.bin")).endswith("derived/x/a.bin")
    with store.local_files(["derived/x/a.bin"]) as folder:
        assert (folder / "derived/x/a.bin").read_bytes() == b"two"
    assert (store.local_copy(["derived/y/b.bin"]) / "derived/y/b.bin").read_bytes() == b"b"
    assert store.work_dir("scratch").is_dir()


def test_a_staged_folder_lands_whole_and_a_failing_block_writes_nothing(store):
    with pytest.raises(RuntimeError):
        with store.staged("derived/out") as folder:
            (folder / "a.txt").write_text("a")
            raise RuntimeError("stage crashed")
    assert store.files("derived/out") == []
    with store.staged("derived/out") as folder:
        (folder / "a.txt").write_text("a")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("b")
    assert store.files("derived/out") == ["derived/out/a.txt", "derived/out/sub/b.txt"]
    with pytest.raises(RuntimeError):
        with store.staged("logs/run", partial=True) as folder:  # a run's own log: kept when it fails
            (folder / "log.txt").write_text("why")
            raise RuntimeError("stage crashed")
    assert store.read_text("logs/run/log.txt") == "why"


def test_a_kept_folder_holds_its_files_between_runs(store):
    with store.kept("derived/keep", lazy=("*.npy",)) as kept:
        (kept.path / "state.json").write_text("{}")
        (kept.path / "v.npy").write_bytes(b"vectors")
    assert store.files("derived/keep") == ["derived/keep/state.json", "derived/keep/v.npy"]
    with store.kept("derived/keep", lazy=("*.npy",)) as kept:
        assert (kept.path / "state.json").read_text() == "{}"
        assert kept.names("*.npy") == ["v.npy"] and kept.fetch("v.npy").read_bytes() == b"vectors"
        kept.remove("v.npy")
        assert kept.fetch("v.npy") is None
    assert store.files("derived/keep") == ["derived/keep/state.json"]


HOLD = """
import sys, time
from m5data.storage import Store
with Store.open(sys.argv[1]).stage_lock(sys.argv[2]):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_stage_lock_refuses_a_second_holder(store):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store.root), "extract"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        with pytest.raises(StoreBusy, match=f"PID {holder.pid}"):
            with store.stage_lock("extract"):
                pass
        with store.stage_lock("download"):  # another stage runs beside it
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.table_lock("workers", "a test", wait=5):
        pass


def test_a_stage_asks_the_store_for_its_folder_and_its_blobs_not_for_its_backend(store):
    folder = store.local_root()
    assert folder is None or (folder / "store.json").is_file()  # the store's own folder, or none
    rel = "blobs/ab/" + "ab" * 32 + ".bin"
    assert store.read_blob(rel) is None
    assert store.put_blob(rel, b"one") is True
    assert store.put_blob(rel, b"one") is False  # content-addressed: there already, and it stays
    assert store.read_blob(rel) == b"one"
    assert store.put_blob("derived/frames/x/000001.jpg", b"f") is True
    with store.local_files(["derived/frames/x"]) as copy:
        assert (copy / "derived/frames/x/000001.jpg").read_bytes() == b"f"
    for outside in ("../outside.bin", "/etc/passwd", "blobs/../../x", ""):
        assert store.read_blob(outside) is None  # a path out of the blob areas is never read
    assert store.read_blob("derived/frames/x") is None  # a folder is not a blob


def test_the_parts_written_since_a_watermark_read_as_the_groups_written_since(store):
    from m5data.storage.readdb import read_cursor
    from m5data.storage.schema import table_spec

    store.write("workers", [{"worker_id": "w1", "ability": 1.0}, {"worker_id": "w2", "ability": 2.0}])
    mark = store.watermark("workers")
    store.write("workers", [{"worker_id": "w2", "ability": 5.0}])
    since = store.parts_since("workers", mark)
    local = store.local_parts("workers")
    if store.local_root() is None:  # object storage: neither is said; a reader reads groups, the view
        assert since is None and local is None
        return
    assert len(since) == 1 and set(since) <= set(store.parts("workers")) and store.parts_since("workers", 0) == store.parts("workers")
    con = read_cursor()
    try:
        rows = con.sql(f"SELECT worker_id, ability FROM ({store.read_sql(con, table_spec('workers'), parts=since)})").fetchall()
    finally:
        con.close()
    assert rows == [("w2", 5.0)]
    assert local == store.parts("workers") and all(p.is_file() for p in local)
    import pyarrow.parquet as pq

    assert pq.read_table([str(p) for p in local], columns=["worker_id"]).num_rows == 3  # footers, rows read in place


def test_a_location_names_its_folder_or_none_before_a_store_is_open(make_store, tmp_path):
    from m5data.storage.location import blob_folder, local_folder

    store = make_store()
    rel = "blobs/cd/" + "cd" * 32 + ".jpg"
    store.put_blob(rel, b"jpeg")
    location = str(store.root)
    folder = local_folder(location)
    assert (folder is None) == (store.local_root() is None)
    assert folder is None or folder == store.local_root()
    with blob_folder(location, [rel, None, "../x"]) as copy:
        assert (copy / rel).read_bytes() == b"jpeg"
        assert not (copy.parent / "x").exists()
    assert folder is not None or not copy.exists()  # a copy is removed at the end; a folder stays
