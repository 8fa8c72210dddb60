"""Shared test setup: caches in the workspace, no telemetry, paths to ../shared/realdata, and the fixtures
the tests of several packages use (a folder's own are in its conftest.py: tests/<package>/ mirrors m5data/<package>/)."""

import contextlib
import os
import shutil
import unittest.mock
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_CACHE = ROOT / ".cache"
# Set before any stage imports librosa/numba or prefect: numba's first compile of librosa costs about
# 17 s, paid once when its cache persists; Prefect otherwise writes its database under ~/.prefect.
os.environ.setdefault("NUMBA_CACHE_DIR", str(_CACHE / "numba"))
# A cache folder per pytest-xdist worker (and the subprocesses its tests start): numba's cache is not
# safe to write from two processes compiling the same function at once (numba issues 4807, 10128: an
# index naming another overload's code), which crashed two match-level tests of a fresh clone's suite
# with a segmentation fault in caption_hashing._hash_batch, both workers compiling it.
# Each worker's folder starts as a copy of what `make setup` compiled (`python -m m5data.warm`, about
# 50 CPU-s of kernels): without it every worker compiled them all again. A copy, not a link: no two
# processes ever write one index.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _shared = Path(os.environ["NUMBA_CACHE_DIR"])
    _own = _shared / os.environ["PYTEST_XDIST_WORKER"]
    if not _own.exists() and _shared.is_dir():
        _tmp = _own.with_name(f".{_own.name}.tmp-{os.getpid()}")
        shutil.copytree(_shared, _tmp, ignore=lambda folder, names: [
            n for n in names if Path(folder) == _shared and (n.startswith(("gw", ".")))])
        _tmp.rename(_own)  # a worker that dies mid-copy leaves only a temp folder behind
    os.environ["NUMBA_CACHE_DIR"] = str(_own)
# `make setup` compiled the kernels: no `m5data run` / `demo` of a test starts m5data.warm beside itself
os.environ.setdefault("M5DATA_WARM", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_HOME", str(_CACHE / "prefect"))
# One thread per OpenMP / BLAS / numba pool, here and in every subprocess a test starts: the suite
# runs two pytest-xdist workers on two cores, and a pool of two threads spins at its barriers while
# the other worker holds the core. Measured on the synthetic training test beside another worker:
# 167 CPU-s and 348 s wall with two threads, 49 CPU-s and 113 s with one.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

SHARED = ROOT.parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(autouse=True)
def consoles_left_as_found():
    """A test leaves m5data's consoles writing to the current standard streams. One pinned to a stream
    (a property's setattr undone by monkeypatch pins it to the captured stream that pytest then closes)
    fails every later console print of the worker with "I/O operation on closed file": this fails the test
    that pinned it instead, and unpins it."""
    yield
    from m5data.console import console, err_console

    pinned = [c for c in (console, err_console) if c._file is not None]
    for c in pinned:
        c._file = None
    assert not pinned, "a console was left writing to a fixed stream; patch its _file, not its file property"


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} not present (shared/ must sit beside the checkout)")
    return REALDATA


@pytest.fixture
def store(tmp_path):
    """A fresh, empty store."""
    from m5data.storage import Store

    return Store.init(tmp_path / "store")


@pytest.fixture
def stage_locks_taken(monkeypatch) -> list[str]:
    """The names of the stage locks taken in the test (``Store.stage_lock``, in order), each lock still taken."""
    from m5data.storage import Store

    taken = []
    real = Store.stage_lock

    def stage_lock(self, name, *args, **kwargs):
        taken.append(name)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(Store, "stage_lock", stage_lock)
    return taken


from support.demo_fixtures import *  # noqa: E402,F401,F403  (the demo shop's fixtures: demo_shop, ...)
from support.s3_server import aws, s3, s3_url  # noqa: E402,F401  (a moto S3 server per module that asks for one)


@pytest.fixture(scope="session")
def prefect_harness(request, tmp_path_factory):
    """One Prefect API server (temporary database) per test worker for the whole session: the flows
    run in this process, and in every subprocess a test starts after it (``PREFECT_API_URL`` is put in
    the environment), report to it. Without an API each ``m5data run`` subprocess starts Prefect's
    temporary server of its own: about 20 CPU-seconds each, the larger part of a small run's cost.

    Its database starts as a copy of one already migrated (:func:`_migrated_prefect_database`)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("m5data-prefect")) if cache is not None else tmp_path_factory.mktemp("prefect")
    with _migrated_prefect_database(root, lambda: prefect_test_harness(server_startup_timeout=300)):
        before = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before


@contextlib.contextmanager
def _migrated_prefect_database(root: Path, start):
    """Enter ``start()`` (Prefect's test harness) with its new SQLite database a copy of one already
    migrated, kept in ``root`` per Prefect version; the first worker that finds none makes it from its own
    server's database, the others wait for it. Migrating a new database was about 7 of the 13-15 CPU-s
    of a harness server's start, paid by every worker (2026-11-29)."""
    import fcntl
    import sqlite3
    import tempfile

    import prefect
    import prefect.testing.utilities as harness

    template = root / f"migrated-{prefect.__version__}.db"
    made: list[str] = []

    def seeded_mkdtemp():  # where the harness puts its database (prefect-test.db)
        folder = tempfile.mkdtemp()
        made.append(folder)
        if template.is_file():
            shutil.copyfile(template, Path(folder) / "prefect-test.db")
        return folder

    with contextlib.ExitStack() as stack:
        with open(root / f"{template.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released once this worker's server is up
            with unittest.mock.patch.object(harness, "mkdtemp", seeded_mkdtemp):
                stack.enter_context(start())
            if not template.is_file() and made:
                tmp = template.with_name(f".{template.name}.tmp-{os.getpid()}")
                with contextlib.closing(sqlite3.connect(Path(made[0]) / "prefect-test.db")) as live, \
                        contextlib.closing(sqlite3.connect(tmp)) as copy:
                    live.backup(copy)  # a consistent copy of a database in use
                tmp.rename(template)
        yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` (make test): pytest-xdist 3.8 groups tests by an ``@group`` suffix it writes
    into ``item._nodeid``, which pytest 9.2 no longer reads (a node id is ``str(item._id)``), so the
    ``xdist_group`` marks were ignored and both workers built the 300-product store. Write the suffix
    where pytest reads it; a node id that has one (older pytest: xdist wrote it) is left alone."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest before 9.2: xdist's own hook did it
        return
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None or not hasattr(item, "_id") or "@" in item.nodeid:
            continue
        name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        item._id = NodeId.parse(f"{item.nodeid}@{name}")
