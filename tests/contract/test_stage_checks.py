"""Every stage's settings checks are its registered ``Stage.check``, run by ``m5data run`` for every planned
stage before the first one starts: a bad ``[dedup]``, ``[export]`` or ``[splits]`` value is refused before the
crawl fetches anything (issue 77). Each allowed-value list is written once."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m5data import stages
from m5data.cli import app

PACKAGE = Path(stages.__file__).resolve().parent
MAPPING = '[classes]\n1 = "数码"\n\n[platforms.shopa]\n"数码" = 1\n'


@pytest.fixture
def shop():
    """A start URL on 127.0.0.1 that counts the requests it gets (a refused run must make none)."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("setting", "toml", "key"), [
    ("dedup.matcher=bogus", None, "dedup.matcher"),
    ("export.format=zip", None, "export.format"),
    (None, "[splits]\ncoarse_level = 7\n", "splits.coarse_level"),
    (None, "[dedup]\nphash_bands = 0\n", "dedup.phash_bands"),
    ("crawl.render_timeout=0", None, "crawl.render_timeout"),  # the crawl's own check, before it fetches
    ("crawl.headers=nope", None, "crawl.headers"),
    ("extract.mp3_bitrate=loud", None, "extract.mp3_bitrate"),
])
def test_run_refuses_a_bad_stage_setting_before_the_crawl(tmp_path, monkeypatch, shop, setting, toml, key):
    url, hits = shop
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    if toml:
        (tmp_path / "m5data.toml").write_text(toml, encoding="utf-8")
    store = tmp_path / "st"
    flags = ["--set", setting] if setting else []
    # the default stages (crawl ... report): every planned stage's check runs before crawl starts
    result = CliRunner().invoke(app, ["--store", str(store), "--set", "crawl.allow_private=true", *flags,
                                      "run", "--start-url", url, "--mapping", str(tmp_path / "mapping.toml"),
                                      "--no-progress"])
    assert result.exit_code != 0, result.output
    assert key in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # one line, no traceback
    assert hits == []  # nothing fetched
    assert not store.exists()  # no store, so no crawl runs row


def test_run_with_good_settings_passes_the_checks(tmp_path, monkeypatch):
    """The same plan with the defaults passes every stage's check (the refusals above are the bad values')."""
    from m5data import config as cfg
    from m5data.flows.pipeline import check_plan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    settings = cfg.load(None, {"store.path": str(tmp_path / "st"), "align.mapping": str(tmp_path / "mapping.toml")},
                        environ={})
    plan = check_plan(settings, start_urls=["http://127.0.0.1:9/"])
    assert plan.stages[0] == "crawl" and "export" in plan.stages


def test_every_registered_stage_has_a_check():
    """A stage added without a ``Stage.check`` fails here: its settings would be checked only once it runs."""
    missing = [stage.name for stage in stages.REGISTRY if not stage.check]
    assert missing == []
    for stage in stages.REGISTRY:
        assert callable(stages.load(stage.check)), stage.name


@pytest.mark.parametrize(("key", "value", "error"), [
    ("dedup.matcher", "bogus", "dedup.matcher"),
    ("match_level.folds", 1, "match_level.folds"),
    ("pools.search", "annoy", "pools.search"),
    ("crowd.method", "vote", "crowd.method"),
    ("matcher.precision", 0.0, "matcher.precision"),
    ("splits.cls_test", 1.5, "splits.cls_test"),
    ("export.format", "zip", "export.format"),
    ("report.top", 0, "report.top"),
    ("download.pool", "fork", "download.pool"),
    ("train.config", "huge", "--preset"),
    ("extract.max_item_bytes", 10, "extract.max_item_bytes"),
])
def test_each_stage_check_names_its_bad_key(key, value, error):
    from m5data import config as cfg
    from m5data.errors import UserError

    settings = cfg.load(None, {key: value}, environ={})
    with pytest.raises(UserError, match=re.escape(error)):
        stages.check(key.partition(".")[0], settings, {})


def test_the_crawl_check_refuses_its_session_and_render_settings_before_any_work(tmp_path):
    """What the crawl refused only once it ran (a cookies file it cannot read, ``crawl.headers`` that are not a
    JSON table, a ``crawl.render_timeout`` not above 0) is its check's, so ``m5data run`` refuses it first."""
    from m5data import config as cfg
    from m5data.errors import UserError

    urls = {"start_urls": ["http://a.example/"]}
    for key, value, error in (("crawl.cookies_file", str(tmp_path / "none.txt"), "cookies file not found"),
                              ("crawl.headers", "[1]", "crawl.headers must be a JSON object"),
                              ("crawl.render_timeout", 0, "crawl.render_timeout must be > 0")):
        with pytest.raises(UserError, match=re.escape(error)):
            stages.check("crawl", cfg.load(None, {key: value}, environ={}), urls)
    stages.check("crawl", cfg.load(None, {}, environ={}), urls)


@pytest.mark.parametrize(("name", "options", "error"), [
    ("crawl", {"start_urls": ["http://a.example/"], "site": "nope"}, "unknown site 'nope'"),
    ("download", {"source": "no-such-list.txt"}, "URL list not found: no-such-list.txt"),
    ("extract", {"limit": -1}, "--limit must be >= 0"),
    ("crowd", {"method": "vote"}, "unknown method 'vote'"),
    ("matcher", {"labels": "no-such-labels.csv"}, "no such file: no-such-labels.csv"),
    ("export", {"version": "../v1"}, "split version"),
])
def test_each_stage_check_refuses_a_bad_option_before_any_work(tmp_path, monkeypatch, name, options, error):
    from m5data import config as cfg
    from m5data.errors import UserError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(error)):
        stages.check(name, cfg.load(None, {}, environ={}), options)


def test_video_decode_modes_are_written_once():
    """extract.video_decode's modes are the keys of extract/decoding.py's DECODE_OPTIONS; no other module
    of the package spells them out as a list."""
    listed = re.compile(r"""["']exact["']\s*,\s*["']fast["']\s*,\s*["']fastest["']""")
    spelled = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if listed.search(path.read_text())]
    assert spelled == []
    from m5data.config_checks import DECODE_MODES
    from m5data.extract.decoding import DECODE_OPTIONS

    assert DECODE_MODES == tuple(DECODE_OPTIONS) == ("exact", "fast", "fastest")


def test_a_served_or_deployed_flow_checks_every_stage_before_its_first(tmp_path, shop, prefect_harness):
    """The flow itself (what a deployment's run calls, never through ``m5data run``'s plan check) runs every
    stage's check before the crawl: a bad ``[dedup]`` value fails the run at once, nothing fetched."""
    from m5data.flows.pipeline import pipeline_flow

    url, hits = shop
    store = tmp_path / "st"
    state = pipeline_flow(str(store), [url], stages=["crawl", "download", "dedup"], return_state=True,
                          overrides={"crawl.allow_private": True, "dedup.matcher": "bogus"})
    assert state.is_failed() and "dedup" in state.message and "dedup.matcher" in state.message, state.message
    assert hits == [] and not store.exists()
