"""The store's tables on object storage (``s3://bucket/prefix``), against a real S3 endpoint (moto's
server on 127.0.0.1, in its own process, with authentication on).

The same writes on a local store and on an S3 store read the same rows (every kind of table); two
processes committing to one table at once both succeed and agree on the order; a writer SIGKILLed
after uploading its parts and before its log entry leaves nothing a reader sees, and its objects are
garbage only after the grace period; compaction beside appends loses nothing; the verbs (init, sql,
stats, compact, doctor) work on an S3 store; credentials in the URL are refused; blobs are content-addressed
and written once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from support.s3_server import keys, requests  # noqa: E402

from m5data.cli import app  # noqa: E402
from m5data.storage import Store, StoreBusy, StoreError  # noqa: E402
from m5data.storage.commitlog import LOG_DIR  # noqa: E402
from m5data.storage.s3store import S3Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def rows(store, name: str) -> list[dict]:
    table = store.read(name)
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _spec_rows(product: str, values: list[str]) -> list[dict]:
    return [{"product_id": product, "position": i, "property": f"p{i}", "value": v} for i, v in enumerate(values)]


def _apply(store, steps) -> None:
    for step, *args in steps:
        if step == "write":
            store.write(*args)
        elif step == "absent":
            store.write(*args, if_absent=True)
        elif step == "stream":
            with store.writer(args[0]) as w:
                for batch in args[1]:
                    w.write(batch)
        elif step == "compact":
            store.compact(args[0])
        elif step == "replace":
            store.replace(*args)


STEPS = [
    ("write", "products", [{"product_id": "a:1", "title": "one"}, {"product_id": "a:2", "title": "two"}]),
    ("write", "products", [{"product_id": "a:1", "title": "one again"}]),
    ("write", "products", [{"product_id": "a:1", "title": "one again"}]),  # a repeat of the newest: a no-op
    ("absent", "products", [{"product_id": "a:2", "title": "never"}, {"product_id": "a:3", "title": "three"}]),
    ("write", "specs", _spec_rows("a:1", ["x", "y", "z"]) + _spec_rows("a:2", ["u"])),
    ("write", "specs", _spec_rows("a:1", ["x2"])),  # replaces a:1's three rows by one
    ("stream", "specs", [_spec_rows("b:1", ["1", "2"]), _spec_rows("b:2", ["3"]) + _spec_rows("b:3", ["4"])]),
    ("compact", "specs"),
    ("write", "specs", _spec_rows("b:1", ["new"])),  # after compaction: still replaces b:1 whole
    ("write", "splits", [{"version": "v1", "split": "train", "product_id": p} for p in ("a:1", "a:2")]),
    ("write", "splits", [{"version": "v2", "split": "train", "product_id": "a:3"}]),
    ("write", "splits", [{"version": "v1", "split": "test", "product_id": "a:2"}]),  # replaces v1 only
    ("write", "pools", [{"query_id": "q1", "candidate_id": c, "rank": i + 1} for i, c in enumerate("abc")]),
    ("write", "pools", [{"query_id": "q1", "candidate_id": "d", "rank": 1}]),
    ("compact", "products"),
    ("write", "products", [{"product_id": "a:2", "title": "two again"}]),
    ("write", "products", [{"product_id": "a:1", "title": "one again"}]),  # an older batch repeated: wins again
    ("replace", "taxonomy", [{"level": 1, "label_id": 1, "name": "x"}, {"level": 1, "label_id": 2, "name": "y"}]),
    ("replace", "taxonomy", [{"level": 1, "label_id": 2, "name": "z"}]),
]


@pytest.fixture
def url(s3_url):
    return s3_url


def test_the_same_writes_read_the_same_rows_on_s3_as_on_a_local_store(url, tmp_path):
    local = Store.init(tmp_path / "local", part_rows=2)
    remote = Store.init(url, part_rows=2)
    assert isinstance(remote, S3Store)
    _apply(local, STEPS)
    _apply(remote, STEPS)
    for name in ("products", "specs", "splits", "pools", "taxonomy", "media"):
        assert rows(Store.open(url), name) == rows(local, name), name
        assert Store.open(url).count(name) == local.count(name), name
        assert Store.open(url).stored_rows(name) == local.stored_rows(name) >= local.count(name), name
    assert local.stored_rows("pools") == 4 and local.count("pools") == 1  # q1's three rows replaced by one
    assert [r["title"] for r in rows(remote, "products")] == ["one again", "two again", "three"]
    con = Store.open(url).connect()
    try:
        assert con.execute("SELECT count(*) FROM specs WHERE product_id = 'b:1'").fetchone()[0] == 1
    finally:
        con.close()


def test_a_repeat_of_the_newest_write_adds_no_log_entry_and_no_object(url, aws):
    store = Store.init(url)
    batch = [{"product_id": "a:1", "title": "t"}]
    assert store.write("products", batch) == 1
    before = keys(aws, url.split("/", 3)[3] + "/tables/products/")
    assert store.write("products", batch) == 0
    assert Store.open(url).write("products", batch) == 0  # another process's store reads the log: the same
    assert keys(aws, url.split("/", 3)[3] + "/tables/products/") == before


_WRITER = textwrap.dedent("""
    import sys
    from m5data.storage import Store
    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store.open(url)
    for k in range(n):
        store.write("products", [{"product_id": "shared", "title": f"{who}-{k}"},
                                 {"product_id": f"{who}:{k}", "title": "own"}])
""")


def _entries(s3, url: str, table: str) -> list[dict]:
    prefix = url.split("/", 3)[3] + f"/tables/{table}/{LOG_DIR}/"
    return [json.loads(s3["client"].get_object(Bucket=s3["bucket"], Key=k)["Body"].read()) for k in keys(s3, prefix)]


def _part_title(s3, url: str, part: str) -> dict:
    import io

    import pyarrow.parquet as pq

    key = url.split("/", 3)[3] + f"/tables/products/{part}"
    data = s3["client"].get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    return {r["product_id"]: r["title"] for r in pq.read_table(io.BytesIO(data)).to_pylist()}


def test_two_processes_committing_to_one_table_lose_nothing_and_agree_on_the_order(url, aws):
    Store.init(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, who, "12"], env=env, stderr=subprocess.PIPE)
             for who in ("w1", "w2")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    entries = _entries(aws, url, "products")
    assert [e["n"] for e in entries] == list(range(1, 25))  # one entry per write, no gap, none lost
    assert {e["pid"] for e in entries} == {p.pid for p in procs}
    got = {r["product_id"]: r["title"] for r in Store.open(url).read("products").to_pylist()}
    assert {k for k in got if k != "shared"} == {f"{w}:{k}" for w in ("w1", "w2") for k in range(12)}
    # last write wins by the log's order: the shared row is the one of the newest entry's part
    assert got["shared"] == _part_title(aws, url, entries[-1]["add"][0])["shared"]


_KILLED = textwrap.dedent("""
    import sys, time
    from m5data.storage import Store, commitlog
    def stop_before_the_entry(self, make):  # the parts are uploaded; the entry would be written now
        print("uploaded", flush=True)
        time.sleep(600)
    commitlog.TableLog.commit = stop_before_the_entry
    Store.open(sys.argv[1]).write("products", [{"product_id": "ghost", "title": "never seen"}])
""")


def _paused_writer(url: str):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, url], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"uploaded", proc.stderr.read().decode()[-2000:]
    return proc


def _store_with_a_killed_writer(url: str):
    """A store with one committed products part and the part of a writer killed before its log entry."""
    store = Store.init(url)
    store.write("products", [{"product_id": "a:1"}])
    proc = _paused_writer(url)
    proc.kill()
    proc.wait(30)
    return store


def test_a_writer_killed_before_its_log_entry_leaves_only_garbage_removed_after_the_grace(url, aws):
    store = Store.init(url)
    store.write("products", [{"product_id": "a:1", "title": "kept"}])
    prefix = url.split("/", 3)[3] + "/tables/products/"
    parts_before = {k for k in keys(aws, prefix) if "/part-" in k}
    proc = _paused_writer(url)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    orphans = {k for k in keys(aws, prefix) if "/part-" in k} - parts_before
    assert len(orphans) == 1  # its part object is there ...
    fresh = Store.open(url)
    assert [r["product_id"] for r in fresh.read("products").to_pylist()] == ["a:1"]  # ... and no reader sees it
    assert fresh.count("products") == 1 and len(fresh.parts("products")) == 1
    assert fresh.sweep_garbage() == []  # younger than the grace period (a day by default): kept
    checked = runner.invoke(app, ["--store", url, "doctor", "--repair"])
    assert checked.exit_code == 0 and "1 uncommitted parts" in checked.output, checked.output  # kept: a live writer's?
    assert {k for k in keys(aws, prefix) if "/part-" in k} - parts_before == orphans
    time.sleep(1.5)
    old = runner.invoke(app, ["--store", url, "--set", "store.garbage_grace=1", "doctor"])
    assert old.exit_code == 1 and "killed writer" in old.output, old.output
    repaired = runner.invoke(app, ["--store", url, "--set", "store.garbage_grace=1", "doctor", "--repair"])
    assert repaired.exit_code == 0 and "removed" in repaired.output, repaired.output
    assert {k for k in keys(aws, prefix) if "/part-" in k} == parts_before
    assert fresh.read("products").to_pylist()[0]["title"] == "kept"
    assert [r["stage"] for r in Store.open(url).read("runs").to_pylist()] == ["doctor"] * 3


def test_doctor_repair_on_s3_is_fenced_by_the_stages_leases_and_fences_them(url, aws):
    """The store-wide repair lease (locks/doctor): refused while a stage runs, no stage starts (and no
    second repair) while it is held; a refused repair removed nothing."""
    from m5data.storage.s3stages import repair_lease

    store = _store_with_a_killed_writer(url)
    prefix = url.split("/", 3)[3] + "/tables/products/"
    before = {k for k in keys(aws, prefix) if "/part-" in k}
    assert len(before) == 2  # the committed part and the killed writer's
    repair = ["--store", url, "--set", "store.garbage_grace=0", "doctor", "--repair"]
    with store.stage_lock("download"):
        refused = runner.invoke(app, repair)
    assert refused.exit_code == 1 and "doctor --repair: the store" in refused.output, refused.output
    assert "in use by download (host" in refused.output, refused.output
    assert {k for k in keys(aws, prefix) if "/part-" in k} == before
    with repair_lease(Store.open(url)):
        with pytest.raises(StoreBusy, match=r"crawl: the store .* in use by doctor --repair \(host"):
            with Store.open(url).stage_lock("crawl"):
                pass
        with pytest.raises(StoreBusy, match=r"download.shard-0-of-2: .* in use by doctor --repair"):
            with Store.open(url).stage_lock("download", (0, 2)):
                pass
        second = runner.invoke(app, repair)
        assert second.exit_code == 1 and "in use by doctor --repair" in second.output, second.output
    repaired = runner.invoke(app, repair)
    assert repaired.exit_code == 0 and "removed" in repaired.output, repaired.output
    assert len({k for k in keys(aws, prefix) if "/part-" in k}) == 1 and Store.open(url).count("products") == 1
    with Store.open(url).stage_lock("crawl"):  # released
        pass


def test_doctor_repair_beside_a_compaction_keeps_the_compactions_uploaded_parts(url, aws, monkeypatch):
    """A compaction's new part is up, its entry not yet, when a repair with no grace at all sweeps: the
    table's lease (held by the compaction) keeps the sweep off that table, so the compaction commits a
    part that exists; the table reads every row after it. Other tables are swept meanwhile."""
    from m5data.storage.s3parts import ObjectStream
    from m5data.storage.schema import table_spec

    store = Store.init(url)
    for k in range(3):
        store.write("products", [{"product_id": f"a:{k}", "title": str(k)}])
    store.write("captions", [{"product_id": "a:0", "text": "x"}])
    orphan = ObjectStream(store, table_spec("captions"))
    orphan.write([{"product_id": "a:9", "text": "never committed"}])
    orphan_part = orphan.close()[0]  # an upload no entry names: garbage for a grace of 0
    close, seen = ObjectStream.close, []

    def close_then_repair(self):
        added = close(self)
        if self.keep_seq:  # the compaction's stream: its parts are up, its commit comes next
            seen.append(runner.invoke(app, ["--store", url, "--set", "store.garbage_grace=0", "doctor", "--repair"]))
        return added

    monkeypatch.setattr(ObjectStream, "close", close_then_repair)
    assert store.compact("products") == (3, 1)
    assert len(seen) == 1
    out = seen[0].output
    assert "kept: doctor --repair: table products of" in out and "compact products (host" in out, out
    assert "removed" in out, out  # the captions garbage went
    assert not any(k.endswith(orphan_part) for k in keys(aws, url.split("/", 3)[3] + "/tables/captions/"))
    fresh = Store.open(url)
    assert sorted(r["title"] for r in fresh.read("products").to_pylist()) == ["0", "1", "2"]
    assert fresh.is_compacted("products") and len(fresh.parts("products")) == 1


def test_sweep_garbage_removes_exactly_the_uncommitted_parts(url, aws):
    store = _store_with_a_killed_writer(url)
    prefix = url.split("/", 3)[3] + "/"
    orphans = {k for k in keys(aws, prefix) if "/part-" in k and k[len(prefix):] not in
               {p.split("/", 3)[3][len(prefix):] for p in store.parts("products")}}
    assert len(orphans) == 1
    assert {prefix + r for r in store.sweep_garbage(grace=0)} == orphans
    assert store.count("products") == 1


def test_a_live_writers_uncommitted_parts_survive_a_sweep_within_the_grace(url, aws):
    store = Store.init(url)
    proc = _paused_writer(url)
    try:
        assert store.sweep_garbage(grace=3600) == []
        prefix = url.split("/", 3)[3] + "/tables/products/"
        assert len([k for k in keys(aws, prefix) if "/part-" in k]) == 1
    finally:
        proc.kill()
        proc.wait(30)


_APPENDER = textwrap.dedent("""
    import sys, time
    from m5data.storage import Store
    store = Store.open(sys.argv[1])
    for k in range(int(sys.argv[2])):
        store.write("specs", [{"product_id": f"p{k}", "position": 0, "property": "a", "value": str(k)},
                              {"product_id": "shared", "position": 0, "property": "a", "value": str(k)}])
        time.sleep(0.05)
""")


def test_compaction_beside_appends_loses_nothing(url, aws):
    store = Store.init(url)
    store.write("specs", _spec_rows("shared", ["first", "second"]))
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, url, "30"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.PIPE)
    while proc.poll() is None:
        store.compact("specs")
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
    kinds = [(e["kind"], e["pid"]) for e in _entries(aws, url, "specs")]
    appends = [i for i, (kind, pid) in enumerate(kinds) if kind == "write" and pid == proc.pid]
    during = [i for i, (kind, _) in enumerate(kinds) if kind == "compact" and appends[0] < i < appends[-1]]
    assert during, kinds  # compactions committed between the appends
    got = rows(Store.open(url), "specs")
    assert sorted(r["product_id"] for r in got) == sorted([f"p{k}" for k in range(30)] + ["shared"])
    assert [r["value"] for r in got if r["product_id"] == "shared"] == ["29"]  # the last write, one row
    store.compact("specs")
    assert rows(Store.open(url), "specs") == got
    assert all(kind != "lease" or e["lease"]["what"] == "compact specs"
               for e in _entries(aws, url, "specs") for kind in [e["kind"]])


def test_a_compaction_of_rewritten_groups_reads_as_before_on_s3_as_on_a_local_store(url, tmp_path):
    """Pools rewritten whole, a write cut into parts (a pool straddles two) and a write holding a key
    twice: each group's newest write, compacted, reads as the view did, on both stores."""
    def pools(queries, run, n=3, twice=False):
        out = [{"query_id": q, "candidate_id": f"c{k}", "rank": k, "score": 1.0 - k / 10, "embedder": "e", "run_id": run}
               for q in queries for k in range(n)]
        return out + ([{**out[0], "rank": 9, "run_id": run + "-again"}] if twice else [])

    for store in (Store.init(tmp_path / "local", part_rows=4), Store.init(url, part_rows=4)):
        with store.writer("pools") as w:
            w.write(pools(["q0", "q1", "q2"], "a"))  # 9 rows in parts of 4: q1 straddles two parts
        store.write("pools", pools(["q0"], "b", n=2))
        store.write("pools", pools(["q2", "q3"], "c", twice=True))  # q2's c0 twice in one write
        def reader(store=store):
            return Store.open(url) if isinstance(store, S3Store) else store

        def settled(table):  # which of a key's two rows in one write is read is not defined: one of them
            return [r for r in table if (r["query_id"], r["candidate_id"]) != ("q2", "c0")]

        before = rows(reader(), "pools")
        store.compact("pools")
        after = rows(reader(), "pools")
        assert settled(after) == settled(before) and reader().count("pools") == len(after) == 2 + 3 + 3 + 3, type(store).__name__
        assert [r["run_id"] for r in after if (r["query_id"], r["candidate_id"]) == ("q2", "c0")] in (["c"], ["c-again"])


def test_a_query_whose_parts_a_compaction_removed_is_run_again(url, monkeypatch):
    from m5data.storage.sql import run_query

    store = Store.init(url)
    store.write("products", [{"product_id": "a:1"}])
    store.write("products", [{"product_id": "a:2"}])
    connect, calls = S3Store.connect, []

    def compacted_after_listing(self, *args, **kwargs):
        con = connect(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # the views name the two parts; a compaction removes them before the query
            assert Store.open(url).compact("products") == (2, 1)
        return con

    monkeypatch.setattr(S3Store, "connect", compacted_after_listing)
    assert run_query(store, "SELECT count(*) AS n FROM products").to_pylist() == [{"n": 2}]
    assert len(calls) == 3  # the query's, the compaction's own, the query's again


def test_a_second_compaction_is_refused_while_the_lease_is_held(url):
    store = Store.init(url)
    store.write("products", [{"product_id": "a:1"}])
    store.write("products", [{"product_id": "a:2"}])
    with store.table_lock("products", "compact products"):
        with pytest.raises(StoreBusy, match="compact products .*PID"):
            Store.open(url).compact("products", wait=0)
    assert Store.open(url).compact("products", wait=0) == (2, 1)  # released: the next one runs


def test_a_compaction_whose_lease_ran_out_and_whose_parts_went_commits_nothing(url, aws, monkeypatch):
    from m5data.storage.commitlog import Conflict

    slow = Store.init(url, lease_seconds=0.2)
    for k in range(3):
        slow.write("products", [{"product_id": f"a:{k}", "title": str(k)}])
    scan = S3Store._scan

    def overtaken(self, *args, **kwargs):  # the slow compaction read its rows, then its lease ran out
        batches = list(scan(self, *args, **kwargs))
        if self is slow:
            time.sleep(0.3)
            assert Store.open(url).compact("products", wait=0) == (3, 1)  # another compaction took over
        return iter(batches)

    monkeypatch.setattr(S3Store, "_scan", overtaken)
    with pytest.raises(Conflict, match="parts gone"):
        slow.compact("products", wait=0)
    fresh = Store.open(url)
    assert sorted(r["title"] for r in fresh.read("products").to_pylist()) == ["0", "1", "2"]
    assert fresh.uncommitted() == []  # the refused compaction removed the parts it had uploaded
    assert fresh.log("products").state().lease is None  # and released its lease


def test_requests_per_commit_and_per_read_are_few(url, aws):
    store = Store.init(url, checkpoint_every=4)
    store.write("products", [{"product_id": "a:0"}])
    start = requests(aws["log"])
    for k in range(1, 11):
        store.write("products", [{"product_id": f"a:{k}"}])
    # PUT the part, LIST the log's tail, PUT the entry (+ the checkpoint every 4th entry)
    assert (requests(aws["log"]) - start) / 10 <= 3 + 1 / 4
    start = requests(aws["log"])
    assert store.count("products") == 11
    # the log's tail, then per part a HEAD and DuckDB's ranged GETs (it opens a part 3 times: bind, footer, rows)
    assert requests(aws["log"]) - start <= 1 + 11 * 4
    start = requests(aws["log"])
    assert store.count("products") == 11
    assert requests(aws["log"]) - start <= 1 + 11 * 3  # a part's HEAD is remembered: it never changes
    checkpoint = aws["client"].get_object(Bucket=aws["bucket"], Key=url.split("/", 3)[3] + "/tables/products/_checkpoint.json")
    assert json.loads(checkpoint["Body"].read())["n"] == 8
    start = requests(aws["log"])
    fresh = Store.open(url, checkpoint_every=4)
    assert len(fresh.parts("products")) == 11  # the checkpoint, a LIST from entry 8 on and 3 entries: no full listing
    assert requests(aws["log"]) - start == 1 + 1 + 1 + 3


def test_the_verbs_init_sql_stats_and_compact_work_on_an_s3_store(url):
    assert runner.invoke(app, ["--store", url, "init"]).exit_code == 0
    store = Store.open(url)
    store.write("products", [{"product_id": "a:1", "title": "一", "category_path": ["c"]}])
    store.write("products", [{"product_id": "a:2", "title": "二", "category_path": ["c"]}])
    store.write("specs", _spec_rows("a:1", ["v"]))
    out = runner.invoke(app, ["--store", url, "sql", "SELECT product_id, title FROM products ORDER BY 1",
                              "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ['"product_id","title"', '"a:1","一"', '"a:2","二"']
    refused = runner.invoke(app, ["--store", url, "sql", "SELECT * FROM read_csv('/etc/passwd')"])
    assert refused.exit_code == 1 and "SQL error" in refused.output  # the sandbox: the store's files only
    stats = runner.invoke(app, ["--store", url, "stats"])
    assert stats.exit_code == 0, stats.output
    assert any(line.split()[1:3] == ["products", "│"] and "2" in line.split() for line in stats.output.splitlines()
               if len(line.split()) > 3), stats.output
    compact = runner.invoke(app, ["--store", url, "compact", "products"])
    assert compact.exit_code == 0 and "products: 2 part(s) -> 1" in compact.output, compact.output
    env = {"M5DATA_STORE_PATH": url}
    again = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM products", "--format", "json"], env=env)
    assert again.exit_code == 0 and json.loads(again.output) == {"n": 2}, again.output


def test_credentials_in_the_url_and_a_missing_store_are_one_line_errors(aws):
    with pytest.raises(StoreError, match="credentials in the URL are refused") as info:
        Store.open(f"s3://AKIAXYZ:hunter22@{aws['bucket']}/x")
    assert "hunter22" not in str(info.value) and "AKIAXYZ" not in str(info.value)
    with pytest.raises(StoreError, match="no m5data store at s3://"):
        Store.open(f"s3://{aws['bucket']}/nothing-here")
    out = subprocess.run([sys.executable, "-m", "m5data", "--store", f"s3://{aws['bucket']}/nothing-here", "stats"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no m5data store at s3://" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_a_store_on_s3_holds_only_the_marker_parts_and_the_log(url, aws):
    store = Store.init(url)
    store.write("products", pa.table({"product_id": ["a:1"]}))
    prefix = url.split("/", 3)[3] + "/"
    assert sorted(k[len(prefix):].split("/")[0] for k in keys(aws, prefix)) == ["store.json", "tables", "tables"]


def test_blobs_are_content_addressed_and_written_once(url, aws, tmp_path):
    from m5data.storage.blobs import BlobStore

    store = Store.init(url)
    local = BlobStore(tmp_path / "local")
    data = bytes(range(256)) * 40_000  # 10 MB: spooled to disk, uploaded in parts
    ref = store.blobs.put_bytes(b"small blob", "jpg")
    assert ref == local.put_bytes(b"small blob", "jpg")  # the same address as on a folder store
    with store.blobs.writer("mp4") as w:
        for i in range(0, len(data), 1 << 20):
            w.write(data[i:i + (1 << 20)])
        big = w.commit()
    assert big.sha256 == hashlib.sha256(data).hexdigest() and big.bytes == len(data)
    prefix = url.split("/", 3)[3] + "/"
    etag = aws["client"].head_object(Bucket=aws["bucket"], Key=prefix + ref.path)["ETag"]
    assert Store.open(url).blobs.put_bytes(b"small blob", "jpg") == ref  # a second writer: kept as it is
    assert aws["client"].head_object(Bucket=aws["bucket"], Key=prefix + ref.path)["ETag"] == etag
    assert sorted(store.blobs.iter_paths()) == sorted([ref.path, big.path])
    assert store.blobs.verify(big.path) and store.blobs.verify(ref.path)
    with store.blobs.open(big.path) as fh:
        assert fh.read() == data
    assert store.blobs.fetch(ref.path, tmp_path).read_bytes() == b"small blob"
    aws["client"].put_object(Bucket=aws["bucket"], Key=prefix + ref.path, Body=b"bit rot")
    assert not store.blobs.verify(ref.path)
    with pytest.raises(ValueError, match="bad blob extension"):
        store.blobs.put_bytes(b"x", "../x")


def test_a_new_blob_costs_one_conditional_put_and_no_head_or_list(url, aws, tmp_path):
    """A blob up to the spool size is one PUT with If-None-Match (before: HEAD, then LIST on s3fs's 404,
    then the PUT); a larger one a HEAD and its upload, never a LIST."""
    from support.s3_server import requests_by_kind

    store = Store.init(url)
    small_file, big_file = tmp_path / "small.jpg", tmp_path / "big.mp4"
    small_file.write_bytes(b"an image's bytes")
    big_file.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: past the spool size
    at = requests(aws["log"])
    small = store.blobs.put_file(small_file, "jpg")
    assert requests_by_kind(aws["log"], at) == {"PUT": 1}
    other = Store.open(url)
    at = requests(aws["log"])
    assert other.blobs.put_file(small_file, "jpg") == small  # there already: the PUT refused, the blob kept
    assert requests_by_kind(aws["log"], at) == {"PUT": 1} and store.blobs.verify(small.path)
    at = requests(aws["log"])
    store.blobs.put_file(big_file, "mp4")
    assert "LIST" not in requests_by_kind(aws["log"], at) and requests_by_kind(aws["log"], at)["HEAD"] == 1


def test_runs_past_its_part_cap_is_compacted_and_a_run_costs_no_request_more(url, aws):
    from m5data.storage import StageStats, record_run
    from m5data.storage.runs import RUNS_PARTS

    store = Store.init(url, checkpoint_every=4)
    record_run(store, StageStats("align"))
    start = requests(aws["log"])
    for k in range(1, RUNS_PARTS):
        record_run(store, StageStats("align", n_in=k))
    # as any write: PUT the part, LIST the log's tail, PUT the entry (+ the checkpoint every 4th entry);
    # the part count comes from the state that commit left
    assert requests(aws["log"]) - start <= 3 * (RUNS_PARTS - 1) + RUNS_PARTS // 4
    assert len(store.parts("runs")) == RUNS_PARTS
    record_run(store, StageStats("align", n_in=RUNS_PARTS))
    assert len(Store.open(url).parts("runs")) == 1
    assert sorted(r["n_in"] for r in store.read("runs").to_pylist()) == list(range(RUNS_PARTS + 1))
