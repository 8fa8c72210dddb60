"""The read view without the window (key sidecars, ``keyindex.py``) returns exactly the window view's
rows: stores with overlapping and non-overlapping parts, replace_by tables, a part holding a key twice."""

import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.store_samples import sample_value

from m5data.storage import TABLES, Store, views
from m5data.storage.keyindex import plan, sidecar_path


@pytest.fixture(autouse=True)
def planned_reads(monkeypatch):
    """Every read here goes by the plan: below ``views.SMALL_TABLE_ROWS`` a table is read through the window
    itself, which would leave the plan untested on these small stores."""
    monkeypatch.setattr(views, "SMALL_TABLE_ROWS", -1)


def _rows(name: str, groups: list[int], salt: int, per_group: int = 3) -> list[dict]:
    """A write: ``per_group`` rows of each group (one row when the key is the group)."""
    spec = TABLES[name]
    out = []
    for g in groups:
        for pos in range(per_group if spec.replace_by else 1):
            row = {f.name: sample_value(f, (salt + g + pos) % 100) for f in spec.schema}
            for i, k in enumerate(spec.key):
                field = spec.schema.field(k)
                v = g if k in spec.group else pos + i
                row[k] = v if pa.types.is_integer(field.type) else f"k{v:03d}"
            out.append(row)
    return out


def _both(store: Store, name: str) -> tuple[list, list]:
    """Rows of the window view and of the planned view, sorted (seq included)."""
    spec = TABLES[name]
    con = duckdb.connect()
    try:
        window = con.execute(f"SELECT * FROM ({store.view_sql(spec, parts=store.parts(name), with_seq=True)}) "
                             f"ORDER BY ALL").fetchall()
        planned = con.execute(f"SELECT * FROM ({store.read_sql(con, spec, parts=store.parts(name), with_seq=True)}) "
                              f"ORDER BY ALL").fetchall()
    finally:
        con.close()
    return window, planned


TABLE_NAMES = ["products", "specs", "splits", "pools", "taxonomy"]
writes = st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=8, unique=True), min_size=1, max_size=6)


@settings(max_examples=15, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(TABLE_NAMES), batches=writes, shrink=st.integers(0, 3), part_rows=st.sampled_from([None, 2, 5]))
def test_planned_view_reads_what_the_window_reads(name, batches, shrink, part_rows):
    """Any writes (groups written again or not, groups shrinking on re-write, a write's rows of a
    group cut into two parts) read the same both ways."""
    root = Path(tempfile.mkdtemp(prefix="m5-plan-"))
    try:
        store = Store.init(root / "s", **({"part_rows": part_rows} if part_rows else {}))
        for i, groups in enumerate(batches):
            store.write(name, _rows(name, groups, i, per_group=3 - (i + shrink) % 3))
        window, planned = _both(store, name)
        assert planned == window
        assert len({r[-1] for r in planned}) >= 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_disjoint_parts_are_read_without_the_window(tmp_path):
    """Parts of one crawl (disjoint products, interleaved ids) need no window; a re-crawl of some products does."""
    store = Store.init(tmp_path / "s")
    store.write("specs", _rows("specs", [0, 2, 4, 6], 0))
    store.write("specs", _rows("specs", [1, 3, 5, 7], 1))
    spec = TABLES["specs"]
    first = plan(store.parts("specs"), spec)
    assert len(first.plain) == 2 and not first.resolve and not len(first.contested)
    assert all(sidecar_path(p).is_file() for p in store.parts("specs"))
    store.write("specs", _rows("specs", [3], 2, per_group=1))  # product 3 crawled again, one property left
    again = plan(store.parts("specs"), spec)
    assert len(again.contested) == 1 and len(again.mixed) == 2  # the old part and the re-crawl hold product 3
    window, planned = _both(store, "specs")
    assert planned == window
    assert [r[0] for r in planned].count("k003") == 1


def test_rewritten_groups_are_read_by_their_newest_write_not_the_window(tmp_path):
    """Groups written again (a pool re-ranked every night) are read as their newest write's rows, found
    by the group's newest ``_seq``; a write whose rows of a group lie in two parts, or that holds a
    key twice, still reads as the window does."""
    from m5data.storage.views import _newest_write_sql

    def pool(q, cands, score):
        return [{"query_id": q, "candidate_id": f"c{c}", "rank": r, "score": score, "embedder": "e", "run_id": "x"}
                for r, c in enumerate(cands)]

    store = Store.init(tmp_path / "s", part_rows=4)
    store.write("pools", pool("q1", range(3), 0.1) + pool("q2", range(3), 0.1))
    store.write("pools", pool("q1", range(5, 7), 0.2))  # q1 re-ranked: its 3 rows replaced by 2
    with store.writer("pools") as w:  # q2 re-ranked, its new rows cut into two parts, c9 twice
        rows = pool("q2", [7, 8, 9, 10], 0.3)
        w.write(rows[:3] + [rows[2]] + rows[3:])  # the same row twice: the window's pick cannot differ
    spec = TABLES["pools"]
    assert len(plan(store.parts("pools"), spec).contested) == 2
    window, planned = _both(store, "pools")
    assert planned == window
    assert sorted((r[0], r[1]) for r in planned) == [("q1", "c5"), ("q1", "c6"), ("q2", "c10"), ("q2", "c7"),
                                                     ("q2", "c8"), ("q2", "c9")]
    assert "PARTITION BY query_id" not in _newest_write_sql(spec, "t", "*", "[]").split("ANTI JOIN")[0]


def test_a_part_holding_a_key_twice_goes_through_the_window(tmp_path):
    """A write that holds a key twice reads as one row, like the window."""
    store = Store.init(tmp_path / "s")
    rows = _rows("products", [1, 2], 0)
    store.write("products", rows + [{**rows[0], "title": "again"}])
    assert plan(store.parts("products"), TABLES["products"]).resolve == store.parts("products")
    window, planned = _both(store, "products")
    assert len(planned) == len(window) == 2


def test_compaction_drops_the_sidecars_of_removed_parts(tmp_path):
    store = Store.init(tmp_path / "s", part_rows=5)
    for i in range(3):
        store.write("specs", _rows("specs", [i, i + 1], i))
    before = store.read("specs").sort_by([("product_id", "ascending"), ("position", "ascending")])
    store.compact("specs")
    keys = {p.name for p in (store.table_dir("specs") / "_keys").iterdir()}
    assert keys <= {sidecar_path(p).name for p in store.parts("specs")}
    store.write("specs", _rows("specs", [9], 5))
    after = store.read("specs", where="product_id <> 'k009'").sort_by([("product_id", "ascending"), ("position", "ascending")])
    assert after.to_pylist() == before.to_pylist()


def test_a_connection_sees_parts_written_and_compacted_after_it_opened(tmp_path):
    """Like the window view's glob: a part written after connect counts (its groups win), a compaction's too."""
    store = Store.init(tmp_path / "s")
    store.write("specs", _rows("specs", [1, 2], 0))
    store.write("specs", _rows("specs", [3], 1))
    con = store.connect(need=("specs",), only=("specs",))
    try:
        store.write("specs", _rows("specs", [2], 2, per_group=1))
        rows = con.execute("SELECT product_id, count(*) FROM specs GROUP BY 1 ORDER BY 1").fetchall()
        assert rows == [("k001", 3), ("k002", 1), ("k003", 3)]
        store.compact("specs")
        assert con.execute("SELECT product_id, count(*) FROM specs GROUP BY 1 ORDER BY 1").fetchall() == rows
    finally:
        con.close()


def test_a_stale_or_broken_sidecar_is_made_again(tmp_path):
    store = Store.init(tmp_path / "s")
    store.write("products", _rows("products", [1, 2], 0))
    store.write("products", _rows("products", [2, 3], 1))
    store.read("products")
    for p in store.parts("products"):
        sidecar_path(p).write_bytes(b"not a sidecar")
    window, planned = _both(store, "products")
    assert planned == window and len(planned) == 3


def test_a_written_part_has_its_sidecar_as_the_write_returns_and_it_says_what_the_part_holds(tmp_path):
    """The writer makes each part's sidecar (its first reader need not): the same sidecar a reader
    makes, and one that tells a part holding a key twice."""
    from m5data.storage import keyindex
    from m5data.storage.readdb import read_cursor

    store = Store.init(tmp_path / "s", part_rows=4)
    store.write("products", _rows("products", [1, 2, 3], 0))
    with store.writer("pools") as w:  # a stream cut into parts, each with its sidecar
        w.write(_rows("pools", [1, 2, 3], 1))
    rows = _rows("products", [5, 6], 2)
    store.write("products", rows + [{**rows[0], "title": "again"}])
    con = read_cursor()
    try:
        for name in ("products", "pools"):
            assert len(store.parts(name)) == (2 if name == "products" else 3)
            for part in store.parts(name):
                made = keyindex._load(part)
                assert made is not None, f"{part.name} has no sidecar"
                again = keyindex.compute(con, part, TABLES[name])
                assert (made.rows, made.unique, list(made.hashes), list(made.counts), list(made.seqs)) == (
                    again.rows, again.unique, list(again.hashes), list(again.counts), list(again.seqs))
    finally:
        con.close()
    first, twice = (keyindex._load(p) for p in store.parts("products"))
    assert first.unique and first.rows == 3 and list(first.counts) == [1, 1, 1]
    assert not twice.unique and twice.rows == 3 and sorted(twice.counts) == [1, 2]
    pools = [keyindex._load(p) for p in store.parts("pools")]
    assert all(k.unique for k in pools) and sum(k.rows for k in pools) == 9


def test_a_plan_whose_sidecars_exist_opens_no_connection(tmp_path, monkeypatch):
    """A DuckDB connection (a cursor of the process's read database where a sidecar is made) costs
    time, and a store connection plans every table: with every sidecar in place the plan reads them only."""
    store = Store.init(tmp_path / "s")
    store.write("products", _rows("products", [1, 2], 0))
    store.write("products", _rows("products", [2, 3], 1))
    parts, spec = store.parts("products"), TABLES["products"]
    first = plan(parts, spec)  # makes the sidecars
    assert all(sidecar_path(p).is_file() for p in parts)

    def refuse(*args, **kwargs):
        raise AssertionError("plan opened a DuckDB connection")

    from m5data.storage import readdb

    monkeypatch.setattr(duckdb, "connect", refuse)
    monkeypatch.setattr(readdb, "read_cursor", refuse)  # a cursor of the process's read database
    again = plan(parts, spec)
    assert again.plain == first.plain and again.resolve == first.resolve and list(again.contested) == list(first.contested)
    sidecar_path(parts[0]).unlink()
    with pytest.raises(AssertionError, match="opened a DuckDB connection"):
        plan(parts, spec)  # a missing sidecar is computed by DuckDB


def test_reads_share_one_database_per_process_and_see_only_their_own_store(tmp_path):
    """`Store.read` / `count` take a cursor on one in-memory database per process (not a new
    database each, ~15 ms), with TEMP views that no other cursor sees: two stores read side by side
    from threads always get their own rows."""
    import threading

    from m5data.storage.readdb import READ_DB

    a, b = Store.init(tmp_path / "a"), Store.init(tmp_path / "b")
    a.write("products", [{"product_id": f"a:{i}", "title": "a"} for i in range(3)])
    b.write("products", [{"product_id": f"b:{i}", "title": "b"} for i in range(5)])
    a.write("products", [{"product_id": "a:0", "title": "a2"}])  # two parts: a contested key's temp table too
    assert a.count("products") == 3 and b.count("products") == 5
    first = READ_DB.database()
    assert first is not None
    wrong = []

    def reader(store, want):
        for _ in range(40):
            got = sorted(r["product_id"] for r in store.read("products").to_pylist())
            if got != want:
                wrong.append(got)

    threads = [threading.Thread(target=reader, args=(s, want)) for s, want in
               ((a, ["a:0", "a:1", "a:2"]), (b, [f"b:{i}" for i in range(5)])) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong and READ_DB.database() is first
    assert a.read("products", where="product_id = 'a:0'").to_pylist()[0]["title"] == "a2"


def test_stores_on_s3_read_through_one_database_per_aws_environment(s3_url, aws, monkeypatch):
    """Stores on S3 read through a cursor of one database per AWS environment, with their s3fs
    filesystem registered on it (a database of its own cost ~16 ms a read); each read sees only its
    store's rows, and another environment (endpoint, credentials, profile) gets a database of its own."""
    from m5data.storage.objects import aws_environment
    from m5data.storage.readdb import READ_DB

    a, b = Store.init(s3_url + "-a"), Store.init(s3_url + "-b")
    a.write("products", [{"product_id": "a:1", "title": "a"}])
    b.write("products", [{"product_id": f"b:{i}", "title": "b"} for i in range(2)])
    b.write("products", [{"product_id": "b:0", "title": "b2"}])  # two parts: the view's window
    assert [r["product_id"] for r in a.read("products").to_pylist()] == ["a:1"]
    first = READ_DB.database(("s3", aws_environment()))
    assert first is not None
    assert sorted((r["product_id"], r["title"]) for r in b.read("products").to_pylist()) == [("b:0", "b2"), ("b:1", "b")]
    con = b.connect(need=("products",), only=("products",), cursor=True)
    try:
        assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 2
    finally:
        con.close()
    assert READ_DB.database(("s3", aws_environment())) is first
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")  # another environment
    assert [r["product_id"] for r in Store.open(s3_url + "-a").read("products").to_pylist()] == ["a:1"]
    second = READ_DB.database(("s3", aws_environment()))
    assert second is not None and second is not first


def test_a_forked_child_reads_with_a_database_of_its_own(tmp_path):
    """A fork (a DataLoader worker, a forked pool) never uses the parent's read database, whose
    threads stay in the parent: the child makes its own and its reads answer."""
    import multiprocessing

    store = Store.init(tmp_path / "s")
    store.write("products", [{"product_id": f"p{i}", "title": "t"} for i in range(4)])
    assert store.count("products") == 4  # the parent's database exists before the fork

    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_count_and_exit, args=(str(store.root),))
    child.start()
    child.join(60)
    assert child.exitcode == 4
    assert store.count("products") == 4


def _count_and_exit(root: str) -> None:
    import os

    from m5data.storage.readdb import READ_DB

    assert READ_DB.database() is None  # dropped before the fork
    os._exit(Store.open(root).count("products"))


def test_store_connections_print_no_duckdb_progress_bar(tmp_path):
    """A query past 2 s printed DuckDB's own bar on stdout, into a stage's output and the flow's logs
    (it broke bench_incremental's reading of a stage's result line)."""
    from m5data.storage import Store

    store = Store.init(tmp_path / "store")
    for con in (store.connect(), store.connect(sandbox=True)):
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
        con.close()


def test_count_is_the_views_rows_without_its_window(tmp_path, monkeypatch):
    """``Store.count`` counts a table's view from its parts' layout (no window): per group the rows of
    its newest write (``replace_by``), a write whose rows of a group lie in two parts, a table
    without ``replace_by``; a part that holds a key twice (or a compacted table) counts the view."""
    def pool(q, cands):
        return [{"query_id": q, "candidate_id": f"c{c}", "rank": r, "score": 1.0 / (r + 1), "embedder": "e", "run_id": "x"}
                for r, c in enumerate(cands)]

    store = Store.init(tmp_path / "s", part_rows=2)
    store.write("pools", pool("q1", range(3)) + pool("q2", range(2)))
    store.write("pools", pool("q1", range(10, 11)))  # q1's newest write replaces its 3 candidates by 1
    with store.writer("pools") as w:  # one write, q3's 5 candidates in 3 parts, a key of them twice
        rows = pool("q3", range(20, 25))
        w.write(rows + rows[:1])
    store.write("products", [{"product_id": f"a:{i}", "title": "t"} for i in range(4)])
    store.write("products", [{"product_id": f"a:{i}", "title": "again"} for i in range(2, 6)])  # 2 keys again
    store.write("specs", [{"product_id": f"a:{i}", "position": 0, "property": "p", "value": "v"} for i in range(3)])
    store.write("specs", [{"product_id": "a:1", "position": p, "property": "q", "value": "w"} for p in range(3)])
    expected = {"pools": 1 + 2 + 5, "products": 6, "specs": 2 + 3, "dedup": 0}
    windowed = []
    real = store.connect
    monkeypatch.setattr(store, "connect", lambda *a, **k: windowed.append(k.get("only")) or real(*a, **k))
    for table, n in expected.items():
        assert store.count(table) == n, table
    assert all(only == () for only in windowed), windowed  # no view made: the layout counted
    con = real()
    try:
        for table, n in expected.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n, table
    finally:
        con.close()
    store.part_rows = 10  # a part that holds a key twice: the view is counted
    with store.writer("pools") as w:
        w.write(pool("q4", range(2)) + pool("q4", range(1)))
    assert store.count("pools") == 10 and windowed[-1] == ("pools",)
    store.compact("pools")
    assert store.count("pools") == 10


def test_a_small_table_reads_through_the_window_the_rows_the_plan_reads(tmp_path, monkeypatch):
    """Up to ``SMALL_TABLE_ROWS`` rows in its parts a table is read through the window (cheaper than the
    plan's SQL there); the rows are the plan's, for a listed read and for a connection's view."""
    store = Store.init(tmp_path / "store")
    for salt in range(3):
        store.write("specs", _rows("specs", list(range(salt, salt + 6)), salt))
    _, planned = _both(store, "specs")
    monkeypatch.setattr(views, "SMALL_TABLE_ROWS", 50_000)
    sql = store.read_sql(None, TABLES["specs"], parts=store.parts("specs"))
    assert "row_number() OVER" in sql and "_m5data_file" not in sql  # the window, not the plan
    window, small = _both(store, "specs")
    assert small == planned == window
    with store.connect() as con:
        viewed = sorted(map(repr, con.execute("SELECT * FROM specs").fetchall()))
    assert viewed == sorted(repr(tuple(r.values())) for r in store.read("specs").to_pylist()) and len(viewed) == 8 * 3
