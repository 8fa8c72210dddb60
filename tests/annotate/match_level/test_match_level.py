"""``annotate match-level``: evidence helpers, cut points, AUC on the default demo world, reasons, idempotence, CLI."""

import re

import pytest
from typer.testing import CliRunner

from m5data.annotate.match_level.job import level_of, match_level, run, score_levels, spec_hits
from m5data.cli import app
from m5data.config import ConfigError, load
from m5data.storage import Store
from m5data.storage.truth_files import truth_rows

runner = CliRunner()


def test_spec_hits_count_values_found_in_the_caption_also_by_bracket_parts():
    caption = "美兰紫砂陶瓷收藏茶具摆件D6743-A灰色茶具"
    assert spec_hits(caption, ["美兰(KOLE)", "灰色", "D6743-A", "中国大陆", "2023年"]) == 3
    assert spec_hits(caption, ["康特(MIMU)", "白色"]) == 0
    assert spec_hits("ＫＯＬＥ 茶具", ["kole"]) == 1  # width and case do not matter


def test_levels_follow_the_cut_points():
    assert [level_of(s, 0.6, 0.3) for s in (0.6, 0.59, 0.3, 0.29, None)] == ["well", "partial", "partial", "poor", None]


def test_score_levels_builds_the_confusion_and_auc():
    rows = [{"product_id": "a", "score": 0.9, "level": "well"}, {"product_id": "b", "score": 0.1, "level": "poor"},
            {"product_id": "c", "score": 0.5, "level": "partial"}, {"product_id": "d", "score": None, "level": None}]
    truth = [{"product_id": "a", "caption_mismatched": False}, {"product_id": "b", "caption_mismatched": True},
             {"product_id": "c", "caption_mismatched": False, "caption_level": "partial"},
             {"product_id": "d", "caption_mismatched": True}]
    score = score_levels(rows, truth)
    assert score.products == 3 and score.positives == 2 and score.auc == 1.0
    assert score.confusion["poor"]["poor"] == 1 and score.confusion["partial"]["partial"] == 1
    assert score.unscored_mismatched == 1


def test_bad_settings_are_rejected_before_work(store):
    settings = load(None, {"store.path": str(store.root), "match_level.partial": "0.9"}, environ={})
    with pytest.raises(ConfigError, match="match_level.partial"):
        run(store, settings)
    assert store.count("caption_match") == 0


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_default_demo_world_auc_reasons_and_idempotence(demo300_copy):
    store_dir, truth_dir = demo300_copy
    store = Store.open(store_dir)
    settings = load(None, {"store.path": str(store.root)}, environ={})
    report = match_level(store, settings)
    rows = store.read("caption_match").to_pylist()
    assert len(rows) == 300
    truth = truth_rows(truth_dir, "products.parquet")
    score = score_levels(rows, truth)
    assert score.positives >= 5
    assert score.auc >= 0.92  # target 0.85
    assert score.confusion["poor"]["well"] == 0  # no mismatched caption is called well matched
    assert sum(score.confusion["well"].values()) > 200 and score.confusion["well"]["well"] >= 0.85 * sum(score.confusion["well"].values())
    by_id = {r["product_id"]: r for r in rows}
    empty = [t["product_id"] for t in truth if not t["title"]]
    assert empty and all(by_id[p]["score"] is None and "empty caption" in by_id[p]["reason"] for p in empty)
    unlabelled = [t["product_id"] for t in truth if not t["category_path"] and t["title"]]
    assert unlabelled and all("no label" in by_id[p]["reason"] and by_id[p]["category_score"] is None
                              and by_id[p]["score"] is not None for p in unlabelled)
    assert all(0.0 <= r["score"] <= 1.0 for r in rows if r["score"] is not None)
    assert report.stats.n_failed == len(empty)
    match_level(store, settings)  # a re-run writes the same rows
    strip = lambda rs: sorted((tuple(v for k, v in r.items() if k != "run_id") for r in rs), key=str)
    assert strip(store.read("caption_match").to_pylist()) == strip(rows)


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_cli_prints_auc_and_confusion(demo300_copy):
    store_dir, truth_dir = demo300_copy
    result = runner.invoke(app, ["--store", str(store_dir), "annotate", "match-level", "--score-against", str(truth_dir)])
    assert result.exit_code == 0, result.output
    assert float(re.search(r"ROC AUC ([0-9.]+)", result.output).group(1)) >= 0.85
    assert re.search(r"poor\s*│\s*0\s*│", result.output)  # the confusion row of poorly matched truth: none called well
