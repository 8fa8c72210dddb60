"""A stage paused past its lease writes nothing more (issue 55, item 1), on both stores.

A child process holds a stage's lock (``store.stage_lock("align")``, as the align stage does), is
SIGSTOPped, and another run of the stage takes over and writes its result; the child is then
SIGCONTed and tries to write its stale result. On object storage (moto's real S3 server on 127.0.0.1)
the stale commit is refused (the lease it was taken under is no longer its own) and the taken-over
run's rows stay; on a folder store the fcntl lock is still the stopped child's, so the second run is
refused while the child is stopped, and the child's write is the one that lands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from m5data.storage import Store, StoreBusy

ROOT = Path(__file__).resolve().parents[2]

_HOLDER = textwrap.dedent("""
    import sys
    from m5data.storage import Store
    store = Store.open(sys.argv[1], lease_seconds=float(sys.argv[2]))
    with store.stage_lock("align"):
        print("held", flush=True)
        sys.stdin.readline()  # the test SIGSTOPs us here, then SIGCONTs us and sends a line
        store.replace("taxonomy", [{"level": 1, "label_id": 1, "name": "stale"}])
        store.replace("label_map", [{"platform": "a", "raw_path": "x", "class_id": 1}])
    print("wrote", flush=True)
""")


def _holder(root: str, lease_seconds: float, script: str = _HOLDER) -> subprocess.Popen:
    """``script`` run in a child over the store ``root``, once it says it holds its lease."""
    proc = subprocess.Popen([sys.executable, "-c", script, root, str(lease_seconds)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held", proc.stderr.read().decode()[-2000:]
    return proc


def _resume(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(b"go\n", timeout=120)
    return proc.returncode, out.decode() + err.decode()


def _fresh_rows(store) -> tuple[list, list]:
    return ([r["name"] for r in store.read("taxonomy").to_pylist()],
            [r["class_id"] for r in store.read("label_map").to_pylist()])


def test_a_stage_paused_past_its_lease_on_s3_commits_nothing_more(s3_url, aws):
    pytest.importorskip("moto")
    Store.init(s3_url)
    proc = _holder(s3_url, 3.0)
    try:
        proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)  # its lease runs out while it is stopped
        other = Store.open(s3_url, lease_seconds=3.0)
        with other.stage_lock("align"):  # the next run takes the lease over and writes its result
            other.replace("taxonomy", [{"level": 1, "label_id": 2, "name": "fresh"}])
            other.replace("label_map", [{"platform": "a", "raw_path": "x", "class_id": 2}])
        code, output = _resume(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code != 0 and "LeaseLost" in output and "no longer its own" in output and "wrote" not in output, output
    assert _fresh_rows(Store.open(s3_url)) == (["fresh"], [2])  # neither table holds the stale run's rows


def test_a_stage_stopped_while_holding_its_lock_on_a_folder_store_keeps_the_next_run_out(tmp_path):
    root = tmp_path / "store"
    Store.init(root)
    proc = _holder(str(root), 3.0)
    try:
        proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)
        with pytest.raises(StoreBusy, match=f"PID {proc.pid}"):
            with Store.open(root).stage_lock("align"):
                pass
        code, output = _resume(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0 and "wrote" in output, output
    assert _fresh_rows(Store.open(root)) == (["stale"], [1])


_LOCKS = textwrap.dedent("""
    import contextlib, sys
    from m5data.storage import Store
    store = Store.open(sys.argv[1])
    with contextlib.ExitStack() as held:
        for name in sys.argv[2:]:
            held.enter_context(store.stage_lock(name))
        print("held", flush=True)
        sys.stdin.readline()
""")


@pytest.mark.parametrize("verb, lock", [(["build-splits"], "splits"), (["report", "--out", "OUT"], "report"),
                                        (["export", "--out", "OUT"], "export"), (["annotate", "dedup"], "dedup")])
def test_every_global_stage_runs_under_its_lock(tmp_path, verb, lock):
    """build-splits, report, export and the curation stages take their stage's lock (a lease on object
    storage, which fences their commits) through the registry's ``stages.call``: a second run is refused,
    in one line naming the holder's PID."""
    from typer.testing import CliRunner

    from m5data.cli import app

    root = tmp_path / "store"
    Store.init(root)
    holder = subprocess.Popen([sys.executable, "-c", _LOCKS, str(root), lock], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held", holder.stderr.read().decode()[-2000:]
        verb = [str(tmp_path / "out") if word == "OUT" else word for word in verb]
        result = CliRunner().invoke(app, ["--store", str(root), *verb])
        # StoreBusy is a UserError: one line naming the holder, exit 1 (m5data/errors.py)
        assert result.exit_code == 1 and f"in use by PID {holder.pid}" in result.output, result.output
        assert "Traceback" not in result.output
    finally:
        holder.communicate(b"\n", timeout=60)


_FILES_HOLDER = textwrap.dedent("""
    import sys
    from m5data.storage import Store
    store = Store.open(sys.argv[1], lease_seconds=float(sys.argv[2]))
    with store.stage_lock("align"):
        with store.staged("derived/align") as folder:
            (folder / "review.csv").write_text("stale")
            print("held", flush=True)
            sys.stdin.readline()  # the test SIGSTOPs us here, then SIGCONTs us and sends a line
    print("wrote", flush=True)
""")


def test_a_stage_paused_past_its_lease_on_s3_uploads_no_staged_file(s3_url, aws):
    """A staged folder (align's review.csv) is uploaded when its block ends: not by a run whose lease
    another run took over (its stale review file would replace the newer run's)."""
    pytest.importorskip("moto")
    Store.init(s3_url)
    proc = subprocess.Popen([sys.executable, "-c", _FILES_HOLDER, s3_url, "3.0"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"held", proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)  # its lease runs out while it is stopped
        other = Store.open(s3_url, lease_seconds=3.0)
        with other.stage_lock("align"), other.staged("derived/align") as folder:
            (folder / "review.csv").write_text("fresh")
        code, output = _resume(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code != 0 and "LeaseLost" in output and "wrote" not in output, output
    assert Store.open(s3_url).read_bytes("derived/align/review.csv") == b"fresh"


_FILE_HOLDER = textwrap.dedent("""
    import sys
    from m5data.storage import Store
    store = Store.open(sys.argv[1], lease_seconds=float(sys.argv[2]))
    with store.stage_lock("align"):
        kept = store.read_bytes("derived/align/tokens.parquet")
        store._check_fences()  # its fence's check passes here; the test stops it before the PUT that follows
        store._check_fences = lambda: None
        print("held", flush=True)
        sys.stdin.readline()
        store.write_bytes("derived/align/tokens.parquet", b"stale")
    print("wrote", flush=True)
""")


def test_a_file_put_after_its_lease_was_taken_over_between_check_and_put_is_refused_on_s3(s3_url, aws):
    """The window of a fenced file write: the check passed, then the run paused before its PUT. The PUT is
    conditional on the ETag the run read, so the taken-over run's file stays."""
    pytest.importorskip("moto")
    store = Store.init(s3_url)
    store.write_bytes("derived/align/tokens.parquet", b"kept")
    proc = _holder(s3_url, 3.0, _FILE_HOLDER)
    try:
        proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)  # its lease runs out while it is stopped
        other = Store.open(s3_url, lease_seconds=3.0)
        with other.stage_lock("align"):
            assert other.read_bytes("derived/align/tokens.parquet") == b"kept"
            other.write_bytes("derived/align/tokens.parquet", b"fresh")
        code, output = _resume(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code != 0 and "LeaseLost" in output and "changed since this run read it" in output, output
    assert "wrote" not in output.splitlines() and Store.open(s3_url).read_bytes("derived/align/tokens.parquet") == b"fresh"
