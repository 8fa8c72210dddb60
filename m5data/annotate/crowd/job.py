"""The crowd stage's job (``m5data annotate aggregate``, the contract's ``crowd`` run): judgements ->
accepted matches. ``aggregate`` reads ``annotations`` (:func:`read_judgements`) and runs GLAD with gold
clamping (default), majority vote or Dawid-Skene (glad.py) -> ``matches`` (probability, accepted) and
``workers`` (ability, gold accuracy). Here too what every crowd verb shares: the ``[crowd]`` settings check,
:class:`CrowdError`, a demo world's truth and the simulated workers' file.

Gold questions: a pair's known answer is stored as one more ``annotations`` row by the reserved
worker ``@gold`` (is_gold true); the workers' judgements of a gold pair carry ``is_gold`` true too.
Every worker id starting with ``@`` (after NFKC folding and dropping invisible characters: ``＠GOLD``
and ``\u200b@gold`` too) is reserved for the store, so no imported or UI worker can write or pass for
a known answer; an id holding a control or format character (Unicode Cc, Cf) is refused as well.

Importing judgements: :mod:`.judgement_import`; synthetic ones: :mod:`.simulate`; scoring the methods
against a demo world's truth: :mod:`.score`; what a judgement's fields mean (labels, gold flags, worker
ids): :mod:`.judgement_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...errors import UserError
from ...stages import StageRun, opened
from ...storage import StageStats
from .glad import METHODS
from .glad import aggregate as aggregate_labels
from .judgement_fields import GOLD_WORKER

SIMULATED_FILE = "derived/crowd/simulated_workers.json"  # `annotate simulate`: the simulated workers' true abilities

__all__ = ["CrowdError", "check_settings", "true_instances", "SIMULATED_FILE",
           "AggregateReport", "Judgements", "read_judgements", "aggregate"]


class CrowdError(UserError, ValueError):
    """A crowd job cannot start (no pools, no judgements, unreadable file); one line for the user."""


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[crowd]`` values before any work."""
    a = s.crowd
    if a.method not in METHODS:
        raise cfg.ConfigError(f"config crowd.method must be one of {', '.join(METHODS)}, got {a.method!r}")
    if not 0.0 <= a.accept <= 1.0:
        raise cfg.ConfigError(f"config crowd.accept must be in [0, 1], got {a.accept!r}")
    if a.uncertain not in ("skip", "mismatch"):
        raise cfg.ConfigError(f"config crowd.uncertain must be skip or mismatch, got {a.uncertain!r}")
    for key in ("max_iter", "workers_per_pair", "workers"):
        if getattr(a, key) < 1:
            raise cfg.ConfigError(f"config crowd.{key} must be >= 1, got {getattr(a, key)!r}")
    if a.workers_per_pair > a.workers:
        raise cfg.ConfigError("config crowd.workers_per_pair cannot exceed crowd.workers")
    for key in ("spammers", "gold"):
        if not 0.0 <= getattr(a, key) < 1.0:
            raise cfg.ConfigError(f"config crowd.{key} must be in [0, 1), got {getattr(a, key)!r}")
    if a.tol <= 0:
        raise cfg.ConfigError(f"config crowd.tol must be > 0, got {a.tol!r}")


def true_instances(truth_dir: str | Path) -> dict[str, str]:
    """product_id -> instance_id from a demo shop's truth (the shop folder or its truth folder; CrowdError
    naming where it looked when there is none)."""
    from ...storage.truth_files import true_instances as read

    try:
        return read(truth_dir)
    except FileNotFoundError as exc:
        raise CrowdError(str(exc)) from None


# --------------------------------------------------------------------------------------- aggregate
@dataclass
class AggregateReport:
    stats: StageStats
    method: str = "glad"
    n_pairs: int = 0
    n_judgements: int = 0
    n_workers: int = 0
    n_gold: int = 0
    n_accepted: int = 0
    n_uncertain: int = 0
    iterations: int = 0
    seconds: float = 0.0
    prior: float = 0.5


@dataclass
class Judgements:
    """The annotations as arrays: one entry per judgement (gold answers taken out)."""

    pairs: list[tuple[str, str]]
    workers: list[str]
    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray  # 1 match, 0 mismatch
    gold: np.ndarray  # per pair: -1, or the known label
    n_uncertain: int = 0
    gold_without_answer: int = 0  # pairs whose judgements say is_gold but no @gold answer exists


def read_judgements(store, uncertain: str = "skip") -> Judgements:
    """Load ``annotations`` into arrays; "uncertain" is skipped or counted as mismatch."""
    con = store.connect(need=("annotations",), only=("annotations",), cursor=True)
    try:
        t = con.sql("SELECT query_id, candidate_id, worker_id, label, is_gold FROM annotations "
                    "ORDER BY query_id, candidate_id, worker_id").to_arrow_table().to_pydict()
    finally:
        con.close()
    gold_answer: dict[tuple[str, str], int] = {}
    marked: set[tuple[str, str]] = set()
    pair_ix: dict[tuple[str, str], int] = {}
    worker_ix: dict[str, int] = {}
    task, worker, label = [], [], []
    n_uncertain = 0
    for q, c, w, lab, g in zip(t["query_id"], t["candidate_id"], t["worker_id"], t["label"], t["is_gold"]):
        key = (q, c)
        if w == GOLD_WORKER:
            if lab in ("match", "mismatch"):
                gold_answer[key] = int(lab == "match")
            continue
        if g:
            marked.add(key)
        if lab == "uncertain":
            n_uncertain += 1
            if uncertain == "skip":
                pair_ix.setdefault(key, len(pair_ix))
                continue
            lab = "mismatch"
        if lab not in ("match", "mismatch"):
            continue
        task.append(pair_ix.setdefault(key, len(pair_ix)))
        worker.append(worker_ix.setdefault(w, len(worker_ix)))
        label.append(int(lab == "match"))
    pairs = list(pair_ix)
    gold = np.array([gold_answer.get(p, -1) for p in pairs], np.int64)
    return Judgements(pairs, list(worker_ix), np.array(task, np.int64), np.array(worker, np.int64),
                      np.array(label, np.int64), gold, n_uncertain, len(marked - set(gold_answer)))


def aggregate(store, settings: cfg.Settings, *, method: str | None = None, run: StageRun | None = None) -> AggregateReport:
    """Aggregate ``annotations`` into ``matches`` (prob, accepted) and ``workers`` (ability); replaces both.

    Args:
        method: glad (default ``crowd.method``), majority or dawid_skene.
        run: the crowd stage's run (stages.call's); None: the contract opens one (its lock held).
    """
    if run is None:
        with opened("crowd", store, settings, method=method) as run:
            return aggregate(store, settings, method=method, run=run)
    import time

    from .glad import gold_accuracy

    check_settings(settings)
    a = settings.crowd
    method = method or a.method
    if method not in METHODS:
        raise CrowdError(f"unknown method {method!r} ({', '.join(METHODS)})")
    stats = run.stats
    report = AggregateReport(stats, method=method)
    j = read_judgements(store, a.uncertain)
    if not j.pairs:
        raise CrowdError("no judgements in annotations: run `m5data annotate import` or `simulate` first")
    if j.gold_without_answer:
        stats.fail("gold pair without a known answer (no gold_label)", j.gold_without_answer)
    n_t, n_w = len(j.pairs), len(j.workers)
    counts = np.bincount(j.task, minlength=n_t)
    t0 = time.perf_counter()
    res = aggregate_labels(method, j.task, j.worker, j.label, n_t, n_w, gold=j.gold,
                           max_iter=a.max_iter, tol=a.tol)
    report.seconds = time.perf_counter() - t0
    prob = np.where(counts > 0, res.prob, np.where(j.gold >= 0, j.gold, np.nan))
    no_votes = (counts == 0) & (j.gold < 0)
    if no_votes.any():
        stats.fail("pair with only uncertain judgements", int(no_votes.sum()))
    accepted = (prob > 0.5) if method == "majority" else (prob >= a.accept)
    accepted = np.where(np.isnan(prob), False, accepted)
    acc, n_gold = gold_accuracy(j.task, j.worker, j.label, j.gold, n_w)
    n_by = np.bincount(j.worker, minlength=n_w)
    run_id = stats.run_id
    store.replace_tables({  # both or neither (a run killed between them leaves no mix of two runs)
        "matches": pa.table({
            "query_id": [p[0] for p in j.pairs], "candidate_id": [p[1] for p in j.pairs],
            "prob": [None if np.isnan(x) else float(round(x, 6)) for x in prob],
            "accepted": accepted.tolist(), "method": [method] * n_t,
            "n_judgements": counts.astype(np.int32).tolist(), "run_id": [run_id] * n_t}),
        "workers": pa.table({
            "worker_id": j.workers, "ability": [float(round(x, 6)) for x in res.ability],
            "gold_accuracy": [None if n == 0 else float(round(x, 6)) for x, n in zip(acc, n_gold)],
            "n_judgements": n_by.astype(np.int64).tolist(), "method": [method] * n_w, "run_id": [run_id] * n_w})})
    report.n_pairs, report.n_judgements, report.n_workers = n_t, len(j.task), n_w
    report.n_gold = int((j.gold >= 0).sum())
    report.n_accepted = int(accepted.sum())
    report.n_uncertain = j.n_uncertain
    report.iterations, report.prior = res.iterations, res.prior
    stats.n_in, stats.n_out = len(j.task), n_t
    sections = cfg.as_dict(settings)
    run.record(
        {"annotate": sections["annotate"], "crowd": sections["crowd"], "method": method}, "ok")
    return report
