"""Precision, recall and F1 of predicted pairs against a truth's pairs: the one definition behind
align's merge score (pairs of merged sub-classes) and annotate dedup's (pairs of same-group products)."""

from __future__ import annotations


def share(part: int, whole: int) -> float:
    """``part / whole``, or 1.0 when ``whole`` is 0 (nothing predicted is nothing wrong; nothing to find, nothing missed)."""
    return part / whole if whole else 1.0


class PairRates:
    """Mixin of a score with ``true_pairs``, ``predicted_pairs`` and ``correct_pairs`` (ints)."""

    @property
    def precision(self) -> float:
        return share(self.correct_pairs, self.predicted_pairs)

    @property
    def recall(self) -> float:
        return share(self.correct_pairs, self.true_pairs)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0
