"""The stage contract's bookkeeping (``stages.StageRun``): lock, watermarks, the one fingerprint,
"nothing changed since the last complete run", the ``runs`` row and the state, on both stores."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from m5data import stages
from m5data.stages import StageRun, fingerprint
from m5data.storage import Store, StoreBusy
from m5data.storage.changes import load_state

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {"product_id": "p1", "platform": "a", "url": "http://a/p1", "title": "t"}


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path):
    if request.param == "folder":
        return Store.init(tmp_path / "store")
    pytest.importorskip("moto")
    return Store.init(request.getfixturevalue("s3_url"))


def _runs(store) -> list[dict]:
    return sorted(store.read("runs").to_pylist(), key=lambda r: r["started_at"])


def test_a_run_is_skipped_only_when_nothing_it_reads_changed_and_its_inputs_are_the_same(store):
    with StageRun(store, "report", reads=("products",), inputs=({"top": 5},)) as run:
        assert run.state is None and not run.unchanged()
        run.stats.n_out = 3
        run.complete({"out": "x"}, "ok", summary={"products": 1})
    state = load_state(store, "report")
    assert state["inputs"] == fingerprint({"top": 5}) and state["summary"] == {"products": 1}

    with StageRun(store, "report", reads=("products",), inputs=({"top": 5},)) as run:
        assert run.unchanged() and not run.unchanged(full=True)
        stats = run.skip(7, out="x")
    assert stats.details["unchanged"] and stats.details["changes"] == {"new": 0, "changed": 0, "unchanged": 7}
    rows = _runs(store)
    assert [r["stage"] for r in rows] == ["report", "report"] and rows[0]["n_out"] == 3
    assert '"unchanged": true' in rows[1]["config"]

    with StageRun(store, "report", reads=("products",), inputs=({"top": 6},)) as run:
        assert not run.unchanged()  # other inputs
    store.write("products", [PRODUCT])
    with StageRun(store, "report", reads=("products",), inputs=({"top": 5},)) as run:
        assert not run.unchanged()  # a table it reads was written since


def test_a_run_that_fails_keeps_the_previous_state_and_frees_its_lock(store):
    with StageRun(store, "splits", reads=("products",), inputs=(1,)) as run:
        run.complete({}, "ok")
    before = load_state(store, "splits")
    store.write("products", [PRODUCT])
    with pytest.raises(RuntimeError), StageRun(store, "splits", reads=("products",), inputs=(2,)):
        raise RuntimeError("killed half way")
    assert load_state(store, "splits") == before  # the next run does the work again
    with StageRun(store, "splits", reads=("products",), inputs=(2,)) as run:  # the lock was freed
        assert not run.unchanged()


def test_the_run_holds_the_stage_lock_and_nests_with_a_holder_of_it_in_the_same_process(store):
    url = str(store.root)
    holder = textwrap.dedent("""
        import sys
        from m5data.stages import StageRun
        from m5data.storage import Store
        with StageRun(Store.open(sys.argv[1]), "report"):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder, url], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"held", proc.stderr.read().decode()[-2000:]
        with pytest.raises(StoreBusy), StageRun(Store.open(url), "report"):
            pass
    finally:
        proc.communicate(b"\n", timeout=60)
    with store.stage_lock("report"), StageRun(store, "report") as run:  # re-entrant (stages.call holds it too)
        run.record({}, "ok")
    assert [r["stage"] for r in _runs(store)] == ["report"]


@pytest.mark.parametrize("job", ["m5data.annotate.dedup.job:dedup", "m5data.annotate.match_level.job:match_level",
                                 "m5data.annotate.pools.job:build_pools"])
def test_a_curation_job_called_directly_holds_its_stage_lock(tmp_path, job):
    """The curation jobs take their lock through their StageRun, so the Python API is refused as the
    verb and the flow are while another run of the stage lives."""
    from m5data import config

    store = Store.init(tmp_path / "store")
    name = job.split(".")[2]
    holder = textwrap.dedent("""
        import sys
        from m5data.storage import Store
        with Store.open(sys.argv[1]).stage_lock(sys.argv[2]):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder, str(store.root), name],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"held", proc.stderr.read().decode()[-2000:]
        with pytest.raises(StoreBusy, match=name):
            stages.load(job)(store, config.load(None, {"store.path": str(store.root)}, environ={}))
    finally:
        proc.communicate(b"\n", timeout=60)


@dataclasses.dataclass
class _Section:
    top: int = 5
    name: str = "x"


def test_one_fingerprint_of_settings_options_and_files(tmp_path):
    assert fingerprint(_Section()) == fingerprint(dataclasses.asdict(_Section())) != fingerprint(_Section(top=6))
    # the value storage's own fingerprint (which this one replaced) gave: the states stages saved before stay valid
    assert fingerprint({"a": 1}, "v", None, True) == "92f490dfc3d1bde0fd8a50ab280e0a49"
    f = tmp_path / "mapping.csv"
    f.write_text("one")
    first = fingerprint(f"file:{f}")
    f.write_text("two")
    assert fingerprint(f"file:{f}") != first and fingerprint(f) == fingerprint(f"file:{f}")


def test_the_run_keeps_what_its_inputs_gave_and_an_object_says_what_of_it_is_fingerprinted(store):
    """A stage's inputs may give an object the run hands back (``run.given``: dedup's chosen matcher, read
    once a run); its ``fingerprint_part`` is what counts, not its identity or other fields."""

    class Choice:
        def __init__(self, version, loaded):
            self.version, self.loaded = version, loaded

        def fingerprint_part(self):
            return self.version

    first, same, other = Choice("v1", object()), Choice("v1", object()), Choice("v2", object())
    assert fingerprint({"a": 1}, first) == fingerprint({"a": 1}, same) != fingerprint({"a": 1}, other)
    with StageRun(store, "dedup", reads=("products",), inputs=lambda: ({"a": 1}, first)) as run:
        assert run.given[1] is first and run.inputs == fingerprint({"a": 1}, same)


def test_the_runs_rows_and_states_are_written_by_the_contract_only():
    """No stage writes its runs row or its state itself: record_run and save_state are called by
    StageRun only (m5data/stage_run.py, the contract's bookkeeping; storage defines them, in runs.py and
    stage_state.py; the doctor's row is written by its verb, tools/doctor_cli.run_doctor)."""
    package = ROOT / "m5data"
    offenders = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        if rel in ("stages.py", "stage_run.py", "storage/runs.py", "storage/stage_state.py"):
            continue
        text = path.read_text()
        if "record_run(" in text or "save_state(" in text:
            offenders.append(rel)
    assert offenders == []
    assert {s.name for s in stages.REGISTRY} >= {"crawl", "download", "extract", "align", "dedup", "crowd", "matcher",
                                                 "splits", "export", "report"}
