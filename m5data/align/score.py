"""Score an alignment (the store's ``label_map``) against a known truth, e.g. the demo shop's.

The truth is the demo shop's ``truth/alignment.parquet`` (or a folder holding it, or JSON lines):
one row per platform leaf category with ``platform``, ``level1_name``, ``level2_name``,
``level3_name``, ``class_id``, ``sub_class_id``, ``subsub_class_id`` and ``pair_kind`` (the
names ``level1``/``level2``/``level3``/``kind`` are accepted too).

Ids of two alignments need not agree, so scores compare *partitions*. A level-2 unit is one
platform sub-class (platform, level-1 name, level-2 name). Over every pair of units:
precision = pairs merged by align that the truth merges too / pairs merged by align;
recall = pairs the truth merges that align merged too / pairs the truth merges.
Level-3 units (paths with a level-3 name) are scored the same way within their sub-classes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from ..scoring import PairRates, share

_ALIASES = {"level1_name": "level1", "level2_name": "level2", "level3_name": "level3", "pair_kind": "kind"}


@dataclass
class Score(PairRates):
    units: int = 0  # truth level-2 units found in label_map
    missing: int = 0  # truth units align has not seen (not crawled)
    true_pairs: int = 0
    predicted_pairs: int = 0
    correct_pairs: int = 0
    class_correct: int = 0
    cross_class_merges: int = 0
    recall_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (found, true)
    level3_units: int = 0
    level3_precision: float = 1.0
    level3_recall: float = 1.0
    false_merges: list[tuple[str, str]] = field(default_factory=list)
    missed_merges: list[tuple[str, str, str]] = field(default_factory=list)  # a, b, kind

    @property
    def class_accuracy(self) -> float:
        return self.class_correct / self.units if self.units else 1.0


def read_truth(path: str | Path) -> list[dict]:
    """Truth alignment rows from a truth folder, a Parquet file or a JSON-lines file."""
    from ..storage.truth_files import truth_file

    path = truth_file(path, "alignment.parquet", "alignment.jsonl", "alignment.json")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    out = []
    for n, row in enumerate(rows, 1):
        row = {_ALIASES.get(k, k): v for k, v in row.items()}
        missing = {"platform", "level1", "level2", "sub_class_id"} - set(row)
        if missing:
            raise ValueError(f"truth {path} row {n} lacks {', '.join(sorted(missing))}")
        out.append(row)
    return out


def _pairs(units: dict, truth: dict, pred: dict) -> tuple[int, int, int, list, list]:
    tp = fp = fn = 0
    false, missed = [], []
    for a, b in combinations(sorted(units), 2):
        t, p = truth[a] == truth[b], pred[a] == pred[b]
        tp += t and p
        fp += p and not t
        fn += t and not p
        if p and not t:
            false.append((a, b))
        if t and not p:
            missed.append((a, b))
    return tp, fp, fn, false, missed


def score_against(store, truth_path: str | Path, examples: int = 10) -> Score:
    """Compare the store's ``label_map`` with a truth alignment."""
    truth_rows = read_truth(truth_path)
    label_rows = store.read("label_map").to_pylist()
    pred2: dict[tuple, tuple] = {}
    pred3: dict[tuple, object] = {}
    for r in label_rows:
        if r["sub_class_id"] is not None:
            key = (r["platform"], r["raw_level1"], r["raw_level2"])
            pred2[key] = (r["class_id"], r["sub_class_id"])
            if r["raw_level3"]:
                pred3[(*key, r["raw_level3"])] = (r["sub_class_id"], r["subsub_class_id"])
    true2: dict[tuple, tuple] = {}
    true3: dict[tuple, tuple] = {}
    kind: dict[tuple, str] = {}
    for r in truth_rows:
        key = (r["platform"], r["level1"], r["level2"])
        true2[key] = (r.get("class_id"), r["sub_class_id"])
        kind[key] = r.get("kind") or ""
        if r.get("level3"):
            true3[(*key, r["level3"])] = (r["sub_class_id"], r.get("subsub_class_id"))
    units = {k for k in true2 if k in pred2}
    s = Score(units=len(units), missing=len(set(true2) - units))
    s.class_correct = sum(pred2[k][0] == true2[k][0] for k in units)
    tp, fp, fn, false, missed = _pairs(units, true2, pred2)
    s.correct_pairs, s.predicted_pairs, s.true_pairs = tp, tp + fp, tp + fn
    s.cross_class_merges = sum(true2[a][0] != true2[b][0] for a, b in false)
    found: Counter = Counter()
    total: Counter = Counter()
    for a, b in combinations(sorted(units), 2):
        if true2[a] == true2[b]:
            total[kind[a]] += 1
            found[kind[a]] += pred2[a] == pred2[b]
    s.recall_by_kind = {k: (found[k], total[k]) for k in sorted(total)}
    s.false_merges = [(" / ".join(a), " / ".join(b)) for a, b in false[:examples]]
    s.missed_merges = [(" / ".join(a), " / ".join(b), kind[a]) for a, b in missed[:examples]]
    units3 = {k for k in true3 if k in pred3}
    s.level3_units = len(units3)
    tp3, fp3, fn3, _, _ = _pairs(units3, true3, pred3)
    s.level3_precision = share(tp3, tp3 + fp3)
    s.level3_recall = share(tp3, tp3 + fn3)
    return s
