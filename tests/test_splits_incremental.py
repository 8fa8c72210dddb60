"""The pipeline's splits stage over ``storage/changes.py``: a run with nothing new does no global work
(the version stands, ``new 0, changed 0, unchanged N``), a grown store gets a new version, ``full``
builds again, a run that did not complete leaves the old state."""

import pytest
from support.splits_store import write_synthetic

from m5data import config as cfg
from m5data.splits import stage
from m5data.stages import RunContext
from m5data.storage import Store, changes


def _ctx(root, **options):
    settings = cfg.load(None, {"store.path": str(root), "splits.subset": "0.1", "splits.min_queries": 20}, environ={})
    return RunContext(settings).with_options(**options)


@pytest.fixture
def root(tmp_path):
    store = Store.init(tmp_path / "store")
    write_synthetic(store, 1500, n_categories=60)
    return store.root


def test_nothing_new_does_no_work_and_a_grown_store_gets_a_new_version(root):
    first = stage.run(_ctx(root))
    assert first.details["changes"] == {"new": 1500, "changed": 0, "unchanged": 0}
    store = Store.open(root)
    parts = store.parts("splits")
    again = stage.run(_ctx(root))
    assert again.details["unchanged"] and again.details["changes"] == {"new": 0, "changed": 0, "unchanged": 1500}
    assert again.details["version"] == first.details["version"] and again.details["splits"] == first.details["splits"]
    assert store.parts("splits") == parts  # nothing written but its runs row
    full = stage.run(_ctx(root, full=True))
    assert "unchanged" not in full.details and full.details["version"] == first.details["version"]
    write_synthetic(store, 100, start=1500, n_categories=60)
    grown = stage.run(_ctx(root))
    assert grown.details["changes"] == {"new": 100, "changed": 0, "unchanged": 1500}
    assert grown.details["version"] != first.details["version"]
    assert sum(grown.details["splits"].values()) > sum(first.details["splits"].values())


def test_a_run_that_fails_keeps_the_old_state(root, monkeypatch):
    stage.run(_ctx(root))
    before = changes.load_state(Store.open(root), "splits")
    write_synthetic(Store.open(root), 50, start=1500, n_categories=60)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(stage, "incremental_version", killed)  # after the watermarks, before the build
        with pytest.raises(KeyboardInterrupt):
            stage.run(_ctx(root))
    assert changes.load_state(Store.open(root), "splits") == before
    again = stage.run(_ctx(root))
    assert again.details["changes"]["new"] == 50 and "unchanged" not in again.details
