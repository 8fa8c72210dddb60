"""The demo shop's taxonomy: the embedded MEP-3M tree and the platforms' derived names."""

from __future__ import annotations

import csv
import random
from collections import Counter

import pytest

from m5data.demo import vocab
from m5data.demo.taxonomy import Taxonomy, label_ratio, mep3m_taxonomy, nouns_of


def test_embedded_taxonomy_is_mep3m(realdata):
    classes, subs, children = mep3m_taxonomy()
    rows = list(csv.DictReader(open(realdata / "mep3m" / "dataset_info.csv", encoding="utf-8")))
    assert classes == {int(r["class_id"]): r["class_name"] for r in rows}
    assert subs == {int(r["sub_class_id"]): (int(r["class_id"]), r["sub_class_name"]) for r in rows}
    real_children = {(int(r["sub_class_id"]), int(r["subsub_class_id"]), r["subsub_class_name"])
                     for r in rows if r["subsub_class_id"] != "0"}
    assert {(s, i, n) for s, kids in children.items() for i, n in kids} == real_children
    assert (len(classes), len(subs), len(real_children)) == (14, 599, 89)


def test_name_variants_are_what_their_kind_says():
    _, subs, _ = mep3m_taxonomy()
    names = {n for _, n in subs.values()}
    for unified, other in vocab.DIFFERENT_NAMES.items():
        assert unified in names and label_ratio(unified, other) < 0.5
    for unified, other in vocab.TABLE3_PAIRS:
        assert unified in names and (unified == other or 0.5 <= label_ratio(unified, other) < 0.99)
    assert set(vocab.SHOPB_LEVEL1) == set(range(1, 15))


@pytest.mark.parametrize("n_subclasses", [6, 100, 700])
def test_taxonomy_sizes_and_kinds(n_subclasses):
    tax = Taxonomy(random.Random(7), n_subclasses)
    assert len(tax.subs) == n_subclasses
    assert len({s.sub_id for s in tax.subs}) == n_subclasses
    kinds = Counter(s.kind for s in tax.subs)
    if n_subclasses >= 100:
        assert {"exact", "near", "different", "finer", "single"} <= set(kinds)
        assert len({s.class_id for s in tax.subs}) == 14
    if n_subclasses > 599:
        assert any(s.synthetic and s.sub_id >= 1000 for s in tax.subs)
    for s in tax.subs:
        assert set(s.names) == set(s.presence) and s.nouns and s.brands
        if s.kind == "near":
            assert 0.5 <= label_ratio(s.names["shopa"], s.names["shopb"]) < 0.99
    for platform in ("shopa", "shopb"):  # level-2 names stay unique within a level-1 class
        seen = Counter((s.class_id, s.names[platform]) for s in tax.subs if platform in s.names)
        assert max(seen.values()) == 1


def test_nouns_of_category_names():
    assert nouns_of("咖啡/奶茶", 5) == ["咖啡", "奶茶"]
    assert nouns_of("洗（烘）衣机", 2) == ["洗衣机"]
    assert nouns_of("四川", 5) == ["四川特产"]
