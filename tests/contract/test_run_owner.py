"""The contract owns every stage's run (issue 77, 1): the registry declares what a stage reads and keeps,
``stages.call`` opens the run (its one lock, its watermarks, its state, its fingerprint) and writes its
``runs`` row. Grep-level over m5data/ (an AST walk: a string or a comment naming StageRun is no call),
and the contract's behaviour on a registered stage."""

import ast
import subprocess
import sys
from pathlib import Path

from m5data import stages
from m5data.config import load
from m5data.stages import RunContext
from m5data.storage import Store

PACKAGE = Path(__file__).resolve().parents[2] / "m5data"


def _calls(name: str) -> set[str]:
    """The modules of m5data/ that call ``name(...)`` or ``x.name(...)``."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if called == name:
                    found.add(path.relative_to(PACKAGE).as_posix())
    return found


def test_a_stage_run_is_built_only_by_the_contract():
    assert _calls("StageRun") == {"stage_run.py"}


def test_no_stage_package_takes_a_lock_of_its_own():
    # the stage packages: where the registry's run targets live (a tool such as compact takes its own lock)
    packages = {s.run.split(":")[0].removeprefix("m5data.").rsplit(".", 1)[0].replace(".", "/") + "/"
                for s in stages.REGISTRY}
    assert {m for m in _calls("stage_lock") if m.startswith(tuple(packages))} == set()


TAKE_LOCK = """
import sys
from m5data.storage import Store
from m5data.storage.errors import StoreBusy
try:
    with Store.open(sys.argv[1]).stage_lock("splits"):
        pass
except StoreBusy:
    sys.exit(3)
"""


def _context(tmp_path, **options) -> RunContext:
    root = tmp_path / "store"
    Store.init(root)
    return RunContext(load(None, {"store.path": str(root)}, environ={}), options=options)


def test_the_contract_holds_the_lock_decides_incremental_and_writes_the_row(tmp_path, monkeypatch):
    """A registered stage's run gets the run the contract opened: the lock held (a second run of the stage
    is refused while it works), ``since`` None with the reason on a first run, the watermarks of the last
    complete run (the same inputs) on the next, a full run when asked; one ``runs`` row per run."""
    seen = []

    def work(ctx, run):
        # the contract holds the stage's lock while the stage works: another process is refused it
        other = subprocess.run([sys.executable, "-c", TAKE_LOCK, str(ctx.settings.store_path)], capture_output=True,
                               text=True)
        assert other.returncode == 3, other.stderr
        seen.append((run.since, run.why_full))
        return run.complete({"seen": len(seen)})

    entry = stages.get("splits")
    monkeypatch.setattr(entry.__class__, "load", lambda self: work)
    ctx = _context(tmp_path)
    stages.call("splits", ctx)
    stages.call("splits", ctx)
    stages.call("splits", ctx.with_options(full=True))
    stages.call("splits", ctx.with_options(seed=7))  # a seed is one of splits' inputs: another fingerprint
    assert [why for _, why in seen] == ["no earlier complete run", None, "full run asked", "settings changed"]
    assert seen[0][0] is None and seen[1][0] is not None and set(seen[1][0]) == set(stages.load(entry.reads))
    rows = Store.open(ctx.settings.store_path).read("runs", where="stage = 'splits'").to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * 4


def test_a_run_that_returns_without_its_row_gets_one_from_the_contract(tmp_path, monkeypatch):
    def work(ctx, run):
        run.stats.n_in = run.stats.n_out = 3
        return run.stats

    monkeypatch.setattr(stages.get("splits").__class__, "load", lambda self: work)
    ctx = _context(tmp_path)
    stages.call("splits", ctx)
    rows = Store.open(ctx.settings.store_path).read("runs", where="stage = 'splits'").to_pylist()
    assert [(r["status"], r["n_in"]) for r in rows] == [("ok", 3)] and rows[0]["ended_at"] is not None
