"""``full`` from the settings and the CLI to the global stages: the plan's parameter, the flow's
values, each stage's options (align, annotate, splits, export, report), and a report stage run through the registry
that does nothing with nothing new and rebuilds with ``full``."""

import inspect

from m5data.config import load
from m5data.flows.executor import stage_options
from m5data.flows.pipeline import check_plan, pipeline_flow
from m5data.stages import RunContext, get
from m5data.storage import Store


def _settings(tmp_path, **overrides):
    return load(None, {"store.path": str(tmp_path / "store"), **overrides}, environ={}, cwd=tmp_path)


def test_full_is_a_plan_parameter_and_a_stage_option(tmp_path):
    Store.init(tmp_path / "store")
    assert check_plan(_settings(tmp_path), stages="splits,report").parameters()["full"] is False
    plan = check_plan(_settings(tmp_path, **{"flows.full": True}), stages="splits,report")
    assert plan.full and plan.parameters()["full"] is True
    assert inspect.signature(pipeline_flow.fn).parameters["full"].default is False  # serve: incremental by default
    for stage in ("align", "dedup", "match_level", "pools", "splits", "export", "report"):
        assert stage_options(get(stage), {"full": True, "mapping": "m.toml"}, None)["full"] is True
    assert "full" not in stage_options(get("train"), {"full": True}, None)


def test_the_report_stage_through_the_registry(tmp_path):
    from m5data.stages import call

    def run(ctx):
        return call("report", ctx)

    store = Store.init(tmp_path / "store")
    store.write("products", [{"product_id": "a:1", "platform": "a", "title": "t"}])
    ctx = RunContext(_settings(tmp_path)).with_options(out=str(tmp_path / "r"))
    assert run(ctx).details["changes"] == {"new": 1, "changed": 0, "unchanged": 0}
    again = run(ctx)
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": 1} and again.n_in == 0
    assert run(ctx.with_options(full=True)).n_in == 1
