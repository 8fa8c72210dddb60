"""The stage registry and the RunContext a stage receives (m5data/stages.py)."""

import pickle

import pytest

from m5data import stages
from m5data.config import Settings, load
from m5data.stages import RunContext


def test_every_stage_names_a_settings_section_a_run_and_its_verbs():
    for stage in stages.REGISTRY:
        assert hasattr(Settings(), stage.section), stage.name
        assert stage.load().__module__.endswith(".stage"), stage.name  # one stage.py per stage package
    mounted = {(v.parent, v.name) for group in (None, "annotate") for v in stages.verbs(group)}
    assert {(v.parent, v.name) for s in stages.REGISTRY for v in s.verbs} <= mounted
    assert stages.SHARDED == ("crawl", "download", "extract", "vision")


def test_a_verb_module_that_fails_to_import_is_an_error_not_a_missing_verb():
    with pytest.raises(ModuleNotFoundError):
        stages.load("m5data.no_such_stage.cli:verb")
    with pytest.raises(KeyError, match="the stages are crawl, download"):
        stages.get("bogus")


def test_the_context_pickles_without_its_store(tmp_path):
    """The dask and process runners send the context to their workers: the settings go, the open store stays."""
    from m5data.storage import Store

    Store.init(tmp_path / "store")
    settings = load(None, {"store.path": str(tmp_path / "store"), "download.concurrency": "70"}, environ={})
    ctx = RunContext(settings, options={"shard": [1, 2]})
    assert ctx.store.count("products") == 0 and ctx._store is not None
    back = pickle.loads(pickle.dumps(ctx))
    assert back._store is None and back.settings.download.concurrency == 70
    assert back.settings.source("download.concurrency") == "flag" and back.shard == (1, 2)
    assert back.store.count("products") == 0  # opened again where it runs
    assert back.with_options(job="dedup").options == {"shard": [1, 2], "job": "dedup"}


def test_a_verb_runs_its_registered_stage_with_one_run_context(store, tmp_path, monkeypatch):
    """``m5data export`` builds a RunContext (settings with its flags, its own options, the store) and
    calls the registry's ``run`` with it and the run the contract opened: the verb prints what the
    returned StageStats say, and the contract writes their runs row."""
    from support.cli_inprocess import invoke
    from support.store_samples import query

    from m5data.storage import StageStats

    seen: list[RunContext] = []

    def run(ctx: RunContext, run) -> StageStats:
        seen.append(ctx)
        assert run.name == "export" and run.lock and run._held is not None  # the contract holds the export lock
        stats = StageStats("export")
        stats.n_in = stats.n_out = 3
        stats.details.update(out=str(ctx.options["out"]), format=ctx.settings.export.format, version="v9",
                             splits={"train": 3}, shards=2, shards_written=1, shards_skipped=1, skipped_splits={})
        stats.finish("ok")
        return stats

    class Entry:  # a stage that reads no table: stages.call opens its run, holding the export lock
        name, check, reads, inputs, state, stats, lock = "export", None, (), None, None, None, True
        load = staticmethod(lambda: run)

    monkeypatch.setattr(stages, "get", lambda name: Entry if name == "export" else pytest.fail(name))
    out = tmp_path / "out"
    res = invoke("--store", str(store.root), "export", "--split", "train", "--out", str(out), "--version", "v9",
                 "--shard-size", "7", "--format", "parquet")
    assert res.returncode == 0, res.stderr
    assert len(seen) == 1 and isinstance(seen[0], RunContext)
    ctx = seen[0]
    assert ctx.options == {"out": out, "version": "v9", "full": False}
    assert (ctx.settings.export.split, ctx.settings.export.format) == ("train", "parquet")  # the stage's own keys
    assert ctx.settings.export.shard_size == 7 and ctx.settings.source("export.shard_size") == "flag"
    assert ctx.store.root == store.root and not ctx.create
    assert "shards: 2 (1 written, 1 already finished)" in res.stdout
    assert "export run" in res.stdout and "measure" in res.stdout  # the stage summary of the returned stats
    assert query(store, "SELECT status, n_in FROM runs WHERE stage = 'export'") == [("ok", 3)]  # written by the contract


CURATION = ("dedup", "match_level", "pools", "crowd", "matcher")


def test_each_curation_job_is_a_stage_of_the_registry_and_annotate_their_group():
    """dedup, match-level, pools, the crowd's aggregation and the matcher's training: one registry entry
    each, with its own section and lease; ``annotate`` is the verb group and the usual three."""
    names = [s.name for s in stages.REGISTRY]
    assert names[names.index("align") + 1:names.index("splits")] == list(CURATION)
    for name in CURATION:
        stage = stages.get(name)
        # its lease: the registry's (stages.call opens its run, holding its lock)
        assert stage.section == name and stage.lock, name
        assert stage.run == f"m5data.annotate.{name}.stage:run", name
    assert "annotate" not in names and stages.GROUPS == {"annotate": ("dedup", "match_level", "pools")}
    under = [v.name for v in stages.verbs("annotate")]
    assert under == ["dedup", "match-level", "pools", "tasks", "simulate", "import", "aggregate", "serve", "matcher"]
    assert "annotate" in [v.name for v in stages.verbs()] and "dedup" not in [v.name for v in stages.verbs()]


def test_stages_name_a_curation_stage_or_the_annotate_group():
    from m5data.flows.pipeline import parse_stages

    assert parse_stages("pools,dedup") == ["dedup", "pools"]
    assert parse_stages("align,annotate,splits") == ["align", "dedup", "match_level", "pools", "splits"]
    default = parse_stages(load(None, {}, environ={}).flows.stages)
    assert default[default.index("align") + 1:default.index("splits")] == ["dedup", "match_level", "pools"]


def test_a_curation_stage_runs_under_its_lock_and_writes_its_runs_row_by_its_name(store, stage_locks_taken):
    store.write("products", [{"product_id": "a:1", "platform": "a", "title": "t"},
                             {"product_id": "a:2", "platform": "a", "title": "t"}])
    settings = load(None, {"store.path": str(store.root)}, environ={})
    stats = stages.call("dedup", RunContext(settings))
    assert stats.stage == "dedup" and stage_locks_taken == ["dedup"]
    assert store.read("runs", columns=["stage"]).column("stage").to_pylist() == ["dedup"] and store.count("dedup") == 2


def test_a_stage_checks_its_own_options_through_the_registry(tmp_path):
    """``stages.check(name, settings, options)`` runs the stage's ``Stage.check`` (its stage.py's ``check``),
    which raises the stage's own error; a stage without one accepts anything."""
    from m5data.align.run import AlignError
    from m5data.extract.run import ExtractError

    settings = load(None, {"store.path": str(tmp_path / "store"), "extract.kinds": "smell"}, environ={})
    for stage in stages.REGISTRY:
        if stage.check:
            assert stage.check.endswith(".stage:check") and callable(stages.load(stage.check)), stage.name
    with pytest.raises(ValueError, match="give at least one --start-url"):
        stages.check("crawl", settings, {"start_urls": []})
    stages.check("crawl", settings, {"start_urls": ["http://a.example/"]})
    with pytest.raises(ExtractError, match="unknown extract kind.*smell"):
        stages.check("extract", settings, {})
    with pytest.raises(AlignError, match="no level-1 mapping file"):
        stages.check("align", settings, {})
    stages.check("download", settings, {"anything": 1})


def test_unknown_stage_name_is_one_line_naming_the_stages(tmp_path):
    """The Python API given a verb's name or a typo: one plain line (no KeyError quotes) naming the stages
    and the stage meant; still a KeyError (issue 75, item 15)."""
    from m5data.api import run_stage
    from m5data.errors import UserError

    for name, meant in (("build-splits", "splits"), ("dedupe", "dedup"), ("nothing-like-it", None)):
        with pytest.raises(KeyError) as raised:
            run_stage(name, tmp_path / "st")
        assert isinstance(raised.value, UserError)
        text = str(raised.value)
        assert text.startswith(f"unknown stage '{name}'") and "the stages are crawl, download" in text, text
        assert (f"did you mean '{meant}'?" in text) if meant else "did you mean" not in text
        assert not (tmp_path / "st").exists()  # refused before any work
