"""``m5data build-splits`` / ``check-splits``: tables, exit codes, one-line errors; the Prefect task."""

import json

import pytest
from support.splits_store import write_synthetic
from typer.testing import CliRunner

from m5data.cli import app
from m5data.splits.manifest import manifest_path
from m5data.storage import Store

runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    store = Store.init(tmp_path / "store")
    write_synthetic(store, 2000, n_categories=80)
    return store


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def test_build_then_check(store):
    result = m5(store, "--set", "splits.subset=0.2", "build-splits", "--version", "base", "--seed", "3")
    assert result.exit_code == 0, result.output
    for text in ("splits base", "query-c", "gallery-c", "cls-test", "subset", "no duplicate groups", "manifest:"):
        assert text in result.output
    manifest = json.loads(manifest_path(store, "base").read_text())
    assert manifest["seed"] == 3 and manifest["splits"]["train"]["products"] > 1000
    result = m5(store, "check-splits", "--version", "base")
    assert result.exit_code == 0, result.output
    assert "all invariants hold" in result.output


def test_check_exits_2_on_a_violation_and_1_on_an_unknown_version(store):
    assert m5(store, "build-splits").exit_code == 0
    path = manifest_path(store, "v1")
    manifest = json.loads(path.read_text())
    manifest["splits"]["query-c"]["checksum"] = "0" * 32
    path.write_text(json.dumps(manifest))
    result = m5(store, "check-splits")
    assert result.exit_code == 2 and "violated" in result.output and "query-c: checksum" in result.output
    result = m5(store, "check-splits", "--version", "v9")
    assert result.exit_code == 1 and "no split version 'v9'" in result.output


def test_bad_size_and_changed_settings_are_one_line_errors(store):
    result = m5(store, "--set", "splits.query_c=lots", "build-splits")
    assert result.exit_code == 1 and "splits.query_c" in result.output
    assert m5(store, "build-splits").exit_code == 0
    result = m5(store, "build-splits", "--seed", "9")
    assert result.exit_code == 1 and "--replace" in result.output
    result = m5(store, "build-splits", "--seed", "9", "--replace")
    assert result.exit_code == 0, result.output


def test_splits_task_returns_the_runs_row_and_split_sizes(store):
    from m5data.config import load
    from m5data.stages import RunContext, call

    # the stage's run (the pipeline flow runs it in its task under Prefect; its test harness starts a server)
    settings = load(None, {"store.path": str(store.root), "splits.query_c": "40"})
    stats = call("splits", RunContext(settings, options={"version": "flow", "seed": 1}))
    assert stats.stage == "splits" and stats.status == "ok" and stats.details["version"] == "flow"
    splits = stats.details["splits"]
    assert splits["query-c"] <= 40 and sum(splits.values()) == store.count("splits")


def test_a_corrupt_manifest_is_a_user_error_naming_it(store):
    from m5data.errors import UserError
    from m5data.splits.manifest import read_manifest

    assert m5(store, "build-splits").exit_code == 0
    path = manifest_path(store, "v1")
    path.write_text("{not json")
    with pytest.raises(UserError, match=f"corrupt split manifest {path}"):
        read_manifest(store, "v1")
    result = m5(store, "check-splits")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "corrupt split manifest" in result.output and "manifest.json" in result.output
