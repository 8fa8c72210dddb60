"""The matcher's linear part: a logistic regression over the same pair features as the trees, kept as
plain numbers (no pickle) and blended with the trees' log-odds.

Each feature enters twice: its value (NaN read as 0) and a flag "missing". The columns are standardised
for the fit (scikit-learn's ``StandardScaler``, then ``LogisticRegression`` with C = 1) and the scaling
folded into the coefficients, so the saved part is ``intercept + value . coef + missing . miss``.
A linear score varies smoothly with every feature, where trees fitted on a few hundred labels of one
kind of product jump at thresholds that only those products set: on pairs unlike the training ones
(another category, words the labels never held) the blend degrades more gently than the trees alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIXES = (0.5, 0.0, 1.0)  # the linear part's share of the log-odds training chooses among (ties: first)


def design(x: np.ndarray) -> np.ndarray:
    """Values (NaN as 0) beside missing flags: the regression's columns."""
    x = np.asarray(x, np.float64)
    return np.c_[np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), np.isnan(x)]


@dataclass
class Linear:
    """``intercept + value . coef + missing . miss`` per pair; ``mix``: its share of the model's log-odds."""

    coef: np.ndarray
    miss: np.ndarray
    intercept: float
    mix: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, mix: float = 0.5) -> Linear:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        z = design(x)
        sc = StandardScaler().fit(z)
        m = LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(z), y, sample_weight=w)
        coef = m.coef_.ravel() / sc.scale_
        intercept = float(m.intercept_[0] - coef @ sc.mean_)
        n = x.shape[1]
        return cls(coef=coef[:n], miss=coef[n:], intercept=intercept, mix=mix)

    def raw(self, x: np.ndarray) -> np.ndarray:
        z = design(x)
        n = len(self.coef)
        return self.intercept + z[:, :n] @ self.coef + z[:, n:] @ self.miss

    def to_json(self) -> dict:
        return {"coef": self.coef.tolist(), "missing": self.miss.tolist(), "intercept": self.intercept, "mix": self.mix}

    @classmethod
    def from_json(cls, d: dict, n_features: int) -> Linear:
        coef, miss = np.asarray(d["coef"], np.float64), np.asarray(d["missing"], np.float64)
        if len(coef) != n_features or len(miss) != n_features:
            raise ValueError(f"linear part of {len(coef)} coefficients for {n_features} features")
        mix = float(d["mix"])
        if not 0.0 <= mix <= 1.0 or not np.isfinite(coef).all() or not np.isfinite(miss).all():
            raise ValueError("linear part out of range")
        return cls(coef=coef, miss=miss, intercept=float(d["intercept"]), mix=mix)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def mixed(trees_logit: np.ndarray, linear_logit: np.ndarray, mix: float) -> np.ndarray:
    """P(match) of the blend: ``(1 - mix)`` of the trees' log-odds plus ``mix`` of the linear part's."""
    return 1.0 / (1.0 + np.exp(-((1.0 - mix) * trees_logit + mix * linear_logit)))
