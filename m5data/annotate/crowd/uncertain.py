"""Active learning: the pool pairs the matcher is least sure of, for the next crowd round
(``m5data annotate tasks --uncertain N``).

"Least sure" is nearest to the model's saved threshold in log-odds: a pair there is the one whose
label would move the operating point most; a pair at P = 0.02 or 0.98 teaches little. Pairs the
crowd has already judged (rows of ``matches``, either way round: ``(a, b)`` and ``(b, a)`` are one
question, one training pair) are never asked again.
"""

from __future__ import annotations

import numpy as np

from ..kernels.pair_model import load_model, score
from ..kernels.pair_products import read_store


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def least_sure(store, settings, pairs: list[tuple], n: int, model: str | None = None) -> tuple[list[tuple], list[float]]:
    """The ``n`` pairs of ``pairs`` (tuples starting ``query_id, candidate_id``) nearest the threshold,
    nearest first, with their scores; pairs already in ``matches`` (either way round) are left out."""
    m = load_model(store, model)
    con = store.connect(only=("matches",))
    try:
        done = set(con.sql("SELECT query_id, candidate_id FROM matches").fetchall())
    except Exception:  # noqa: BLE001 - no matches table yet: nothing judged
        done = set()
    finally:
        con.close()
    pairs = [p for p in pairs if (p[0], p[1]) not in done and (p[1], p[0]) not in done]  # either way round: one pair
    if not pairs or n <= 0:
        return [], []
    products = read_store(store, settings.dedup.brand_property)
    idx = products.index()
    pairs = [p for p in pairs if p[0] in idx and p[1] in idx]
    s = score(m, products, np.array([idx[p[0]] for p in pairs], np.int64), np.array([idx[p[1]] for p in pairs], np.int64),
              settings.matcher.text_model)
    order = nearest_threshold(s, m.threshold, n)
    return [pairs[i] for i in order], [float(s[i]) for i in order]


def nearest_threshold(scores: np.ndarray, threshold: float, n: int) -> np.ndarray:
    """Indices of the ``n`` scores nearest ``threshold`` in log-odds, nearest first (ties: first given)."""
    return np.argsort(np.abs(_logit(np.asarray(scores, np.float64)) - _logit(np.array([threshold]))), kind="stable")[:n]
