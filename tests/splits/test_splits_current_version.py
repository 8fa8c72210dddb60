"""One definition of the current split version (``splits.versions.current_version``): the newest by the
number its name ends with, whatever the order the versions were written in. Export (its CLI and the
flow's route), the report and the splits stage agree on it, and an export folder of one version
refuses another."""

import json

import pytest
from support.splits_store import write_synthetic
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.splits.versions import current, current_version
from m5data.storage import Store

runner = CliRunner()


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


@pytest.fixture
def store(tmp_path):
    """v1 and v2 built, then v1 built again: v1's rows are the ones written last, v2 the newest version."""
    store = Store.init(tmp_path / "store")
    write_synthetic(store, 400, n_categories=30)
    for args in (["--version", "v1"], ["--version", "v2", "--seed", "1"], ["--version", "v1"]):
        result = m5(store, "build-splits", *args)
        assert result.exit_code == 0, result.output
    return store


def _rows(version: str, n: int) -> list[dict]:
    return [{"version": version, "split": "train", "product_id": f"a:{i}"} for i in range(n)]


def test_current_is_the_highest_number_not_the_last_written_nor_the_larger_name():
    assert current([]) is None
    assert current(["v1", "v2"]) == current(["v2", "v1"]) == "v2"
    assert current(["v9", "v10", "v2"]) == "v10"  # numerically: "v9" > "v10" as strings
    assert current(["imported", "v1"]) == "v1"  # a name without a number comes before v1
    assert current(["v1", "../v9", "x" * 65 + "9"]) == "v1"  # never a name that cannot be a folder name
    assert current(["../v9"]) is None


@pytest.mark.parametrize("steps", [["v1", "v2"], ["v2", "v1"], ["v1", "v10", "v9", "v1"], [("v3", "v1"), "v2"]])
def test_footers_and_the_query_name_the_same_current_version(tmp_path, steps):
    store = Store.open(tmp_path / "s", create=True)
    assert current_version(store) is None
    for step in steps:
        store.write("splits", [r for v in (step if isinstance(step, tuple) else (step,)) for r in _rows(v, 3)])
    expected = current({v for s in steps for v in (s if isinstance(s, tuple) else (s,))})
    con = store.connect(only=("splits",))
    try:  # with a connection the view is not needed; the footers answer first where they can
        assert current_version(store) == current_version(store, con) == expected
    finally:
        con.close()
    store.compact("splits")  # row groups of several versions: the footers do not say, the query does
    assert current_version(store) == expected


def test_export_report_flow_and_splits_agree_on_the_current_version(store, tmp_path):
    from m5data.report.build import build as report
    from m5data.splits.stage import incremental_version
    from m5data.stages import RunContext, call

    assert current_version(store) == "v2"
    result = m5(store, "export", "--out", str(tmp_path / "cli"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / "_export.json").read_text())["version"] == "v2"
    assert "export of version v2" in " ".join(result.output.split())
    settings = load(None, {"store.path": str(store.root)}, environ={})
    flow = call("export", RunContext(settings, options={}))  # the flow's route: no version, the default folder
    assert flow.details["version"] == "v2" and flow.details["out"].endswith("exports/v2-webdataset-all")
    page = report(store, load(None, {"store.path": str(store.root)}, environ={}), out=tmp_path / "report")
    assert "<code>v2</code>" in page.index.read_text(encoding="utf-8")
    assert incremental_version(store, "v1") == "v2"  # the pipeline's splits: v2 stands (nothing changed since)


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_exporting_another_version_into_a_folder_of_one_is_refused(store, tmp_path, fmt):
    out = tmp_path / "out"
    result = m5(store, "export", "--format", fmt, "--version", "v2", "--out", str(out))
    assert result.exit_code == 0, result.output
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    for _ in range(2):  # nothing written since the export (its "nothing changed" path), then a table written
        result = m5(store, "export", "--format", fmt, "--version", "v1", "--out", str(out))
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())
        assert "'v1'" in text and "'v2'" in text and out.name in text, text
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before
        store.write("products", [{"product_id": "syn:new", "platform": "syn", "title": "new"}])
    result = m5(store, "export", "--format", fmt, "--version", "v2", "--out", str(out))  # its own version resumes
    assert result.exit_code == 0, result.output


def test_the_pipeline_builds_after_a_version_built_by_hand_so_its_version_becomes_current(tmp_path):
    from m5data.stages import RunContext, call

    store = Store.init(tmp_path / "store")
    write_synthetic(store, 400, n_categories=30)

    def pipeline():
        return call("splits", RunContext(load(None, {"store.path": str(store.root)}, environ={}), options={})).details["version"]

    assert pipeline() == "v1"
    assert m5(store, "build-splits", "--version", "v5", "--seed", "2").exit_code == 0
    write_synthetic(store, 40, start=400, n_categories=30)
    assert pipeline() == "v6" == current_version(store)  # after v5, not v2 (carried from v1 all the same)


def test_the_current_version_on_object_storage(s3_url, aws):
    """On an S3 store (no local footers: the table's view answers) the flow's export takes the same version."""
    pytest.importorskip("moto")
    from m5data.export.stage import default_out

    store = Store.init(s3_url)
    assert current_version(store) is None
    for version in ("v2", "v10", "v9", "../v99"):
        store.write("splits", _rows(version, 3))
    assert current_version(store) == "v10"
    assert default_out(store, "all", "webdataset", None) == ("v10", f"{s3_url}/exports/v10-webdataset-all")


def test_exporting_another_version_into_a_prefix_of_one_is_refused(store, s3_url, aws):
    pytest.importorskip("moto")
    from support.s3_server import keys

    def objects() -> dict:
        client = aws["client"]
        prefix = s3_url[len(f"s3://{aws['bucket']}/"):]
        return {k: client.get_object(Bucket=aws["bucket"], Key=k)["Body"].read() for k in keys(aws, prefix)}

    result = m5(store, "export", "--version", "v2", "--out", s3_url, "--workers", "1")
    assert result.exit_code == 0, result.output
    before = objects()
    result = m5(store, "export", "--version", "v1", "--out", s3_url, "--workers", "1")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"{s3_url} holds an export of split version 'v2', not 'v1'" in text, text
    assert objects() == before
