"""The active-learning rounds' figures of benchmarks/bench_matcher.py: each way's draws against random's
(larger area, fewer labels to a target AUC), and a way run alone compared with a random run kept in
``--al-json``'s file."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_matcher.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_matcher_rounds", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules[spec.name]


STEPS = [20, 30, 40]
RANDOM = np.array([[0.6, 0.80, 0.86], [0.6, 0.86, 0.90], [0.6, 0.70, 0.80]])
# draw 0 reaches 0.85 a round sooner, draw 1 at the same round, draw 2 never (random neither)
OTHER = np.array([[0.6, 0.85, 0.87], [0.6, 0.86, 0.88], [0.6, 0.75, 0.84]])


def test_the_draws_that_reach_each_target_with_fewer_labels_than_random(bench, capsys):
    bench.print_rounds({"steps": STEPS, "targets": (0.85,), "auc": {"random": RANDOM, "other": OTHER}})
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("other"))
    assert "to AUC 0.85: 40 (draws 30/30/-)" in line
    assert "area above random's in 2 of 3 draws" in line
    assert "to 0.85 in fewer labels than random in 1 of 3 draws (2 as many)" in line


def test_a_way_run_alone_is_printed_against_the_random_rounds_kept_before(bench, tmp_path, capsys):
    kept = tmp_path / "al.json"
    bench.kept_rounds({"steps": STEPS, "targets": (0.85,), "auc": {"random": RANDOM}}, kept)
    al = {"steps": STEPS, "targets": (0.85,), "auc": {"other": OTHER}}
    bench.kept_rounds(al, kept)
    assert set(al["auc"]) == {"other", "random"} and np.array_equal(al["auc"]["random"], RANDOM)
    bench.print_rounds(al)
    assert "area above random's in 2 of 3 draws" in capsys.readouterr().out
    later = {"steps": STEPS, "first": 3, "targets": (0.85,), "auc": {"third": OTHER}}
    bench.kept_rounds(later, kept)  # other draws (or other rounds): the kept ways are not theirs to compare with
    assert set(later["auc"]) == {"third"}


def test_two_ways_run_side_by_side_each_its_own_file_are_printed_together(bench, tmp_path, capsys):
    bench.kept_rounds({"steps": STEPS, "targets": (0.85,), "auc": {"random": RANDOM}}, tmp_path / "random.json")
    bench.kept_rounds({"steps": STEPS, "targets": (0.85,), "auc": {"other": OTHER}}, tmp_path / "other.json")
    assert bench.main(["--al-print", str(tmp_path / "random.json"), str(tmp_path / "other.json")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("other"))
    assert "area above random's in 2 of 3 draws" in line and "to 0.85 in fewer labels than random in 1 of 3 draws" in line
    bench.main(["--al-print", str(tmp_path / "random.json"), str(tmp_path / "other.json"), "--al-top", "30"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("other"))
    assert " 40:" not in line and "to AUC 0.85: - (draws 30/30/-)" in line  # to 30 labels: the mean 0.82
    bench.kept_rounds({"steps": STEPS, "first": 3, "targets": (0.85,), "auc": {"third": OTHER}}, tmp_path / "later.json")
    with pytest.raises(SystemExit):  # other draws: not comparable
        bench.main(["--al-print", str(tmp_path / "random.json"), str(tmp_path / "later.json")])


def test_the_committee_way_is_uncertains_pick_below_its_switch_then_the_packages_committee(bench):
    from m5data.annotate.crowd.uncertain import committee
    from m5data.config import load

    g = np.random.default_rng(3)
    x = g.normal(size=(200, 4))
    y = x[:, 0] + g.normal(0, 0.5, 200) > 0.5
    d = bench.ChineseSet(x=x, y=y, groups=np.arange(200), folds=[], tested=None, settings=load(None, {}, environ={}))
    cols, have, rest = np.arange(4), np.arange(60), np.arange(60, 200)

    class Flat:  # a model of few labels: every pair alike
        threshold = 0.5

        def proba(self, x):
            return np.full(len(x), 0.3)

    below = bench.committee_pairs(d, Flat(), cols, rest, have, np.random.default_rng(1), 5, switch=61)
    assert list(below) == list(bench.uncertain_pairs(d, Flat(), cols, rest, have, np.random.default_rng(1), 5))
    past = bench.committee_pairs(d, Flat(), cols, rest, have, np.random.default_rng(1), 5, switch=60)
    assert list(past) == list(rest[committee(x[have], y[have], x[rest], d.settings.matcher, 5, np.random.default_rng(1))])
