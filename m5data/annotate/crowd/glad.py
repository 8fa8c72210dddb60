"""Aggregation of binary crowd labels: GLAD (with gold clamping), Dawid-Skene and majority vote.

All three work on three parallel integer arrays, one entry per judgement: ``task`` (pair index),
``worker`` (worker index) and ``label`` (1 = match, 0 = mismatch), and return the probability that
each task is a match.

GLAD (Whitehill et al. 2009): worker ``i`` labels task ``j`` correctly with probability
``sigmoid(alpha_i * beta_j)``, ``alpha_i`` the ability (negative: adversarial), ``beta_j = exp(b_j)``
the inverse difficulty. EM: the E-step computes each task's posterior; the M-step maximises the
expected log-likelihood plus Gaussian priors (``alpha ~ N(1, 1)``, ``b ~ N(1, 1)``, as crowd-kit)
by conjugate gradients over all parameters at once, every sum a ``np.bincount``. The papers'
weighted GLAD uses gold questions: a gold task's posterior is clamped to its known label in every
E-step, and each worker's ability starts from its accuracy on the gold questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("glad", "majority", "dawid_skene")


@dataclass
class Result:
    """Per-task probability of match; per-worker ability (GLAD alpha, or DS/majority accuracy)."""

    prob: np.ndarray
    ability: np.ndarray
    difficulty: np.ndarray | None = None  # GLAD beta per task
    iterations: int = 0
    prior: float = 0.5


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)), stable both ways (faster than -logaddexp(0, -x))."""
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _one_blas_thread():
    """BLAS threads cost more than they give on the M-step's vector operations (and thrash on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def gold_accuracy(task, worker, label, gold: np.ndarray, n_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(share right, gold judgements) per worker; ``gold`` is -1 or the known label per task."""
    g = gold[task]
    on_gold = g >= 0
    n = np.bincount(worker[on_gold], minlength=n_workers).astype(float)
    right = np.bincount(worker[on_gold], weights=(label[on_gold] == g[on_gold]).astype(float), minlength=n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, right / np.maximum(n, 1), np.nan), n


def glad(task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_tasks: int, n_workers: int, *,
         gold: np.ndarray | None = None, prior: float | None = None, max_iter: int = 100, tol: float = 1e-6,
         m_step_iter: int = 25, alpha_prior: float = 1.0, beta_prior: float = 1.0) -> Result:
    """GLAD by EM. Returns P(match) per task, alpha per worker, beta per task.

    Args:
        task, worker, label: one entry per judgement (label 1 = match, 0 = mismatch).
        gold: per task -1, or its known label (clamped in every E-step; abilities start from gold accuracy).
        prior: P(match) before any judgement; None = re-estimated in every M-step from the posteriors.
        max_iter: EM iterations at most; stops when the objective gains less than ``tol`` (relative).
        m_step_iter: conjugate-gradient iterations per M-step.
        alpha_prior, beta_prior: means of the Gaussian priors of alpha and of log beta (crowd-kit's 1, 1).
    """
    from scipy.optimize import minimize

    task = np.asarray(task, np.int64)
    worker = np.asarray(worker, np.int64)
    y = np.asarray(label, np.float64)
    gold = np.full(n_tasks, -1, np.int64) if gold is None else np.asarray(gold, np.int64)
    clamped = gold >= 0
    alpha = np.full(n_workers, alpha_prior, np.float64)
    b = np.full(n_tasks, beta_prior, np.float64)
    if clamped.any():
        acc, n_gold = gold_accuracy(task, worker, label.astype(np.int64), gold, n_workers)
        smoothed = (np.nan_to_num(acc) * n_gold + 1) / (n_gold + 2)  # Laplace: one gold answer is no proof
        alpha = np.where(n_gold > 0, np.log(smoothed / (1 - smoothed)) / np.exp(beta_prior), alpha)
    pi = 0.5 if prior is None else prior

    def e_step(alpha, b, pi):
        ab = alpha[worker] * np.exp(b[task])
        right, wrong = _log_sigmoid(ab), _log_sigmoid(-ab)
        # log P(labels | z = 1) and | z = 0, summed per task
        l1 = np.bincount(task, weights=np.where(y == 1, right, wrong), minlength=n_tasks)
        l0 = np.bincount(task, weights=np.where(y == 0, right, wrong), minlength=n_tasks)
        a1, a0 = l1 + np.log(pi), l0 + np.log(1 - pi)
        post = np.exp(a1 - np.logaddexp(a1, a0))
        post[clamped] = gold[clamped]
        return post

    n_a = n_workers

    def objective(x, p_right):
        """Minus (expected log-likelihood + log priors) and its gradient; p_right = P(label is the true one)."""
        a, bb = x[:n_a], x[n_a:]
        beta = np.exp(bb)[task]
        ab = a[worker] * beta
        ls = _log_sigmoid(ab)  # log sigmoid(-ab) = ls - ab: one transcendental pass, not two
        val = (ls - (1 - p_right) * ab).sum() - 0.5 * ((a - alpha_prior) ** 2).sum() - 0.5 * ((bb - beta_prior) ** 2).sum()
        resid = p_right - np.exp(ls)  # d q / d(ab)
        ga = np.bincount(worker, weights=resid * beta, minlength=n_a) - (a - alpha_prior)
        gb = np.bincount(task, weights=resid * ab, minlength=n_tasks) - (bb - beta_prior)
        return -val, -np.concatenate([ga, gb])

    def right(post):
        return np.where(y == 1, post[task], 1 - post[task])

    post = e_step(alpha, b, pi)
    last = -np.inf
    it = 0
    with _one_blas_thread():
        for it in range(1, max_iter + 1):
            res = minimize(objective, np.concatenate([alpha, b]), args=(right(post),), jac=True, method="CG",
                           options={"maxiter": m_step_iter, "gtol": 1e-4})
            alpha, b = res.x[:n_a], res.x[n_a:]
            if prior is None:
                pi = float(np.clip(post.mean(), 1e-4, 1 - 1e-4))
            post = e_step(alpha, b, pi)
            q = -objective(res.x, right(post))[0]
            if abs(q - last) <= tol * max(abs(q), 1.0):
                break
            last = q
    return Result(post, alpha, np.exp(b), it, pi)


def majority(task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_tasks: int, n_workers: int,
             gold: np.ndarray | None = None) -> Result:
    """Share of "match" votes per task (gold tasks: their known label); ability = agreement with the majority."""
    votes = np.bincount(task, minlength=n_tasks).astype(float)
    yes = np.bincount(task, weights=label.astype(float), minlength=n_tasks)
    prob = np.where(votes > 0, yes / np.maximum(votes, 1), 0.5)
    if gold is not None:
        prob = np.where(gold >= 0, gold, prob)
    decided = (prob > 0.5).astype(int)
    agree = np.bincount(worker, weights=(label == decided[task]).astype(float), minlength=n_workers)
    n = np.bincount(worker, minlength=n_workers)
    return Result(prob, agree / np.maximum(n, 1))


def dawid_skene(task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_tasks: int, n_workers: int, *,
                gold: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-6) -> Result:
    """Dawid-Skene (one 2x2 confusion matrix per worker) by EM from majority vote; gold tasks clamped.

    Ability = the worker's balanced accuracy (mean of its two diagonal entries).
    """
    y = label.astype(np.int64)
    post = majority(task, worker, label, n_tasks, n_workers, gold).prob
    clamped = np.zeros(n_tasks, bool) if gold is None else gold >= 0
    it = 0
    conf = np.full((n_workers, 2, 2), 0.5)
    pi = 0.5
    last = None
    for it in range(1, max_iter + 1):
        # M-step: conf[w, z, l] = P(worker says l | true z), with add-0.01 smoothing
        pz1 = post[task]
        for z, wz in ((1, pz1), (0, 1 - pz1)):
            for lab in (0, 1):
                conf[:, z, lab] = np.bincount(worker, weights=wz * (y == lab), minlength=n_workers) + 0.01
            conf[:, z, :] /= conf[:, z, :].sum(axis=1, keepdims=True)
        pi = float(np.clip(post.mean(), 1e-4, 1 - 1e-4))
        # E-step
        l1 = np.bincount(task, weights=np.log(conf[worker, 1, y]), minlength=n_tasks) + np.log(pi)
        l0 = np.bincount(task, weights=np.log(conf[worker, 0, y]), minlength=n_tasks) + np.log(1 - pi)
        new = np.exp(l1 - np.logaddexp(l1, l0))
        if gold is not None:
            new[clamped] = gold[clamped]
        if last is not None and np.abs(new - post).max() < tol:
            post = new
            break
        post, last = new, post
    return Result(post, (conf[:, 0, 0] + conf[:, 1, 1]) / 2, None, it, pi)


def aggregate(method: str, task, worker, label, n_tasks: int, n_workers: int, *, gold=None,
              max_iter: int = 100, tol: float = 1e-6) -> Result:
    """Run one of :data:`METHODS`."""
    if method == "glad":
        return glad(task, worker, label, n_tasks, n_workers, gold=gold, max_iter=max_iter, tol=tol)
    if method == "majority":
        return majority(task, worker, label, n_tasks, n_workers, gold=gold)
    if method == "dawid_skene":
        return dawid_skene(task, worker, label, n_tasks, n_workers, gold=gold, max_iter=max_iter, tol=tol)
    raise ValueError(f"unknown aggregation method {method!r} ({', '.join(METHODS)})")
