"""Fitting the matcher: cross-validated out-of-fold scores, the operating threshold, the final model.

The threshold is read off *held-out* scores only: every labelled pair is scored by a model that never
saw it (folds grouped by the first product, so a product's pairs are never on both sides), and the
threshold is the score of best held-out F1 among those whose held-out pairs above it reach
``matcher.precision``.
The saved validation figures are those held-out figures, not the training fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..kernels.pair_features import FEATURES
from ..kernels.pair_model import MatcherError, Model, Trees
from ..kernels.trees import classifier, one_thread


@dataclass
class Fit:
    """A fitted model and its held-out figures."""

    model: Model
    oof: np.ndarray  # out-of-fold P(match) per labelled pair
    seconds: float


def usable(x: np.ndarray) -> np.ndarray:
    """Columns with at least one value and not constant: a column without evidence in this store is left
    out of the model (and named in its ``features``) rather than learnt as noise."""
    ok = ~np.isnan(x).all(axis=0)
    lo, hi = np.nanmin(np.where(ok, x, 0), axis=0), np.nanmax(np.where(ok, x, 0), axis=0)
    return ok & ((hi > lo) | np.isnan(x).any(axis=0))


def out_of_fold(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, a, seed: int) -> np.ndarray:
    """Each pair's P(match) from a model fitted on the other folds (``a``: the ``[matcher]`` settings)."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(a.folds, int(y.sum()), int((~y).sum()))
    if k < 2:
        raise MatcherError(f"need at least 2 matching and 2 non-matching labelled pairs, have {int(y.sum())} "
                           f"and {int((~y).sum())}")
    oof = np.zeros(len(y))
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups)
    for i, (tr, te) in enumerate(folds):
        if y[tr].all() or not y[tr].any():
            raise MatcherError("a cross-validation fold holds one class only: label more pairs of both kinds")
        # a column with no value in this fold's training part (few labels: the evidence sits in the held-out
        # fold) is constant there, never split on (the trees' binning refuses a column of NaN only)
        xf = np.where(np.isnan(x[tr]).all(axis=0), 0.0, x)
        oof[te] = classifier(a, seed + i).fit(xf[tr], y[tr], sample_weight=w[tr]).predict_proba(xf[te])[:, 1]
    return oof


def choose_threshold(scores: np.ndarray, y: np.ndarray, precision: float) -> tuple[float, bool]:
    """Among the thresholds whose accepted pairs (score >= it) reach ``precision``, the one of best F1
    (the lowest on ties: most recall); ``(threshold, reached)``. When none reaches it: the most precise
    one, and ``reached`` False. Best F1 rather than simply the lowest: where the held-out scores separate
    the classes, the lowest would admit negatives down to exactly ``precision``, a margin of nothing."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order].astype(np.float64)
    tp = np.cumsum(t)
    prec = tp / np.arange(1, len(t) + 1)
    f1 = 2 * tp / (np.arange(1, len(t) + 1) + max(t.sum(), 1))
    last = np.r_[s[1:] != s[:-1], True]  # a threshold accepts every pair of equal score
    ok = last & (prec >= precision)
    if ok.any():
        cand = np.flatnonzero(ok)
        best = cand[f1[cand] >= f1[cand].max() - 1e-12][-1]
        return float(s[best]), True
    cand = np.flatnonzero(last)
    return float(s[cand[np.argmax(prec[cand])]]), False


def figures(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Precision, recall, F1 at ``threshold``, AUC, best F1, and an 11-point precision-recall curve."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    acc = scores >= threshold
    tp = int((acc & y).sum())
    p = tp / max(int(acc.sum()), 1)
    r = tp / max(int(y.sum()), 1)
    pr, rc, _ = precision_recall_curve(y, scores)
    f = 2 * pr * rc / np.maximum(pr + rc, 1e-12)
    curve = [[round(float(x), 4), round(float(pr[rc >= x].max()), 4)] for x in np.linspace(0, 1, 11)]
    return {"pairs": int(len(y)), "matches": int(y.sum()), "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / max(p + r, 1e-12), 4), "auc": round(float(roc_auc_score(y, scores)), 4),
            "best_f1": round(float(f.max()), 4), "pr_curve": curve}


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, settings, version: str) -> Fit:
    """Cross-validate, choose the threshold on the held-out scores, fit the final model on every pair."""
    a = settings.matcher
    t0 = time.perf_counter()
    y = np.asarray(y, bool)
    keep = usable(x)
    xs = x[:, keep]
    # one OpenMP thread: on a shared, loaded machine the trees' parallel split search spins waiting
    # for its threads (Abt-Buy's 6 fits: 332 s with 2 threads at load average 9, seconds with one)
    with one_thread():
        oof = out_of_fold(xs, y, w, groups, a, settings.annotate.seed)
        final = classifier(a, settings.annotate.seed).fit(xs, y, sample_weight=w)
    threshold, reached = choose_threshold(oof, y, a.precision)
    validation = {"folds": min(a.folds, int(y.sum()), int((~y).sum())), "target_precision": a.precision,
                  "target_reached": reached, **figures(oof, y, threshold)}
    model = Model(version=version, features=[n for n, k in zip(FEATURES, keep) if k],
                  baseline=float(np.ravel(final._baseline_prediction)[0]), trees=Trees.from_sklearn(final),
                  threshold=threshold, validation=validation)
    return Fit(model=model, oof=oof, seconds=time.perf_counter() - t0)
