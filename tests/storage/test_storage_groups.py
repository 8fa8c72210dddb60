"""A stage's table rewrites land all or none (issue 55, item 1): ``store.replace_tables``, on both stores.

align rewrites taxonomy and label_map, the crowd's aggregation matches and workers. A writer killed
(SIGKILL) between the two tables' commits, or stopped there past its lease while another run takes
over, must never leave one table from one run and the other from another. The crash point is chosen
by the child process itself: it wraps the store method that commits a table (folder: ``_swap_parts``,
called once per table as a committed group is applied; object storage: ``_commit``, once per table)
and kills or stops itself after the first table's commit. Everything else is the real store: real
files, or moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from m5data.storage import Store
from m5data.storage.commitlog import TableLog
from m5data.storage.doctor import run

ROOT = Path(__file__).resolve().parents[2]

OLD = ({"level": 1, "label_id": 1, "name": "old"}, {"platform": "a", "raw_path": "x", "class_id": 1})
NEW = ({"level": 1, "label_id": 2, "name": "new"}, {"platform": "a", "raw_path": "x", "class_id": 2})
FRESH = ({"level": 1, "label_id": 3, "name": "fresh"}, {"platform": "a", "raw_path": "x", "class_id": 3})

# The child: opens the store, arranges to kill (or stop) itself right after the first table of the
# group is committed, then rewrites both tables with NEW. argv: root, mode (kill|stop), lease seconds.
_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import m5data.storage.groups as groups
    from m5data.storage import Store
    root, mode, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = Store.open(root, lease_seconds=lease)
    on_s3 = root.startswith("s3://")
    # where a table's commit happens: object storage, _commit (once per table); folder, _swap_parts (once
    # per table as a committed group is applied), and groups.fsync_dir (first: the group's folder, just
    # before the rename that commits it)
    owner, name = (type(store), "_commit") if on_s3 else (
        (groups, "fsync_dir") if mode == "kill-before" else (type(store), "_swap_parts"))
    original = getattr(owner, name)
    calls = []

    def crash(*args, **kwargs):
        if mode == "kill-before":
            os.kill(os.getpid(), signal.SIGKILL)  # killed before the group's commit
        if calls and mode == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)  # stopped before the second table's commit
        out = original(*args, **kwargs)
        calls.append(1)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # killed after the first table's commit
        return out

    setattr(owner, name, crash if owner is groups else lambda self, *a, **k: crash(self, *a, **k))
    taxonomy, label_map = json.loads(sys.argv[4])
    with store.stage_lock("align"):
        print("held", flush=True)
        store.replace_tables({"taxonomy": [taxonomy], "label_map": [label_map]})
    print("wrote", flush=True)
""")


def _child(root: str, mode: str, lease: float = 600.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, root, mode, str(lease), json.dumps(NEW)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _rows(store) -> tuple[list, list]:
    return ([r["name"] for r in store.read("taxonomy").to_pylist()],
            [r["class_id"] for r in store.read("label_map").to_pylist()])


def _seed(root: str) -> None:
    store = Store.init(root)
    store.replace_tables({"taxonomy": [OLD[0]], "label_map": [OLD[1]]})
    assert _rows(store) == (["old"], [1])


@pytest.fixture(params=["folder", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "folder":
        return str(tmp_path / "store")
    pytest.importorskip("moto")
    return request.getfixturevalue("s3_url")


def test_replace_tables_rewrites_every_table_and_leaves_nothing_behind(root):
    _seed(root)
    store = Store.open(root)
    assert store.replace_tables({"taxonomy": [NEW[0], FRESH[0]], "label_map": [NEW[1]]}) == {"taxonomy": 2,
                                                                                           "label_map": 1}
    assert _rows(Store.open(root)) == (["new", "fresh"], [2])
    if root.startswith("s3://"):
        assert store.uncommitted() == []  # the old parts went, the new are committed
    else:
        assert store.unfinished_groups() == [] and len(store.parts("taxonomy")) == 1


def test_a_writer_killed_between_the_two_tables_leaves_no_mix(root):
    _seed(root)
    proc = _child(root, "kill")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    if root.startswith("s3://"):
        # on the store itself: label_map (the group's first table) committed, taxonomy's entry not written
        store = Store.open(root)
        raw = TableLog(store.objects, "taxonomy").state()
        assert raw.lease and raw.lease.get("group") == "label_map"
        assert store.log("label_map").state().group is not None
        assert _rows(store) == (["new"], [2])  # a reader folds the committed group in
        found = [f for f in run(store).findings if f.check == "group"]
        assert [f.path.rsplit("/", 3)[-3] for f in found] == ["taxonomy"]
        # taxonomy's pending part is not garbage (label_map's old part, removed by its entry, is: the
        # writer was killed before deleting it)
        assert [rel.split("/")[1] for rel, _ in store.uncommitted()] == ["label_map"]
    else:
        groups = list((Path(root) / "groups").iterdir())
        assert len(groups) == 1 and list((groups[0] / "taxonomy").glob("part-*.parquet"))  # half applied
    # the next opener finishes it (folder); a doctor --repair commits it (object storage)
    store = Store.open(root)
    if root.startswith("s3://"):
        report = run(store, repair=True)
        assert [f.repaired for f in report.findings if f.check == "group"] == [True]
        state = TableLog(store.objects, "taxonomy").state()
        assert state.lease is None and len(state.parts) == 1
    else:
        assert store.unfinished_groups() == []
    assert _rows(Store.open(root)) == (["new"], [2])


def test_a_writer_killed_before_the_commit_changes_nothing(root):
    """Killed with the new parts written (uploaded) but before the group's commit: the old tables stay."""
    _seed(root)
    proc = _child(root, "kill-before")
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    store = Store.open(root)
    assert _rows(store) == (["old"], [1])
    if not root.startswith("s3://"):
        assert store.unfinished_groups() == []  # the uncommitted group's folder is a dead run's temp


def test_a_writer_stopped_between_the_tables_past_its_lease_on_s3_leaves_the_next_runs_result(s3_url, aws):
    pytest.importorskip("moto")
    _seed(s3_url)
    proc = _child(s3_url, "stop", lease=3.0)
    try:
        assert proc.stdout.readline().strip() == b"held"
        deadline = time.monotonic() + 60
        while Path(f"/proc/{proc.pid}/stat").read_text().split(")")[1].split()[0] != "T":
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        assert _rows(Store.open(s3_url)) == (["new"], [2])  # the stopped run's group is committed: seen whole
        time.sleep(3.5)  # its leases run out while it is stopped
        other = Store.open(s3_url, lease_seconds=3.0)
        with other.stage_lock("align"):  # the next run takes over and writes its result
            other.replace_tables({"taxonomy": [FRESH[0]], "label_map": [FRESH[1]]})
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and b"wrote" not in out and b"LeaseLost" in err, err.decode()[-2000:]
    store = Store.open(s3_url)
    assert _rows(store) == (["fresh"], [3])
    assert store.uncommitted() == []  # the stopped run's uploads were committed then replaced: none left over
