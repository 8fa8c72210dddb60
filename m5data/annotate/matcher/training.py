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

from .features import FEATURES
from .linear import MIXES, Linear, logit, mixed
from .model import MatcherError, Model, Trees
from .trees import classifier, one_thread


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


def folds(x: np.ndarray, y: np.ndarray, groups: np.ndarray, a, seed: int) -> list:
    """The cross-validation folds ``(training rows, held-out rows)``: ``a.folds`` (fewer where a class has
    fewer pairs), stratified, grouped by ``groups``, seeded."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(a.folds, int(y.sum()), int((~y).sum()))
    if k < 2:
        raise MatcherError(f"need at least 2 matching and 2 non-matching labelled pairs, have {int(y.sum())} "
                           f"and {int((~y).sum())}")
    out = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups))
    if any(y[tr].all() or not y[tr].any() for tr, _ in out):
        raise MatcherError("a cross-validation fold holds one class only: label more pairs of both kinds")
    return out


def out_of_fold(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, a, seed: int) -> np.ndarray:
    """Each pair's P(match) from a model fitted on the other folds (``a``: the ``[matcher]`` settings)."""
    oof = np.zeros(len(y))
    for i, (tr, te) in enumerate(folds(x, y, groups, a, seed)):
        # a column with no value in this fold's training part (few labels: the evidence sits in the held-out
        # fold) is constant there, never split on (the trees' binning refuses a column of NaN only)
        xf = np.where(np.isnan(x[tr]).all(axis=0), 0.0, x)
        oof[te] = classifier(a, seed + i).fit(xf[tr], y[tr], sample_weight=w[tr]).predict_proba(xf[te])[:, 1]
    return oof


def linear_out_of_fold(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, a, seed: int) -> np.ndarray:
    """Each pair's log-odds from the linear part (:class:`.linear.Linear`) fitted on the other folds
    (the folds of :func:`out_of_fold`)."""
    oof = np.zeros(len(y))
    for tr, te in folds(x, y, groups, a, seed):
        oof[te] = Linear.fit(x[tr], y[tr], w[tr]).raw(x[te])
    return oof


def choose_mix(tree_oof: np.ndarray, linear_oof: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """The linear part's share of the log-odds (:data:`.linear.MIXES`) of best held-out AUC (ties: the
    first listed, the even blend), its held-out P(match), and each share's AUC."""
    from sklearn.metrics import roc_auc_score

    t = logit(tree_oof)
    got = {m: mixed(t, linear_oof, m) for m in MIXES}
    auc = {m: float(roc_auc_score(y, p)) for m, p in got.items()}
    best = max(MIXES, key=lambda m: (round(auc[m], 4), -MIXES.index(m)))
    return best, got[best], {str(m): round(v, 4) for m, v in auc.items()}


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
        tree_oof = out_of_fold(xs, y, w, groups, a, settings.annotate.seed)
        final = classifier(a, settings.annotate.seed).fit(xs, y, sample_weight=w)
    # the trees blended with a logistic regression on the same folds, the linear share chosen by held-out AUC
    mix, oof, mix_auc = choose_mix(tree_oof, linear_out_of_fold(xs, y, w, groups, a, settings.annotate.seed), y)
    threshold, reached = choose_threshold(oof, y, a.precision)
    validation = {"folds": min(a.folds, int(y.sum()), int((~y).sum())), "target_precision": a.precision,
                  "target_reached": reached, "linear_mix": mix, "mix_auc": mix_auc, **figures(oof, y, threshold)}
    model = Model(version=version, features=[n for n, k in zip(FEATURES, keep) if k],
                  baseline=float(np.ravel(final._baseline_prediction)[0]), trees=Trees.from_sklearn(final),
                  threshold=threshold, validation=validation, linear=Linear.fit(xs, y, w, mix))
    return Fit(model=model, oof=oof, seconds=time.perf_counter() - t0)
