"""``m5data doctor [--repair]``: each finding and each repair (issue 10, defect 7 and "Also")."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.media_server import MediaServer, jpeg_bytes, media_rows
from support.store_samples import sample_rows
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.download.run import run as download
from m5data.storage import Store

runner = CliRunner()


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def doctor(store, **kwargs):
    from m5data.tools.doctor_cli import run_doctor

    return run_doctor(store, **kwargs)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def downloaded(tmp_path):
    """A store with three downloaded images (real HTTP, real blobs)."""
    store = Store.init(tmp_path / "store")
    files = {f"i{i}.jpg": jpeg_bytes(80, 60, seed=i) for i in range(3)}
    with MediaServer(files) as server:
        store.write("media", media_rows([server.url(f"/f/i{i}.jpg") for i in range(3)]))
        settings = load(None, {"store.path": str(store.root), "download.allow_private": True, "crawl.allow_private": True}, environ={})
        assert download(store, settings).n_out == 3
        yield store, server, settings


def test_a_healthy_store_is_ok_and_the_run_is_recorded(downloaded):
    store, _, _ = downloaded
    result = m5(store, "doctor")
    assert result.exit_code == 0 and "store ok" in result.output, result.output
    runs = store.read("runs", where="stage = 'doctor'").to_pylist()
    assert len(runs) == 1 and runs[0]["status"] == "ok" and runs[0]["n_in"] >= 3 + 2  # 3 blobs, 2 parts at least


def test_missing_blob_is_found_warned_about_and_fetched_again(downloaded):
    store, server, settings = downloaded
    row = store.read("media", where="status = 'ok'").to_pylist()[0]
    (store.local_root() / row["blob"]).unlink()
    report = doctor(store)
    assert [(f.check, f.path) for f in report.problems] == [("blob", row["blob"])]
    assert row["media_id"] in report.problems[0].problem and "file missing" in report.problems[0].problem
    result = m5(store, "doctor")
    assert result.exit_code == 1 and "problem(s)" in result.output
    result = m5(store, "stats")
    assert result.exit_code == 0 and "1 media row(s) with status ok have no file" in " ".join(result.output.split())
    result = m5(store, "doctor", "--repair")
    assert result.exit_code == 0, result.output
    after = store.read("media", where=f"media_id = '{row['media_id']}'").to_pylist()[0]
    assert after["status"] == "pending" and "file missing" in after["error"]
    server.clear()
    assert download(store, settings).n_out == 1  # only the reset row is fetched again
    assert server.requests == [row["url"].split(str(server.port))[1]]
    assert (store.local_root() / row["blob"]).is_file()
    assert m5(store, "doctor").exit_code == 0


def test_blob_with_wrong_content_is_quarantined_and_reset(downloaded):
    store, _, _ = downloaded
    row = store.read("media", where="status = 'ok'").to_pylist()[1]
    path = store.local_root() / row["blob"]
    path.unlink()  # a fresh inode: the cached demo stores hard-link blobs, never damage one in place
    path.write_bytes(b"\xff\xd8\xff not the original bytes")
    report = doctor(store)
    assert not report.ok and any("does not match its sha256" in f.problem for f in report.problems)
    assert doctor(store, verify_blobs=False).ok  # --quick: presence only
    report = doctor(store, repair=True)
    assert report.ok and not path.exists()
    moved = list((store.local_root() / "quarantine").rglob(path.name))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"\xff\xd8\xff not")
    assert store.read("media", where=f"media_id = '{row['media_id']}'").to_pylist()[0]["status"] == "pending"


@pytest.mark.parametrize("damage", ["truncated", "wrong_schema"])
def test_bad_part_is_quarantined_never_deleted_and_the_rest_stays(tmp_path, damage):
    store = Store.init(tmp_path / "store")
    store.write("products", sample_rows("products", 3))
    store.write("products", sample_rows("products", 2, start=10))
    store.write("specs", [{"product_id": "a:1", "position": 0, "property": "品牌", "value": "甲"}])
    bad = store.parts("products")[0]
    if damage == "truncated":
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:  # a part another program wrote: position as text
        pq.write_table(pa.table({"product_id": ["x"], "title": [1.5], "_seq": pa.array([1], pa.int64())}), bad)
    assert m5(store, "doctor").exit_code == 1
    (finding,) = doctor(store).problems
    assert finding.path.endswith(bad.name) and finding.check == "part"
    assert ("unreadable" if damage == "truncated" else "wrong schema") in finding.problem
    report = doctor(store, repair=True)
    (finding,) = report.problems
    assert report.ok and finding.repaired and "quarantine/" in finding.repair
    assert ("lost an unknown number of rows" if damage == "truncated" else "lost 1 row(s) of products") in finding.repair
    (run,) = [r for r in store.read("runs", where="stage = 'doctor'").to_pylist() if json.loads(r["config"])["job"]["repair"]]
    assert json.loads(run["failures"]) == {"part error": 1} and run["n_out"] == 1
    assert not bad.exists()
    kept = list((store.local_root() / "quarantine").rglob(bad.name))
    assert len(kept) == 1 and kept[0].stat().st_size > 0
    assert store.count("products") == 2 and store.count("specs") == 1
    assert m5(store, "doctor").exit_code == 0


def test_missing_derived_file_returns_its_source_to_extract(tmp_path):
    from m5data.extract.selection import video_sql

    store = Store.init(tmp_path / "store")
    video = store.blobs.put_bytes(b"\x00\x00\x00\x18ftypmp42 fake video", "mp4")
    src = {"media_id": "v1", "product_id": "p", "kind": "video", "role": "video", "url": "http://x/v.mp4",
           "blob": video.path, "sha256": video.sha256, "status": "ok"}
    mp3 = store.blobs.put_bytes(b"ID3 fake mp3", "mp3")
    mfcc = store.local_root() / "derived" / "mfcc" / "ab" / "x.npy"
    mfcc.parent.mkdir(parents=True)
    mfcc.write_bytes(b"\x93NUMPY fake")
    frames = store.local_root() / "derived" / "frames" / "ab" / "x"
    frames.mkdir(parents=True)
    (frames / "frames.json").write_text("{}")
    meta = json.dumps({"source_blob": video.path})
    derived = [{"media_id": f"d-{k}", "product_id": "p", "kind": k, "role": "derived", "source_media_id": "v1",
                "blob": b, "sha256": s, "status": "ok", "meta": meta}
               for k, b, s in [("frames", "derived/frames/ab/x", None), ("audio", mp3.path, mp3.sha256),
                               ("mfcc", "derived/mfcc/ab/x.npy", None)]]
    store.write("media", [src, *derived])
    con = store.connect()
    assert con.execute(f"SELECT count(*) FROM ({video_sql(True, True, False)})").fetchone()[0] == 0
    con.close()
    mfcc.unlink()
    report = doctor(store)
    assert [f.check for f in report.problems] == ["derived"] and "x.npy" in report.problems[0].path
    assert doctor(store, repair=True).ok
    rows = {r["kind"]: r for r in store.read("media").to_pylist()}
    assert rows["video"]["status"] == "ok"
    assert all(rows[k]["status"] == "pending" and "source_blob" not in json.loads(rows[k]["meta"])
               for k in ("frames", "audio", "mfcc"))
    con = store.connect()
    assert con.execute(f"SELECT count(*) FROM ({video_sql(True, True, False)})").fetchone()[0] == 1  # extract redoes it
    con.close()
    assert doctor(store).ok


def test_temp_files_of_dead_runs_are_found_and_removed_live_ones_kept(tmp_path):
    store = Store.init(tmp_path / "store")
    dead = store.blobs.tmp_dir / f"{_dead_pid()}-{os.urandom(8).hex()}.part"
    live = store.blobs.tmp_dir / f"{os.getpid()}-{os.urandom(8).hex()}.part"
    store.blobs.tmp_dir.mkdir(parents=True, exist_ok=True)
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    part_tmp = store.table_dir("specs") / f".tmp-{_dead_pid()}-{os.urandom(8).hex()}.parquet"
    part_tmp.write_bytes(b"half a part")
    assert m5(store, "doctor").exit_code == 1
    report = doctor(store)
    assert sorted(f.path for f in report.problems) == sorted([str(dead.relative_to(store.root)),
                                                              str(part_tmp.relative_to(store.root))])
    assert [f.severity for f in report.findings if f.path.endswith(live.name)] == ["info"]  # in use: kept
    assert m5(store, "doctor", "--repair").exit_code == 0
    assert not dead.exists() and not part_tmp.exists() and live.exists()


def test_corrupt_catalog_is_found_and_rebuilt(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", sample_rows("products", 2))
    store.catalog_path.write_bytes(b"not a duckdb file at all" * 100)
    report = doctor(store)
    assert [(f.check, f.severity) for f in report.problems] == [("catalog", "warning")]
    assert doctor(store, repair=True).ok
    import duckdb

    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 2
    con.close()


def test_a_stale_catalog_is_a_warning_and_rebuilt(tmp_path):
    """A catalog whose views are not the store's (a refresh that could not be written, or one made
    by an older m5data for a store since copied) is a problem that ``--repair`` fixes."""
    import duckdb

    store = Store.init(tmp_path / "store")
    store.write("products", sample_rows("products", 2))
    store.compact("products")
    old = store.catalog_path.read_bytes()  # its products view reads the compacted part as it is
    store.write("products", sample_rows("products", 2))  # the same keys again
    store.catalog_path.write_bytes(old)
    report = doctor(store)
    assert [(f.check, f.severity) for f in report.problems] == [("catalog", "warning")]
    assert "products" in report.problems[0].problem
    assert m5(store, "doctor").exit_code == 1
    assert m5(store, "doctor", "--repair").exit_code == 0
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == store.count("products") == 2
    con.close()
    assert doctor(store).ok


def test_a_catalog_made_for_another_folder_names_it(tmp_path):
    """A catalog of an older m5data named its store's folder in its views: copied with the store, it
    read the original. Doctor says where it was made; ``--repair`` makes this store's."""
    import shutil

    import duckdb

    from m5data.storage import TABLES

    original = Store.init(tmp_path / "original")
    original.write("products", sample_rows("products", 2))
    con = duckdb.connect(str(original.catalog_path))
    con.execute("DELETE FROM _m5data_views")  # the views as an older m5data recorded them: absolute globs
    con.executemany("INSERT INTO _m5data_views VALUES (?, ?)", [[n, original.view_sql(t)] for n, t in TABLES.items()])
    con.close()
    copy = Store.open(shutil.copytree(original.root, tmp_path / "copy"))
    report = doctor(copy)
    assert [(f.check, f.severity) for f in report.problems] == [("catalog", "warning")]
    assert f"made for the store at {original.root}" in report.problems[0].problem
    assert doctor(copy, repair=True).ok and doctor(copy).ok


def test_repair_is_refused_while_a_stage_runs(tmp_path):
    store = Store.init(tmp_path / "store")
    code = ("import sys, time\nfrom m5data.storage import Store\n"
            "with Store.open(sys.argv[1]).stage_lock('download'):\n    print('holding', flush=True)\n    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store.root)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = m5(store, "doctor", "--repair")
        assert result.exit_code == 1 and f"PID {holder.pid}" in result.output and "download" in result.output
        assert m5(store, "doctor").exit_code == 0  # checking alone never waits
    finally:
        holder.kill()
        holder.wait()
    assert m5(store, "doctor", "--repair").exit_code == 0
