"""Split sizes: counts, fractions and 'rest'; the paper's proportions scaled to a store; bad settings."""

import pytest

from m5data import config as cfg
from m5data.splits.plan import PAPER_PRODUCTS, PlanCounts, Size, check_settings, make_plan, parse_size


def test_sizes_parse_as_counts_fractions_or_rest():
    assert parse_size("query_c", "24410") == Size("count", 24410)
    assert parse_size("query_c", "24,410") == Size("count", 24410)
    assert parse_size("query_c", "0.003867") == Size("fraction", 0.003867)
    assert parse_size("train", "rest", allow_rest=True) == Size("rest")
    for bad in ("rest", "-3", "1.5", "lots"):
        with pytest.raises(cfg.ConfigError, match="splits.query_c"):
            parse_size("query_c", bad)


@pytest.mark.parametrize("key,value", [("splits.query_fg", "x"), ("splits.cls_test", "1.0"),
                                       ("splits.coarse_level", "4"), ("splits.cls_min_per_class", "1"),
                                       ("splits.fg_classes", "cosmetics"), ("splits.version", "a/b")])
def test_bad_settings_are_rejected_before_work(key, value):
    settings = cfg.load(None, {key: value}, environ={})
    with pytest.raises(cfg.ConfigError, match=key.split(".")[1]):
        check_settings(settings)


def _paper_counts(scale: float = 1.0) -> tuple[PlanCounts, list[str]]:
    cats = {f"{k % 14 + 1}/{k}/0": int(2000 * scale) for k in range(3000)}
    n = int(PAPER_PRODUCTS * scale)
    return PlanCounts(n, n, int(1_000_000 * scale), int(500_000 * scale), cats), sorted(cats)


def test_default_sizes_are_the_papers_at_the_papers_scale():
    counts, order = _paper_counts()
    plan = make_plan("v1", cfg.Settings().splits, counts, order)
    t = plan.targets
    assert t["query-c"] == pytest.approx(24_410, rel=0.01)
    assert t["gallery-c"] == pytest.approx(1_197_905, rel=0.01)
    assert t["query-fg"] == pytest.approx(1_991, rel=0.01)
    assert t["gallery-fg"] == pytest.approx(117_858, rel=0.01)
    assert len(plan.cls_rates) == round(0.2896 * 3000)
    assert t["cls-train"] + t["cls-test"] == pytest.approx(23_158, rel=0.01)
    assert t["cls-test"] / (t["cls-train"] + t["cls-test"]) == pytest.approx(0.2, rel=1e-3)
    assert t["train"] == pytest.approx(PAPER_PRODUCTS - 24_410 - 1_197_905 - 1_991 - 117_858 - 23_158, rel=0.01)
    assert 0 < plan.q_coarse < 0.03 and plan.q_fine == pytest.approx(0.5)


def test_sizes_scale_with_the_store_and_counts_stay_counts():
    counts, order = _paper_counts(0.01)
    settings = cfg.load(None, {"splits.query_c": "500", "splits.train": "0.5"}, environ={})
    plan = make_plan("v1", settings.splits, counts, order)
    assert plan.targets["query-c"] == pytest.approx(500, rel=0.01)
    assert plan.targets["gallery-c"] == pytest.approx(11_979, rel=0.01)
    assert plan.targets["train"] == pytest.approx(0.5 * counts.products, rel=0.01)
    assert plan.r_train < 1


def test_small_stores_get_the_query_floor_and_the_class_minimum():
    cats = {"6/1/0": 40, "6/2/0": 3, "1/3/0": 12}
    counts = PlanCounts(300, 290, 60, 20, cats)
    s = cfg.load(None, {"splits.cls_classes": "1.0"}, environ={}).splits
    plan = make_plan("v1", s, counts, [c for c in sorted(cats) if cats[c] >= s.cls_min_per_class])
    assert plan.targets["query-c"] == pytest.approx(10) and plan.targets["query-fg"] == pytest.approx(10)
    assert set(plan.cls_rates) == {"6/1/0", "1/3/0"}  # the 3-product category is below the minimum of 5
    assert plan.cls_rates["6/1/0"] == pytest.approx(5 / 40)
    assert plan.cls_rates["1/3/0"] == pytest.approx(5 / 12)


def test_no_duplicate_groups_means_no_fine_grained_pool():
    counts = PlanCounts(1000, 1000, 100, 0, {})
    plan = make_plan("v1", cfg.Settings().splits, counts, [])
    assert plan.r_fine == 0 and plan.targets["query-fg"] == 0 and plan.targets["gallery-fg"] == 0
