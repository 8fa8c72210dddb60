"""The hand-labelled MEP-3M Chinese product-matching pairs (benchmarks/data/mep3m_pairs/): the set's shape."""

import csv
import re

import pytest
from support import mep3m_pairs


@pytest.fixture
def labelled(realdata):
    return mep3m_pairs.records(), mep3m_pairs.pairs()


def test_records_are_the_thousand_titles_numbered_by_their_image(labelled):
    records, _ = labelled
    assert len(records) == 1000
    assert [r["id"] for r in records] == list(range(1, 1001))
    assert records[0]["title"].startswith("【安满孕妈奶粉】安满（Anmum）智孕宝")
    assert all(set(r) == {"id", "title", "ocr", "category"} and r["title"] for r in records)
    assert {tuple(r["category"]) for r in records} == {("母婴/玩具/童装", "孕妈奶粉")}  # one sub-class


def test_pairs_shape(labelled):
    records, pairs = labelled
    ids = {r["id"] for r in records}
    assert len(pairs) >= 600
    assert all(a in ids and b in ids and a < b for a, b, _, _ in pairs)
    assert len({(a, b) for a, b, _, _ in pairs}) == len(pairs), "a pair is labelled twice"
    assert {label for *_, label, _ in pairs} == {0, 1} and {hard for *_, hard in pairs} == {0, 1}
    hard = [p for p in pairs if p[3]]
    easy = [p for p in pairs if not p[3]]
    assert 0.4 <= len(hard) / len(pairs) <= 0.6
    assert {p[2] for p in hard} == {0, 1} and {p[2] for p in easy} == {0, 1}
    assert 0.35 <= sum(p[2] for p in pairs) / len(pairs) <= 0.5
    hard_positive = sum(p[2] for p in hard) / len(hard)
    assert 0.3 <= hard_positive <= 0.7, "the hard half needs both positives and near misses"


def test_pairs_are_the_candidates_in_order(labelled):
    _, pairs = labelled
    with open(mep3m_pairs.HERE / "candidates.csv", encoding="utf-8") as fh:
        candidates = [(int(r["a"]), int(r["b"])) for r in csv.DictReader(fh)]
    labelled_ids = [(a, b) for a, b, _, _ in pairs]
    assert labelled_ids == [c for c in candidates if c in set(labelled_ids)], "rows out of candidate order"


def test_doubtful_rows_say_why(labelled):
    """A positive where one title states a net content and the other none is a doubtful call: it has a note."""
    records, _ = labelled
    title = {r["id"]: r["title"] for r in records}
    weight = re.compile(r"\d+(?:\.\d+)?\s*(?:kg|g|克|千克|公斤)", re.I)
    rows = mep3m_pairs.rows()
    doubtful = [r for r in rows if r["note"].startswith("doubtful")]
    assert doubtful and all(len(r["note"]) > len("doubtful: ") for r in doubtful)
    for r in rows:
        stated = [bool(weight.search(title[int(r[k])])) for k in ("a", "b")]
        if r["label"] == "1" and stated[0] != stated[1]:
            assert r["note"].startswith("doubtful"), f"pair {r['a']},{r['b']}: one title states no net content"
