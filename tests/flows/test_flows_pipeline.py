"""The pipeline flow's machinery: parameter checks, retries of transient failures only, fatal stages, artifacts."""

import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.flows.pipeline import PipelineError, check_plan, parse_stages


def _settings(tmp_path, **overrides):
    return load(None, {"store.path": str(tmp_path / "store"), **overrides}, environ={}, cwd=tmp_path)


def test_check_plan_rejects_bad_parameters_before_any_work(tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[classes]\n1 = "c"\n\n[platforms.shopa]\n"a" = 1\n')
    s = _settings(tmp_path)
    assert parse_stages("export, crawl") == ["crawl", "export"]  # always pipeline order
    with pytest.raises(PipelineError, match="unknown stage.*bogus"):
        check_plan(s, ["http://127.0.0.1:9/"], stages="crawl,bogus")
    with pytest.raises(PipelineError, match="start-url"):
        check_plan(s, stages="crawl,download")
    with pytest.raises(PipelineError, match="--mapping"):
        check_plan(s, ["http://127.0.0.1:9/"], stages="crawl,align")
    with pytest.raises(PipelineError, match="no store"):
        check_plan(s, stages="download")
    with pytest.raises(PipelineError, match="unknown runner"):
        check_plan(_settings(tmp_path, **{"flows.runner": "spark"}), ["http://127.0.0.1:9/"], stages="crawl")
    with pytest.raises(PipelineError, match="flows.scheduler_timeout must be > 0"):
        check_plan(_settings(tmp_path, **{"flows.scheduler_timeout": 0}), ["http://127.0.0.1:9/"], stages="crawl")
    plan = check_plan(_settings(tmp_path, **{"align.mapping": str(mapping)}), ["http://127.0.0.1:9/"], stages="crawl,align")
    assert plan.stages == ["crawl", "align"] and plan.shards == 1
    dask = check_plan(_settings(tmp_path, **{"flows.runner": "dask", "flows.start_urls": "http://a.example/"}),
                      stages="crawl")
    assert dask.shards == 2 and dask.start_urls == ["http://a.example/"]  # one shard per LocalCluster worker


def test_ray_runner_fails_clearly_when_ray_is_missing(tmp_path):
    import importlib.util

    if importlib.util.find_spec("prefect_ray") and importlib.util.find_spec("ray"):
        pytest.skip("prefect-ray is installed here")
    with pytest.raises(PipelineError, match="pip install prefect-ray"):
        check_plan(_settings(tmp_path, **{"flows.runner": "ray"}), ["http://127.0.0.1:9/"], stages="crawl")


def test_run_verb_gives_one_line_errors(tmp_path):
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "s"), "run", "--stages", "crawl,bogus",
                                      "--start-url", "http://127.0.0.1:9/"])
    assert result.exit_code == 1
    assert "unknown stage(s) bogus" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "s"), "run", "--stages", "crawl"])
    assert result.exit_code == 1 and "give at least one --start-url" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_transient_crawl_failure_is_retried_and_the_run_reports_it(demo_shop_dir, prefect_harness, tmp_path):
    """The shop is down for the first crawl attempt and up for Prefect's retry."""
    from m5data.demo.server import serve_in_thread
    from m5data.flows.pipeline import ARTIFACT_KEY, pipeline_flow
    from m5data.storage import Store

    port = _free_port()
    store_path = tmp_path / "store"
    served = []

    def bring_the_shop_up():  # once the first attempt recorded its failure
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                failed = Store.open(store_path).read("runs", where="stage = 'crawl' AND status = 'failed'").num_rows
            except Exception:
                failed = 0
            if failed:
                served.append(serve_in_thread(demo_shop_dir, port=port, slow_seconds=0.0))
                return
            time.sleep(0.5)

    waiter = threading.Thread(target=bring_the_shop_up, daemon=True)
    waiter.start()
    try:
        runs = pipeline_flow(str(store_path), [f"http://127.0.0.1:{port}/"], stages=["crawl"],
                             overrides={"flows.retry_delay": 5, "crawl.max_pages": 60, "crawl.allow_private": True})
    finally:
        waiter.join(timeout=1)
        for shop in served:
            shop.stop()
    assert served, "the first crawl attempt never recorded its failure"
    assert runs["crawl"]["status"] == "ok" and runs["crawl"]["n_out"] > 0
    statuses = [r["status"] for r in Store.open(store_path).read("runs").sort_by("started_at").to_pylist()]
    assert statuses == ["failed", "ok"]

    import asyncio

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])))

    assert any("| crawl | ok |" in a.data and str(store_path) in a.data for a in asyncio.run(artifacts()))


def test_a_fatal_stage_fails_the_run_with_exit_1_and_skips_the_rest(store, prefect_harness, tmp_path, monkeypatch):
    # a setting dedup rejects when it runs: its plan check passed over (as a deployment's parameters
    # changed since are), its job's own check is fatal (tests/contract/test_stage_checks.py: refused before any work)
    monkeypatch.setattr("m5data.annotate.dedup.stage.check", lambda settings, options: None)
    result = CliRunner().invoke(app, ["--store", str(store.root), "--set", "dedup.matcher=bogus", "run",
                                      "--stages", "annotate,splits", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "Failed" in result.output and "fatal" in result.output and "not run" in result.output
    # dedup is not retried: one failed attempt, recorded once
    assert store.read("runs", where="stage = 'dedup'").num_rows <= 1


def test_run_loads_the_settings_once_and_hands_them_to_the_flow(store, prefect_harness, tmp_path, monkeypatch):
    """``m5data run`` builds the settings once (flags, config file) and its flow and stages use that
    object: the config is not loaded again in the flow."""
    import m5data.config as cfg

    calls = []
    real = cfg.load

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cfg, "load", counting)
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["--store", str(store.root), "--set", f"report.out={report}", "run",
                                      "--stages", "report", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (report / "index.html").is_file()  # the flow's report stage read report.out from that object
    assert len(calls) == 1, calls


def test_run_runs_one_curation_stage_by_its_name(store, prefect_harness):
    """``--stages dedup``: the dedup stage alone, one task named after it, its runs row under its name."""
    store.write("products", [{"product_id": f"a:{i}", "platform": "a", "title": "same title"} for i in (1, 2)])
    result = CliRunner().invoke(app, ["--store", str(store.root), "run", "--stages", "dedup", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "dedup" in result.output and "match_level" not in result.output
    assert store.read("runs", columns=["stage"]).column("stage").to_pylist() == ["dedup"]
    assert store.count("dedup") == 2


def test_run_warns_of_an_old_key_and_its_stage_reads_the_new_one(tmp_path):
    """``--set flows.mapping=...`` sets align.mapping with a warning, and the align check reads that key."""
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "s"), "--set", f"flows.mapping={tmp_path / 'm.toml'}",
                                      "run", "--stages", "align"])
    assert result.exit_code == 1
    assert "flows.mapping is now align.mapping" in result.output, result.output
    assert f"mapping file not found: {tmp_path / 'm.toml'}" in " ".join(result.output.split()), result.output


def _error(output: str) -> str:
    """The one-line error of a CLI run, its words joined (a long line may wrap)."""
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return " ".join(output[output.index(lines[0]):].split()).removeprefix("error: ")


@pytest.mark.parametrize("stage, flags, verb", [
    ("align", [], ["align"]),  # no mapping at all
    ("align", ["--mapping", "{tmp}/missing.toml"], ["align", "--mapping", "{tmp}/missing.toml"]),
    ("align", ["--mapping", "{tmp}/bad.toml"], ["align", "--mapping", "{tmp}/bad.toml"]),  # no [classes]
    ("extract", ["--kinds", "smell"], ["extract", "--kinds", "smell"]),
    ("crawl", ["--start-url", "ftp://a.example/"], ["crawl", "--start-url", "ftp://a.example/"]),
])
def test_the_flow_and_the_verb_give_the_stage_checks_one_message(tmp_path, stage, flags, verb):
    """Each stage checks its own options (its ``Stage.check``): ``m5data run`` and the stage's verb say the
    same, the flow naming the stage first."""
    from m5data.storage import Store

    Store.init(tmp_path / "store")
    (tmp_path / "bad.toml").write_text("[other]\nx = 1\n")
    args = lambda a: [x.format(tmp=tmp_path) for x in a]  # noqa: E731
    base = ["--store", str(tmp_path / "store")]
    flow = CliRunner().invoke(app, [*base, "run", "--stages", stage, *args(flags)], env={"COLUMNS": "300"})
    alone = CliRunner().invoke(app, [*base, *args(verb)], env={"COLUMNS": "300"})
    assert flow.exit_code == 1 and alone.exit_code in (1, 2), (flow.output, alone.output)
    assert _error(flow.output) == f"{stage}: {_error(alone.output)}"


def test_the_plan_check_names_no_stage():
    """The flow knows only the registry: check_plan calls each selected stage's check, naming none itself."""
    import ast
    import inspect

    from m5data import stages
    from m5data.flows import pipeline

    tree = ast.parse(inspect.getsource(pipeline.check_plan))
    body = tree.body[0].body[1:]  # its docstring aside
    words = {w for node in body for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             for w in n.value.replace("-", " ").replace(":", " ").split()}
    assert not words & set(stages.STAGES), words & set(stages.STAGES)
    assert all(s.check for s in stages.REGISTRY)  # every stage's, before the first stage starts (issue 77)


def test_a_deployment_from_before_passes_mapping_and_kinds_and_they_set_the_stage_keys(store, prefect_harness):
    """The flow's former ``mapping`` / ``kinds`` parameters (stored in older deployments) set align.mapping
    and extract.kinds for one release: the extract stage reads extract.kinds."""
    import json

    from m5data.flows.pipeline import pipeline_flow

    assert "kinds" not in check_plan(load(None, {"store.path": str(store.root)}, environ={}), stages="extract").parameters()
    results = pipeline_flow(str(store.root), stages=["extract"], kinds="text", mapping="m.toml")
    assert results["extract"]["status"] == "ok", results
    config = json.loads(store.read("runs", where="stage = 'extract'").to_pylist()[-1]["config"])
    assert (config["extract"]["kinds"], config["align"]["mapping"]) == ("text", "m.toml")
