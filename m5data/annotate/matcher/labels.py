"""The crowd's ``matches`` as labelled pairs, one per two products: what the matcher trains on and what
active learning counts."""

from __future__ import annotations

import numpy as np

from .model import MatcherError


def crowd_labels(store, index: dict[str, int], skipped: dict) -> tuple[np.ndarray, ...]:
    """The ``matches`` table as one labelled pair per two products: rows, targets (prob >= 0.5) and
    weights (how sure the label is: max(prob, 1 - prob)).

    A pair that two queries' pools both hold is in ``matches`` twice, ``(a, b)`` and ``(b, a)``, each
    judged by its own workers: two independent verdicts on one question. They are combined into one
    probability (their log-odds added: :func:`combined`), so the pair is one training example with one
    label. Kept apart (before), a pair the crowd got wrong one way round and right the other was two
    examples with opposite labels, one of them in a held-out fold scored by a model trained on the other:
    on the 300-product demo world 12 of the 2,367 pairs judged twice, 9 of them true pairs labelled
    "no" one way round at the top of the held-out scores, where they capped the held-out precision
    under ``matcher.precision`` but for the top 2 pairs (threshold 0.998, held-out recall 0.03).
    Each pair's rows are (lower, higher) product row; the pairs are sorted."""
    t = store.read("matches", columns=["query_id", "candidate_id", "prob"]).to_pydict()
    pairs: dict[tuple[int, int], list[float]] = {}
    for q, c, p in zip(t["query_id"], t["candidate_id"], t["prob"]):
        if p is None:
            skipped["no probability (only uncertain judgements)"] = skipped.get("no probability (only uncertain judgements)", 0) + 1
        elif q not in index or c not in index:
            skipped["product no longer in the store"] = skipped.get("product no longer in the store", 0) + 1
        else:
            a, b = index[q], index[c]
            pairs.setdefault((min(a, b), max(a, b)), []).append(p)
    if not pairs:
        raise MatcherError("no crowd labels in matches: run `m5data annotate aggregate` first, or pass --labels FILE")
    keys = sorted(pairs)
    prob = np.array([combined(pairs[k]) for k in keys])
    return (np.array([a for a, _ in keys], np.int64), np.array([b for _, b in keys], np.int64), prob >= 0.5,
            np.maximum(prob, 1.0 - prob))


def combined(probs: list[float], clip: float = 1e-6) -> float:
    """One probability of independent verdicts on one pair: their log-odds added (each clipped to
    ``[clip, 1 - clip]``, so a certain verdict does not make the sum infinite). Each verdict's
    probability already holds the crowd's prior, which the sum then counts once per verdict: with
    matches rarer than not, a lean towards "no match"."""
    p = np.clip(np.asarray(probs, np.float64), clip, 1.0 - clip)
    return float(1.0 / (1.0 + np.exp(-np.log(p / (1.0 - p)).sum())))
