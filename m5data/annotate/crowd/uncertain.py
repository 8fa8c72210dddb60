"""Active learning: the pool pairs to ask the crowd next (``m5data annotate tasks --uncertain N``).

The candidates' feature vectors (the matcher's own features) fall into ``N`` k-means clusters, and of
each cluster the pair nearest the model's saved threshold in log-odds is asked: the least sure pair of
each kind of pair, not the ``N`` least sure of all. A model trained on few labels has its threshold
far from where the classes meet, and the pairs nearest it are one kind (near-identical titles of one
listing); asked alone, they taught less than random pairs (docs/annotate.md, "Active learning"). Pairs
the crowd has already judged (rows of ``matches``, either way round: ``(a, b)`` and ``(b, a)`` are one
question, one training pair) are never asked again.

Once the crowd has judged ``SWITCH`` pairs (its labels in ``matches``, a pair judged both ways round
counted once, as training counts it), the round is a committee's instead (:func:`committee`): ``COMMITTEE``
trees, each fitted on a bootstrap draw of those labels, and the pairs asked are those of the largest
spread of their P times the pair's density (its standardised features' mean cosine to the other
candidates), so that a pair the trees disagree on and like many others is asked before an outlier. On
the Chinese set's rounds of 10 (docs/annotate.md, "Chinese shop titles", row (d)) the k-means pick to 100
labels then the committee reached AUC 0.85 and 0.87 with fewer labels than random pairs; the committee
from 60 labels trailed the k-means pick up to 110 labels, and the k-means pick alone trailed random
past 120.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..matcher.model import MatcherError, features, load_model
from ..matcher.products import read_store

COMMITTEE = 5  # the committee's trees
SWITCH = 100  # the crowd's labels from which a round is the committee's (below: per_cluster)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def least_sure(store, settings, pairs: list[tuple], n: int, model: str | None = None) -> tuple[list[tuple], list[float]]:
    """The ``n`` pairs of ``pairs`` (tuples starting ``query_id, candidate_id``) to ask next, with their
    scores: :func:`per_cluster`'s pick (nearest the threshold first) while the crowd's labels in ``matches``
    are fewer than ``SWITCH`` (or all one class), then :func:`committee`'s (largest spread x density
    first); pairs already in ``matches`` (either way round) are left out. Seeded by ``annotate.seed``."""
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
    products = read_store(store, settings.annotate.brand_property)
    idx = products.index()
    pairs = [p for p in pairs if p[0] in idx and p[1] in idx]
    la, lb, ly = _crowd_labels(store, idx)
    ia = np.r_[np.array([idx[p[0]] for p in pairs], np.int64), la]
    ib = np.r_[np.array([idx[p[1]] for p in pairs], np.int64), lb]
    x = features(m, products, ia, ib, settings.annotate.text_model)  # the candidates', then the labelled pairs'
    x, xl = x[:len(pairs)], x[len(pairs):]
    s = m.proba(x)
    if len(ly) >= SWITCH and ly.any() and not ly.all():
        order = committee(xl, ly, x, trained_with(m), n, np.random.default_rng(settings.annotate.seed))
    else:
        order = per_cluster(s, m.threshold, x, n, settings.annotate.seed)
    return [pairs[i] for i in order], [float(s[i]) for i in order]


def trained_with(model) -> object:
    """The ``[matcher]`` settings ``model`` was fitted with, as the matcher stage kept them in its file
    (``meta["trees"]``): the committee's trees are the matcher's kind. Crowd reads what the matcher kept,
    never the ``[matcher]`` section (a stage reads its own settings section only: the section may have
    changed since the model was trained); a model from before it was kept: the defaults."""
    import dataclasses

    from ...config import MatcherSettings

    known = {f.name for f in dataclasses.fields(MatcherSettings)}
    kept = {k: v for k, v in dict(model.meta.get("trees") or {}).items() if k in known}
    return dataclasses.replace(MatcherSettings(), **kept)


def _crowd_labels(store, idx: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crowd's labelled pairs as training reads them (rows, match or not); none without ``matches``."""
    from ..matcher.labels import crowd_labels

    try:
        a, b, y, _ = crowd_labels(store, idx, {})
    except MatcherError:  # no labels in matches: nothing judged yet
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return a, b, y


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


def density(x: np.ndarray) -> np.ndarray:
    """Each row's :func:`standardised` features' mean cosine to the rows, scaled to [0, 1]: high for a
    pair like many others, low for an outlier."""
    z = standardised(x)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)
    return (z @ z.mean(axis=0) + 1) / 2


def spread(xl: np.ndarray, yl: np.ndarray, x: np.ndarray, matcher, rng: np.random.Generator,
           size: int = COMMITTEE) -> np.ndarray:
    """The standard deviation, per row of ``x``, of the P of ``size`` trees (the matcher's, ``matcher``: its
    settings), each fitted on a bootstrap draw (by ``rng``) of the labelled pairs ``xl``, ``yl`` holding
    both classes (``yl`` must)."""
    from ..matcher.trees import classifier, one_thread

    yl = np.asarray(yl, bool)
    if yl.all() or not yl.any():
        raise ValueError("a committee needs labels of both classes")
    ps: list[np.ndarray] = []
    with one_thread():
        while len(ps) < size:
            b = rng.integers(0, len(yl), len(yl))
            if yl[b].all() or not yl[b].any():
                continue
            xb = xl[b]  # a column no pair of the draw has: 0 (the trees' binning fails on a column of no values)
            xb = np.where(np.isnan(xb).all(axis=0), 0.0, xb)
            ps.append(classifier(matcher, len(ps)).fit(xb, yl[b]).predict_proba(x)[:, 1])
    return np.std(ps, axis=0)


def committee(xl: np.ndarray, yl: np.ndarray, x: np.ndarray, matcher, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``n`` rows of ``x`` (the candidates' features) of the largest :func:`spread` of a
    committee fitted on the labelled ``xl``, ``yl``, times their :func:`density`, largest first (ties:
    first given)."""
    return np.argsort(-spread(xl, yl, x, matcher, rng) * density(x), kind="stable")[:max(n, 0)]
