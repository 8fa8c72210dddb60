"""Active learning: the pool pairs to ask the crowd next (``m5data annotate tasks --uncertain N``).

The candidates' feature vectors (the matcher's own features) fall into ``N`` k-means clusters, and of
each cluster the pair nearest the model's saved threshold in log-odds is asked: the least sure pair of
each kind of pair, not the ``N`` least sure of all. A model trained on few labels has its threshold
far from where the classes meet, and the pairs nearest it are one kind (near-identical titles of one
listing); asked alone, they taught less than random pairs (docs/annotate.md, "Active learning"). Pairs
the crowd has already judged (rows of ``matches``, either way round: ``(a, b)`` and ``(b, a)`` are one
question, one training pair) are never asked again.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..kernels.pair_model import features, load_model
from ..kernels.pair_products import read_store


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def least_sure(store, settings, pairs: list[tuple], n: int, model: str | None = None) -> tuple[list[tuple], list[float]]:
    """The ``n`` pairs of ``pairs`` (tuples starting ``query_id, candidate_id``) :func:`per_cluster` picks,
    nearest the threshold first, with their scores; pairs already in ``matches`` (either way round) are
    left out. Seeded by ``annotate.seed``."""
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
    x = features(m, products, np.array([idx[p[0]] for p in pairs], np.int64), np.array([idx[p[1]] for p in pairs], np.int64),
                 settings.matcher.text_model)
    s = m.proba(x)
    order = per_cluster(s, m.threshold, x, n, settings.annotate.seed)
    return [pairs[i] for i in order], [float(s[i]) for i in order]


def nearest_threshold(scores: np.ndarray, threshold: float, n: int) -> np.ndarray:
    """Indices of the ``n`` scores nearest ``threshold`` in log-odds, nearest first (ties: first given)."""
    return np.argsort(np.abs(_logit(np.asarray(scores, np.float64)) - _logit(np.array([threshold]))), kind="stable")[:n]


def standardised(x: np.ndarray) -> np.ndarray:
    """``x``'s columns standardised, a missing value taken as its column's median (0 where the column has none)."""
    x = np.asarray(x, np.float64)
    med = np.nanmedian(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0)
    z = np.where(np.isnan(x), med, x)
    return (z - z.mean(axis=0)) / np.maximum(z.std(axis=0), 1e-9)


def clusters(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Each row's k-means cluster of ``n`` (``seed``: the centres' start) of the :func:`standardised` rows."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    z = standardised(x)
    with threadpool_limits(1, user_api="openmp"), warnings.catch_warnings():  # threads only wait on a shared machine
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct vectors than n: per_cluster tops up
        return KMeans(n_clusters=n, n_init=3, random_state=seed).fit_predict(z)


def per_cluster(scores: np.ndarray, threshold: float, x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` pairs: the rows of ``x`` (the pairs' features) in ``n`` :func:`clusters`, of each
    cluster the pair nearest ``threshold`` in log-odds (ties drawn by ``seed``), nearest first; where the
    features hold fewer than ``n`` distinct vectors, the rest of the ``n`` nearest. With ``n`` at least the
    pairs: all of them, nearest first."""
    scores = np.asarray(scores, np.float64)
    if n >= len(scores):
        return nearest_threshold(scores, threshold, len(scores))
    if n <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    mix = rng.permutation(len(scores))  # ties (a model of few labels scores many pairs alike) drawn at random
    label = clusters(np.asarray(x)[mix], n, int(rng.integers(1 << 31)))
    near = nearest_threshold(scores[mix], threshold, len(scores))  # all of them, nearest first
    _, first = np.unique(label[near], return_index=True)  # each cluster's first in that order
    take = np.zeros(len(near), bool)
    take[first] = True
    # fewer clusters than n (fewer distinct feature vectors): the rest of the n nearest the threshold
    take[np.flatnonzero(~take)[:max(n - len(first), 0)]] = True
    return mix[near[take]]
