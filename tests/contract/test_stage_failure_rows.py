"""Every stage's run leaves a ``runs`` row however it ends (issue 77): ``failed`` naming the reason when
its work raises, ``interrupted`` on Ctrl-C or SIGTERM, one row per run (a stage that records its own
keeps it), the exception propagating as it was. Parametrised over the registry: a new stage must say
below where its work can be made to fail."""

from __future__ import annotations

import importlib
import os
import signal
import threading

import pytest

from m5data import stages
from m5data.config import load
from m5data.stages import RunContext
from m5data.storage import Store

# per stage: a function its run calls early in its own work (inside its StageRun where it has one), on an
# empty store; raising there is a failure of the stage's own code path
INJECT = {
    "crawl": ("m5data.crawler.crawl", "build_settings"),
    "download": ("m5data.download.run", "StoreRetry"),
    "extract": ("m5data.extract.run", "plan_phases"),  # inside extract's own except: its own row names it
    "vision": ("m5data.vision.stage", "pending"),
    "align": ("m5data.align.run", "_align"),
    "dedup": ("m5data.annotate.dedup.job", "_dedup"),
    "match_level": ("m5data.annotate.match_level.kept_model", "incremental"),
    "pools": ("m5data.annotate.pools.next_run", "up_to_date"),
    "crowd": ("m5data.annotate.crowd.job", "read_judgements"),
    "matcher": ("m5data.annotate.matcher.job", "read_store"),
    "splits": ("m5data.splits.stage", "_run"),
    "export": ("m5data.export.run", "_export"),
    "report": ("m5data.report.build", "_build"),
    "train": ("m5data.train.loop", "train"),
}

MAPPING = '[classes]\n1 = "Clothing"\n\n[platforms.shop]\n"Clothes" = 1\n'


def _context(tmp_path, name: str) -> RunContext:
    root = tmp_path / "store"
    Store.init(root)
    mapping = tmp_path / "level1.toml"
    mapping.write_text(MAPPING)
    settings = load(None, {"store.path": str(root), "align.mapping": str(mapping)}, environ={})
    options = {"crawl": {"start_urls": ["http://127.0.0.1:9/"]},
               "export": {"out": str(tmp_path / "export"), "version": "v1"},
               "train": {"shards": str(tmp_path / "shards"), "out": str(tmp_path / "train"), "evaluate": False},
               }.get(name, {})
    return RunContext(settings, options=options)


def _inject(monkeypatch, name: str, error: BaseException) -> None:
    if name not in INJECT:
        pytest.fail(f"stage {name!r} is registered but tests/contract/test_stage_failure_rows.py INJECT does not say where "
                    "its work can be made to fail")
    module, attribute = INJECT[name]

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(importlib.import_module(module), attribute, fail)


def _rows(ctx: RunContext, name: str) -> list[dict]:
    return Store.open(ctx.settings.store_path).read("runs", where=f"stage = '{name}'").to_pylist()


@pytest.mark.parametrize("name", stages.STAGES)
def test_a_stage_whose_work_raises_writes_one_failed_runs_row_naming_the_reason(tmp_path, monkeypatch, name):
    ctx = _context(tmp_path, name)
    _inject(monkeypatch, name, RuntimeError(f"injected into {name}\nsecond line"))
    with pytest.raises(RuntimeError, match=f"injected into {name}"):
        stages.call(name, ctx)
    rows = _rows(ctx, name)
    assert [r["status"] for r in rows] == ["failed"]
    assert f'"RuntimeError: injected into {name}"' in rows[0]["failures"]
    assert rows[0]["ended_at"] is not None


@pytest.mark.parametrize("name", stages.STAGES)
def test_a_stage_interrupted_in_its_work_writes_one_interrupted_runs_row(tmp_path, monkeypatch, name):
    ctx = _context(tmp_path, name)
    _inject(monkeypatch, name, KeyboardInterrupt(f"stopped in {name}"))
    with pytest.raises(KeyboardInterrupt):
        stages.call(name, ctx)
    rows = _rows(ctx, name)
    assert [r["status"] for r in rows] == ["interrupted"]
    assert f'"KeyboardInterrupt: stopped in {name}"' in rows[0]["failures"]


def test_sigterm_during_a_stage_ends_it_as_interrupted_and_puts_the_default_back(tmp_path, monkeypatch):
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM is turned into an interrupt only in a main thread where nothing else handles it")
    ctx = _context(tmp_path, "dedup")

    def terminated(*args, **kwargs):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the kill below ends the test process
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM raised nothing")

    monkeypatch.setattr(importlib.import_module("m5data.annotate.dedup.job"), "_dedup", terminated)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        stages.call("dedup", ctx)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    rows = _rows(ctx, "dedup")
    assert [r["status"] for r in rows] == ["interrupted"] and '"KeyboardInterrupt: SIGTERM"' in rows[0]["failures"]


def test_a_run_that_recorded_its_own_row_gets_no_second_and_a_verb_without_a_store_none(tmp_path, monkeypatch):
    ctx = _context(tmp_path, "train")

    def recorded_then_failed(*args, run, **kwargs):
        run.record({}, "ok")
        raise ValueError("after its row")

    monkeypatch.setattr(importlib.import_module("m5data.train.stage"), "train_and_evaluate", recorded_then_failed)
    with pytest.raises(ValueError):
        stages.call("train", ctx)
    assert [r["status"] for r in _rows(ctx, "train")] == ["ok"]
    monkeypatch.undo()
    _inject(monkeypatch, "train", ValueError("no store asked for"))
    with pytest.raises(ValueError):  # the train verb's run: record False, no row written
        stages.call("train", ctx.with_options(record=False))
    assert len(_rows(ctx, "train")) == 1


def test_a_user_error_before_any_stage_run_is_a_refusal_and_after_one_a_failed_run(tmp_path, monkeypatch):
    from m5data.crawler.crawl import run as crawl
    from m5data.errors import UserError

    ctx = _context(tmp_path, "crawl")
    bad = ctx.with_options(site="no-such-site")
    with pytest.raises(UserError, match="unknown site"):  # its check refuses it before any work (its verb, m5data run)
        stages.check("crawl", ctx.settings, bad.options)
    with pytest.raises(UserError, match="unknown site"):  # so does its job called directly, before it opens its run
        crawl(ctx.store, ctx.settings, start_urls=bad.options["start_urls"], site="no-such-site")
    assert _rows(ctx, "crawl") == []
    with pytest.raises(UserError, match="unknown site"):  # stages.call unchecked: inside the run the contract opened
        stages.call("crawl", bad)
    assert [r["status"] for r in _rows(ctx, "crawl")] == ["failed"]
    _inject(monkeypatch, "dedup", UserError("the store cannot be read"))  # inside dedup's StageRun: its work
    with pytest.raises(UserError):
        stages.call("dedup", ctx)
    rows = _rows(ctx, "dedup")
    assert [r["status"] for r in rows] == ["failed"] and '"UserError: the store cannot be read"' in rows[0]["failures"]
