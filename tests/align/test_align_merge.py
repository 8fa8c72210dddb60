"""Union-find groups, the naming rule, decisions and stable id assignment (no store needed)."""

import math

import numpy as np
import pytest

from m5data.align.candidates import candidate_pairs, decide
from m5data.align.inventory import SubClass
from m5data.align.merge import PreviousIds, UnionFind, assign_ids, build_groups, propose_name


def sub(platform, name, class_id=1, n=10, children=()):
    return SubClass(platform, f"L1-{class_id}", name, class_id, n, n, "标题", {c: 1 for c in children})


def test_union_find_is_transitive_and_deterministic():
    uf = UnionFind(5)
    uf.union(3, 4)
    uf.union(4, 1)
    assert uf.find(3) == uf.find(1) == 1  # the smallest member is the root
    assert uf.find(0) == 0 and uf.find(2) == 2


def test_groups_merge_transitively_but_never_across_classes():
    subs = [sub("a", "咖啡"), sub("b", "咖啡/奶茶"), sub("c", "奶茶咖啡"), sub("a", "空调", class_id=2)]
    groups, of = build_groups(subs, [(0, 1), (1, 2)], set(), {})
    assert of[0] == of[1] == of[2] != of[3]
    with pytest.raises(ValueError, match="across level-1 classes"):
        build_groups(subs, [(0, 3)], set(), {})


def test_candidate_pairs_stay_inside_one_class():
    subs = [sub("a", "茶杯", 1), sub("b", "茶杯", 2), sub("b", "茶壶", 1), sub("a", "水壶", 2),
            SubClass("a", "未映射", "茶杯", None)]
    pairs = candidate_pairs(subs)
    assert pairs and all(subs[i].class_id == subs[j].class_id for i, j in pairs)
    assert all(subs[i].platform < subs[j].platform for i, j in pairs)
    assert sorted(pairs) == [(0, 2), (3, 1)]


def test_proposed_name_covers_most_products_then_longer():
    assert propose_name([sub("a", "湿巾", n=90), sub("b", "婴儿湿巾", n=10)]) == "湿巾"
    assert propose_name([sub("a", "婴幼奶粉", n=5), sub("b", "婴幼儿奶粉", n=5)]) == "婴幼儿奶粉"
    assert propose_name([sub("a", "办公文具", n=5), sub("b", "办公文仪", n=5)]) == "办公文仪"  # code-point order


@pytest.mark.parametrize("s_label,s_content,same,expected", [
    (1.0, 0.70, True, ("merge", "identical")),  # MEP-3M merges 洗澡用具/洗澡用具 at 0.705
    (0.89, 0.96, False, ("merge", "thresholds")),
    (0.50, 0.76, False, ("merge", "thresholds")),  # S_label >= 0.50 is inclusive
    (0.75, 0.75, False, ("keep", "below-content")),  # S_content > 0.75 is strict
    (0.40, 0.90, False, ("keep", "below-label")),
    (0.40, 0.10, False, ("keep", "below-both")),
    (1.0, math.nan, True, ("keep", "no-content")),
])
def test_decisions_follow_mep3m_criterion(s_label, s_content, same, expected):
    decision, reason, margin = decide(s_label, s_content, same, label_threshold=0.5, content_threshold=0.75)
    assert (decision, reason) == expected
    if decision == "merge" and reason == "thresholds":
        assert margin >= 0
    if reason.startswith("below"):
        assert margin <= 0  # 0 exactly on the boundary (S_content == threshold)


def test_empty_subclasses_merge_by_name_only_when_configured():
    assert decide(1.0, math.nan, True, label_threshold=0.5, content_threshold=0.75,
                  merge_empty_by_name=True)[:2] == ("merge", "identical-no-content")


def test_borderline_pairs_have_small_margins():
    near = abs(decide(0.8, 0.76, False, label_threshold=0.5, content_threshold=0.75)[2])
    far = abs(decide(0.0, 0.1, False, label_threshold=0.5, content_threshold=0.75)[2])
    assert near < 0.02 < far


def test_first_run_numbers_level2_then_level3_in_their_own_range():
    subs = [sub("a", "水果", children=["苹果", "橙子"]), sub("b", "水果"), sub("a", "茶杯")]
    groups, _ = build_groups(subs, [(0, 1)], set(), {})
    assign_ids(groups, subs, PreviousIds())
    assert sorted(g.sub_id for g in groups) == [1, 2]
    fruit = next(g for g in groups if g.name == "水果")
    assert sorted(fruit.children.values()) == [3, 4]


def test_a_new_subclass_does_not_renumber_the_others():
    subs = [sub("a", "水果", children=["苹果"]), sub("a", "茶杯"), sub("a", "空调", class_id=2)]
    groups, _ = build_groups(subs, [], set(), {})
    assign_ids(groups, subs, PreviousIds())
    before = {g.name: g.sub_id for g in groups}
    prev = PreviousIds(members={s.key: before[s.name] for s in subs},
                       sub_names={(g.class_id, g.name): g.sub_id for g in groups},
                       subsub={(before["水果"], "苹果"): groups[0].children["苹果"]},
                       max_id=max([*before.values(), groups[0].children["苹果"]]))
    grown = [sub("a", "一号新品"), *subs]  # sorts before every other name of class 1
    groups2, _ = build_groups(grown, [], set(), {})
    assign_ids(groups2, grown, prev)
    after = {g.name: g.sub_id for g in groups2}
    assert {k: after[k] for k in before} == before
    assert after["一号新品"] == prev.max_id + 1
    fresh, _ = build_groups(grown, [], set(), {})
    assign_ids(fresh, grown, PreviousIds())  # what a renumbering would have done
    assert {g.name: g.sub_id for g in fresh}["茶杯"] != before["茶杯"]


def test_a_group_keeps_the_id_most_of_its_members_had():
    subs = [sub("a", "婴幼奶粉", n=5), sub("b", "婴幼儿奶粉", n=50)]
    prev = PreviousIds(members={subs[0].key: 7}, sub_names={(1, "婴幼奶粉"): 7}, max_id=9)
    groups, _ = build_groups(subs, [(0, 1)], set(), {})  # now merged, and named after b
    assign_ids(groups, subs, prev)
    assert groups[0].name == "婴幼儿奶粉" and groups[0].sub_id == 7


def test_decisions_of_many_pairs_at_once_equal_one_by_one():
    """decide_arrays (numpy, every pair of a run at once) gives decide's decision, reason and margin bit for
    bit, on the thresholds' edges (S_label = 0.5, S_content = 0.75, -0.0 margins), without content, with
    identical names, with merge_empty_by_name on and off."""
    from m5data.align.candidates import REASONS, decide_arrays

    values = [0.0, 0.1, 0.49999999999999994, 0.5, 0.5000000000000001, 0.74, 0.75, 0.7500000000000001, 0.9, 1.0]
    grid = [(lab, con, same) for lab in values for con in values + [math.nan] for same in (False, True)]
    s_label, s_content, same = (np.array(column) for column in zip(*grid))
    for empty in (False, True):
        merge, reason, margin = decide_arrays(s_label, s_content, same, label_threshold=0.5, content_threshold=0.75,
                                              merge_empty_by_name=empty)
        for k, (lab, con, sm) in enumerate(grid):
            d, r, m = decide(lab, con, sm, label_threshold=0.5, content_threshold=0.75, merge_empty_by_name=empty)
            assert (d, r) == ("merge" if merge[k] else "keep", REASONS[reason[k]]), (lab, con, sm)
            assert repr(m) == repr(float(margin[k])), (lab, con, sm)  # repr: -0.0 and 0.0 differ
