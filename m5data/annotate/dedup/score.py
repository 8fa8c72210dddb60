"""Scoring dedup's groups against a demo world's truth (``m5data annotate dedup --score-against``):
pair precision and recall of "same group" against the truth's instances. Reads rows only, writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

from ...scoring import PairRates


@dataclass
class PairScore(PairRates):
    """Pair precision / recall of "same group" against a truth's instances."""

    products: int = 0  # products scored (in both the store and the truth)
    true_pairs: int = 0
    predicted_pairs: int = 0
    correct_pairs: int = 0
    examples_false: list[tuple[str, str]] = field(default_factory=list)
    examples_missed: list[tuple[str, str]] = field(default_factory=list)


def _pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}


def score_groups(rows: list[dict], truth_rows: list[dict], examples: int = 10) -> PairScore:
    """Pair precision and recall of the ``dedup`` rows' groups against the truth's ``instance_id``."""
    instance = {r["product_id"]: r["instance_id"] for r in truth_rows}
    rows = [r for r in rows if r["product_id"] in instance]
    pred: dict[str, list[str]] = {}
    true: dict[str, list[str]] = {}
    for r in rows:
        pred.setdefault(r["group_id"], []).append(r["product_id"])
        true.setdefault(instance[r["product_id"]], []).append(r["product_id"])
    p, t = _pairs_of(pred), _pairs_of(true)
    score = PairScore(products=len(rows), true_pairs=len(t), predicted_pairs=len(p), correct_pairs=len(p & t))
    score.examples_false = sorted(p - t)[:examples]
    score.examples_missed = sorted(t - p)[:examples]
    return score
