"""The report incremental (``m5data/report/incremental.py``): a run with nothing new does no work and
says so; a store grown in two writes, reported after each, gives the page a full rebuild gives; a
run killed before it completes, run again, gives the same; ``full`` rebuilds anyway.
"""

from __future__ import annotations

import re

import pytest

from m5data.config import load
from m5data.report import folder as report_folder
from m5data.report.build import build
from m5data.storage import Store, changes


def _products(lo: int, hi: int, title: str = "商品") -> list[dict]:
    return [{"product_id": f"shopa:{i}", "platform": "shopa", "source_id": str(i), "title": f"{title} {i}",
             "category_path": ["服装", f"上衣{i % 3}"], "has_image": False, "has_video": False,
             "has_caption": True, "has_specs": True} for i in range(lo, hi)]


def _specs(lo: int, hi: int) -> list[dict]:
    return [{"product_id": f"shopa:{i}", "position": 0, "property": "品牌", "value": f"牌{i % 4}"} for i in range(lo, hi)]


def _page(result) -> str:
    """The page without its "written" time and its count of ``runs`` rows (each run adds one)."""
    page = re.sub(r"written \d{4}-\d\d-\d\d \d\d:\d\d UTC", "written -", result.index.read_text(encoding="utf-8"))
    return re.sub(r'data-key="table.runs" data-value="\d+">\d+', "runs -", page)


@pytest.fixture
def store(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", _products(0, 20))
    store.write("specs", _specs(0, 20))
    return store


def _settings(store):
    return load(None, {"store.path": str(store.root)}, environ={})


def test_a_run_with_nothing_new_does_no_work(store, tmp_path):
    settings = _settings(store)
    first = build(store, settings, out=tmp_path / "r")
    assert first.stats.details["changes"] == {"new": 20, "changed": 0, "unchanged": 0}
    page = first.index.read_bytes()
    second = build(store, settings, out=tmp_path / "r")
    assert second.stats.details["changes"] == {"new": 0, "changed": 0, "unchanged": 20}
    assert second.stats.details["unchanged"] and second.stats.n_in == 0
    assert second.index.read_bytes() == page and second.sections == first.sections
    assert store.read("runs", where="stage = 'report'").num_rows == 2  # it still says it ran
    third = build(store, settings, out=tmp_path / "r", full=True)
    assert "unchanged" not in third.stats.details and third.stats.n_in == 20


def test_a_grown_store_reported_again_equals_a_full_rebuild(store, tmp_path):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    store.write("products", _products(15, 30, title="新款"))  # 5 changed, 10 new
    store.write("specs", _specs(20, 30))
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["changes"] == {"new": 10, "changed": 5, "unchanged": 15}
    full = build(store, settings, out=tmp_path / "full", full=True)
    assert _page(again) == _page(full)
    assert again.stats.n_in == 30


def test_a_touched_report_folder_is_written_again(store, tmp_path):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    (tmp_path / "r" / "index.html").write_text("edited")
    again = build(store, settings, out=tmp_path / "r")
    assert "unchanged" not in again.stats.details and "edited" not in again.index.read_text()


def test_a_run_killed_before_it_completes_runs_again(store, tmp_path, monkeypatch):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    before = changes.load_state(store, "report")
    store.write("products", _products(20, 25))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(report_folder, "publish", killed)
        with pytest.raises(KeyboardInterrupt):
            build(store, settings, out=tmp_path / "r")
    assert changes.load_state(store, "report") == before
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["changes"] == {"new": 5, "changed": 0, "unchanged": 20}
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


def test_the_verb_says_unchanged_and_full_writes_again(store, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    argv = ["--store", str(store.root), "report", "--out", str(tmp_path / "r")]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0 and "products since the last report: new 20" in " ".join(first.output.split())
    second = CliRunner().invoke(app, argv)
    assert second.exit_code == 0 and "report: unchanged (new 0, changed 0, unchanged 20)" in " ".join(second.output.split())
    third = CliRunner().invoke(app, argv + ["--full"])
    assert third.exit_code == 0 and "report: unchanged" not in third.output
