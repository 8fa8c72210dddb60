"""Shared test setup: caches in the workspace, no telemetry, paths to ../shared/realdata."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_CACHE = ROOT / ".cache"
# Set before any stage imports librosa/numba, jieba or prefect (ENVIRONMENT.md: start-up costs).
os.environ.setdefault("NUMBA_CACHE_DIR", str(_CACHE / "numba"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_HOME", str(_CACHE / "prefect"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

SHARED = ROOT.parent / "shared"
REALDATA = SHARED / "realdata"


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


try:  # the demo shop's fixtures (demo_shop, ...), once that package exists
    from m5data.demo.fixtures import *  # noqa: F401,F403
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("m5data.demo"):
        raise


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (temporary database, ephemeral API) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
