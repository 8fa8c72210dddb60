"""The store: schemas, idempotent atomic writes, last-write-wins views, compaction, catalog, blobs."""

import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from support.store_samples import as_map, file_hashes, sample_rows

from m5data.storage import TABLES, Store, StoreError
from m5data.storage.parts import TMP_PREFIX


@pytest.mark.parametrize("name", list(TABLES))
def test_schema_round_trip(store, name):
    rows = sample_rows(name)
    assert store.write(name, rows) == 3
    back = store.read(name)
    assert back.schema == TABLES[name].schema
    key = list(TABLES[name].key)
    assert sorted(back.to_pylist(), key=lambda r: [r[k] for k in key]) == rows


@pytest.mark.parametrize("name", list(TABLES))
def test_same_rows_twice_leave_one_copy(store, name):
    rows = sample_rows(name, 4)
    store.write(name, rows)
    assert store.write(name, rows) == 0  # identical batch: no-op
    store.write(name, list(reversed(rows[:2])))  # overlapping batch, other order: upsert
    assert store.count(name) == 4
    store.compact(name)
    physical = sum(pq.ParquetFile(p).metadata.num_rows for p in store.parts(name))
    assert physical == 4


def test_last_write_wins_and_specs_replaced_per_product(store):
    store.write("media", [{"media_id": "m1", "product_id": "p", "kind": "image", "status": "pending"}])
    store.write("media", [{"media_id": "m1", "product_id": "p", "kind": "image", "status": "ok", "bytes": 10}])
    assert store.read("media").to_pylist()[0]["status"] == "ok"
    old = [{"product_id": "a:1", "position": i, "property": p, "value": v}
           for i, (p, v) in enumerate([("品牌", "甲"), ("颜色", "红"), ("产地", "浙江")])]
    store.write("specs", old + [{"product_id": "a:2", "position": 0, "property": "品牌", "value": "乙"}])
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "品牌", "value": "甲"}])
    rows = store.read("specs").to_pylist()
    assert sorted((r["product_id"], r["property"]) for r in rows) == [("a:1", "品牌"), ("a:2", "品牌")]


def test_bad_rows_are_refused_before_anything_is_written(store):
    with pytest.raises(ValueError, match="unknown columns"):
        store.write("products", [{"product_id": "x", "colour": "red"}])
    with pytest.raises(ValueError, match="key column product_id"):
        store.write("products", [{"title": "no key"}])
    assert store.parts("products") == []


def test_streaming_writer_is_all_or_nothing(tmp_path):
    store = Store.init(tmp_path / "s", part_rows=10)
    with pytest.raises(RuntimeError):
        with store.writer("specs") as w:
            for b in range(3):
                w.write([{"product_id": f"p{b}", "position": i, "property": "k", "value": str(i)} for i in range(10)])
            raise RuntimeError("stage crashed")
    assert store.parts("specs") == [] and not list(store.table_dir("specs").glob(TMP_PREFIX + "*"))
    with store.writer("specs") as w:
        for b in range(3):
            w.write([{"product_id": f"p{b}", "position": i, "property": "k", "value": str(i)} for i in range(10)])
    assert len(store.parts("specs")) == 3 and store.count("specs") == 30


def test_a_batch_larger_than_a_part_is_cut_into_parts_of_part_rows(tmp_path):
    """A stream's batch size is the caller's (DuckDB hands over what it likes): parts stay <= part_rows."""
    import pyarrow.parquet as pq

    store = Store.init(tmp_path / "s", part_rows=500)
    rows = [{"product_id": f"p{i // 10}", "position": i % 10, "property": "k", "value": str(i)} for i in range(1_700)]
    with store.writer("specs") as w:
        w.write(rows[:300])
        w.write(rows[300:1_500])  # fills the first part, one whole part, and starts a third
        w.write(rows[1_500:])
    sizes = sorted(pq.ParquetFile(p).metadata.num_rows for p in store.parts("specs"))
    assert sizes == [200, 500, 500, 500] and store.count("specs") == 1_700
    reader = store.read("specs").to_reader(max_chunksize=2_000)  # one batch of every row
    assert store.replace("specs", reader) == 1_700
    assert sorted(pq.ParquetFile(p).metadata.num_rows for p in store.parts("specs")) == [200, 500, 500, 500]
    assert store.is_compacted("specs") and store.count("specs") == 1_700


def test_compact_merges_parts_and_keeps_latest(tmp_path):
    store = Store.init(tmp_path / "s", part_rows=5)
    for i in range(12):
        store.write("products", [{"product_id": f"a:{i % 6}", "title": f"v{i}"}])
    assert len(store.parts("products")) == 12 and not store.is_compacted("products")
    before, after = store.compact("products")
    assert (before, after) == (12, 2) and store.is_compacted("products")
    titles = as_map(store, "products", "product_id", "title")
    assert titles == {f"a:{i}": f"v{i + 6}" for i in range(6)}
    assert store.compact("products") == (2, 2)  # nothing to do


KILL_WRITER = """
import sys, time
from m5data.storage import Store
store = Store.open(sys.argv[1])
with store.writer("specs") as w:
    for b in range(10_000):
        w.write([{"product_id": f"p{b}", "position": i, "property": "属性", "value": "值" * 50} for i in range(200)])
        if b == 5:
            print("writing", flush=True)
        time.sleep(0.01)
"""


def test_writer_killed_mid_write_leaves_no_partial_part(tmp_path):
    store = Store.init(tmp_path / "s")
    store.write("specs", [{"product_id": "keep", "position": 0, "property": "品牌", "value": "甲"}])
    proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(store.root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    directory = store.table_dir("specs")
    assert list(directory.glob(TMP_PREFIX + "*")), "the killed writer should have left its temp file"
    reopened = Store.open(store.root)
    for part in reopened.parts("specs"):
        pq.ParquetFile(part).metadata  # every visible part is complete
    assert reopened.read("specs").to_pylist() == [{"product_id": "keep", "position": 0, "property": "品牌", "value": "甲"}]
    reopened.compact("specs")
    assert not list(directory.glob(TMP_PREFIX + "*"))


def test_catalog_deleted_is_rebuilt_with_same_results(store):
    store.write("products", sample_rows("products", 5))
    store.refresh_catalog()
    import duckdb

    query = "SELECT product_id, title FROM products ORDER BY 1"
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    before = con.execute(query).fetchall()
    con.close()
    store.catalog_path.unlink()
    Store.open(store.root).refresh_catalog()
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute(query).fetchall() == before and len(before) == 5
    con.close()


def test_corrupt_catalog_is_rebuilt(store):
    store.write("products", sample_rows("products", 2))
    store.catalog_path.write_bytes(b"this is not a duckdb file")
    store.refresh_catalog()
    assert store.count("products") == 2
    import duckdb

    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 2
    con.close()


def test_refresh_leaves_files_untouched_when_nothing_changed(store):
    store.write("products", sample_rows("products", 2))
    store.refresh_catalog()
    before = file_hashes(store.root)
    store.refresh_catalog()
    assert file_hashes(store.root) == before


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match=str(tmp_path / "nope")):
        Store.open(tmp_path / "nope")


def test_blobs_are_content_addressed_and_atomic(store):
    ref = store.blobs.put_bytes(b"\xff\xd8\xffjpeg-bytes", "jpg")
    assert ref.path == f"blobs/{ref.sha256[:2]}/{ref.sha256}.jpg"
    assert store.blobs.put_bytes(b"\xff\xd8\xffjpeg-bytes", "jpg") == ref
    assert store.blobs.verify(ref.path)
    with pytest.raises(OSError):
        with store.blobs.writer("jpg") as w:
            w.write(b"half")
            raise OSError("connection reset")
    assert list(store.blobs.iter_paths()) == [ref.path]
    assert not list(store.blobs.tmp_dir.iterdir())
    with pytest.raises(ValueError):
        store.blobs.writer("../../etc")


def test_unsynced_blobs_repair_a_torn_copy_and_sync(store):
    """sync=False writes (the download stage) rename without fsync; a later write of the same
    content replaces whatever is at the address, so a copy torn by a power cut is repaired."""
    data = b"\xff\xd8\xff" + bytes(range(256)) * 40
    ref = store.blobs.put_bytes(data, "jpg", sync=False)
    path = store.blobs.path(ref.path)
    path.write_bytes(data[:100])  # what a power cut can leave of an unsynced file
    assert not store.blobs.verify(ref.path)
    assert store.blobs.put_bytes(data, "jpg", sync=False) == ref
    assert store.blobs.verify(ref.path) and path.read_bytes() == data
    store.blobs.sync()  # one filesystem sync for every blob written so far
    assert not list(store.blobs.tmp_dir.iterdir())


def test_a_blob_is_written_when_its_folders_were_removed_since(store):
    """The blob area's folders are made when a write finds them missing, not checked by each write:
    a temp folder or fan-out folder removed under a running writer is made again."""
    import shutil

    ref = store.blobs.put_bytes(b"\xff\xd8\xffone", "jpg", sync=False)
    shutil.rmtree(store.blobs.root)
    for sync in (False, True):
        assert store.blobs.put_bytes(b"\xff\xd8\xffone", "jpg", sync=sync) == ref
        assert store.blobs.verify(ref.path)
        shutil.rmtree(store.blobs.path(ref.path).parent)
    assert not list(store.blobs.tmp_dir.iterdir())


def test_runs_is_compacted_past_its_part_cap_and_no_run_row_is_lost(tmp_path):
    from m5data.storage import StageStats, record_run
    from m5data.storage.runs import RUNS_PARTS

    store = Store.init(tmp_path / "store")
    ids = []
    for k in range(RUNS_PARTS + 5):
        stats = StageStats("report", n_in=k)
        record_run(store, stats)
        ids.append(stats.run_id)
        assert len(store.parts("runs")) <= RUNS_PARTS + 1  # one part per run, compacted once past the cap
    assert len(store.parts("runs")) < RUNS_PARTS  # it was compacted, and kept the runs written since
    runs = store.read("runs").to_pylist()
    assert sorted(r["run_id"] for r in runs) == sorted(ids)
    assert sorted(r["n_in"] for r in runs) == list(range(RUNS_PARTS + 5))


def test_a_run_is_recorded_without_waiting_while_another_process_rewrites_runs(tmp_path):
    from m5data.storage import StageStats, record_run
    from m5data.storage.runs import RUNS_PARTS

    store = Store.init(tmp_path / "store")
    for k in range(RUNS_PARTS):
        record_run(store, StageStats("align", n_in=k))
    code = ("import sys, time\nfrom m5data.storage import Store\n"
            "with Store.open(sys.argv[1]).table_lock('runs', 'compact runs'):\n    print('holding', flush=True)\n"
            "    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        record_run(store, StageStats("dedup", n_in=99))  # over the cap, the compaction refused: the row is written
        assert len(store.parts("runs")) == RUNS_PARTS + 1
    finally:
        holder.kill()
        holder.wait()
    record_run(store, StageStats("dedup", n_in=100))
    assert len(store.parts("runs")) == 1
    assert store.count("runs") == RUNS_PARTS + 2


def test_a_damaged_runs_part_does_not_fail_the_run_that_would_compact_it(tmp_path):
    from m5data.storage import StageStats, record_run
    from m5data.storage.runs import RUNS_PARTS

    store = Store.init(tmp_path / "store")
    for k in range(RUNS_PARTS):
        record_run(store, StageStats("align", n_in=k))
    store.parts("runs")[3].write_bytes(b"not parquet")  # doctor names it; the stage's work must stand
    record_run(store, StageStats("dedup", n_in=99))  # over the cap: the compaction fails, the row is written
    assert len(store.parts("runs")) == RUNS_PARTS + 1
    assert pq.read_table(store.parts("runs")[-1]).column("n_in").to_pylist() == [99]
