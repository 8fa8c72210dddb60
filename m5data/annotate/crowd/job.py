"""Crowd labels (``m5data annotate import | simulate | aggregate``): judgements -> accepted matches.

- ``import_judgements``: worker judgements from CSV or JSONL (query_id, candidate_id, worker_id,
  label, is_gold, optional gold_label) -> ``annotations`` (source ``import``); a bad row (not UTF-8,
  an unreadable CSV record, an id over 1,024 characters, a reserved worker id ...) is skipped with a
  reason and its line number, never a crash. Conflicts within the file are dropped, not resolved:
  one worker's two different labels of one pair keep neither, and a pair given two different
  ``gold_label`` values gets no known answer; both are counted and named with their lines.
- ``simulate`` (simulate.py): synthetic judgements of the pools' pairs from a demo world's truth
  (source ``simulate``).
- ``aggregate`` (``run``): GLAD with gold clamping (default), majority vote or Dawid-Skene
  (glad.py) -> ``matches`` (probability, accepted) and ``workers`` (ability, gold accuracy).

Gold questions: a pair's known answer is stored as one more ``annotations`` row by the reserved
worker ``@gold`` (is_gold true); the workers' judgements of a gold pair carry ``is_gold`` true too.
Every worker id starting with ``@`` (after NFKC folding and dropping invisible characters: ``＠GOLD``
and ``\u200b@gold`` too) is reserved for the store, so no imported or UI worker can write or pass for
a known answer; an id holding a control or format character (Unicode Cc, Cf) is refused as well.

Reading a judgements file's records: :mod:`.judgement_files`; what a judgement's fields mean (labels,
gold flags, worker ids): :mod:`.judgement_fields`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...errors import UserError
from ...stage_run import record
from ...stages import StageRun, opened
from ...storage import StageStats
from .glad import METHODS
from .glad import aggregate as aggregate_labels
from .judgement_fields import (
    GOLD_WORKER,
    LABELS,
    MAX_ID,
    is_reserved_worker,
    normalise_label,
    truthy,
    worker_id_problem,
)
from .judgement_files import MAX_LINE_BYTES, NOT_UTF8, csv_records, read_rows

SIMULATED_FILE = "derived/crowd/simulated_workers.json"  # `annotate simulate`: the simulated workers' true abilities

__all__ = ["CrowdError", "check_settings", "true_instances", "Conflict", "ImportReport", "import_judgements",
           "AggregateReport", "Judgements", "read_judgements", "aggregate", "score_methods",
           # a judgement's fields (.judgement_fields) and file records (.judgement_files), imported from here
           "GOLD_WORKER", "LABELS", "MAX_ID", "is_reserved_worker", "normalise_label", "worker_id_problem",
           "MAX_LINE_BYTES", "NOT_UTF8", "csv_records", "SIMULATED_FILE"]


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


# ------------------------------------------------------------------------------------------ import
@dataclass
class Conflict:
    """Rows of one file that disagree: ``key`` "query / candidate / worker" (or "query / candidate" for
    gold answers), the lines and the labels they gave. None of the disagreeing labels is kept."""

    key: str
    lines: list[int]
    labels: list[str]
    kind: str = "label"  # label, or gold_label


@dataclass
class ImportReport:
    stats: StageStats
    n_rows: int = 0
    n_written: int = 0
    n_gold_answers: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first 20
    conflicts: list[Conflict] = field(default_factory=list)  # in line order, the first 20


def import_judgements(store, settings: cfg.Settings, path: str | Path, *, source: str = "import") -> ImportReport:
    """Read judgements from a CSV or JSONL file into ``annotations`` (upsert by query, candidate, worker).

    Columns: query_id, candidate_id, worker_id, label (match / mismatch / uncertain, or 1/0, yes/no),
    is_gold (optional, default false), gold_label (optional: the known answer of a gold pair).
    """
    check_settings(settings)
    path = Path(path)
    if not path.is_file():
        raise CrowdError(f"judgements file not found: {path}")
    stats = StageStats("crowd-import")
    report = ImportReport(stats)
    now = datetime.now(timezone.utc)
    rows: dict[tuple[str, str, str], dict] = {}
    seen: dict[tuple[str, str, str], list[tuple[int, str]]] = {}  # every (line, label) of a key
    gold: dict[tuple[str, str], list[tuple[int, str]]] = {}  # every (line, gold_label) of a pair

    def reject(line: int, reason: str) -> None:
        stats.fail(reason)
        if len(report.rejects) < 20:
            report.rejects.append((line, reason))

    for line, rec in read_rows(path, header_error=CrowdError):
        report.n_rows += 1
        stats.n_in += 1
        if isinstance(rec, Exception):
            reject(line, str(rec))
            continue
        q, c, w = (str(rec.get(k) or "").strip() for k in ("query_id", "candidate_id", "worker_id"))
        missing = [k for k, v in (("query_id", q), ("candidate_id", c), ("worker_id", w)) if not v]
        if missing:
            reject(line, f"missing {', '.join(missing)}")
            continue
        long = [k for k, v in (("query_id", q), ("candidate_id", c), ("worker_id", w)) if len(v) > MAX_ID]
        if long:
            reject(line, f"{', '.join(long)} longer than {MAX_ID} characters")
            continue
        if q == c:
            reject(line, "query_id equals candidate_id")
            continue
        problem = worker_id_problem(w)
        if problem:
            reject(line, problem)
            continue
        label = normalise_label(rec.get("label"))
        if label is None:
            reject(line, f"unknown label {str(rec.get('label'))[:40]!r} (match, mismatch, uncertain)")
            continue
        is_gold = truthy(rec.get("is_gold"))
        if is_gold is None:
            reject(line, f"is_gold is not a boolean: {str(rec.get('is_gold'))[:20]!r}")
            continue
        if rec.get("gold_label") not in (None, ""):
            known = normalise_label(rec.get("gold_label"))
            if known not in ("match", "mismatch"):
                reject(line, f"gold_label must be match or mismatch, got {str(rec.get('gold_label'))[:40]!r}")
                continue
            gold.setdefault((q, c), []).append((line, known))
            is_gold = True
        key = (q, c, w)
        seen.setdefault(key, []).append((line, label))
        is_gold = is_gold or (key in rows and rows[key]["is_gold"])
        rows[key] = {"query_id": q, "candidate_id": c, "worker_id": w, "label": label,
                     "is_gold": is_gold, "source": source, "created_at": now}
    conflicts = []
    for key, said in seen.items():
        if len({lbl for _, lbl in said}) > 1:  # which one the worker meant is unknown: keep neither
            del rows[key]
            stats.fail("conflicting labels of one worker for one pair", len(said))
            conflicts.append(Conflict(" / ".join(key), [n for n, _ in said], [lbl for _, lbl in said]))
    answers = {}
    for (q, c), said in gold.items():
        if len({lbl for _, lbl in said}) > 1:
            stats.fail("conflicting gold_label for one pair", len(said))
            conflicts.append(Conflict(f"{q} / {c}", [n for n, _ in said], [lbl for _, lbl in said], "gold_label"))
        else:
            answers[(q, c)] = said[0][1]
    report.conflicts = sorted(conflicts, key=lambda x: x.lines)[:20]
    for (q, c), known in answers.items():
        rows[(q, c, GOLD_WORKER)] = {"query_id": q, "candidate_id": c, "worker_id": GOLD_WORKER, "label": known,
                                     "is_gold": True, "source": source, "created_at": now}
    report.n_gold_answers = len(answers)
    if rows:
        report.n_written = store.write("annotations", list(rows.values()))
    stats.n_out = len(rows)
    record(store, stats, {"file": str(path)}, "ok")  # appends: no lock
    return report


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


def score_methods(store, settings: cfg.Settings, truth_dir: str | Path, methods=METHODS,
                  simulated: str | Path | None = None) -> dict[str, dict]:
    """Accuracy (and match precision / recall) of each method against the truth, on the non-gold pairs;
    with the simulated abilities file, the Spearman correlation of the estimated abilities with them."""
    import time

    from scipy.stats import spearmanr

    a = settings.crowd
    inst = true_instances(truth_dir)
    j = read_judgements(store, a.uncertain)
    n_t, n_w = len(j.pairs), len(j.workers)
    keep = np.array([(q in inst and c in inst) for q, c in j.pairs]) & (j.gold < 0)
    z = np.array([inst.get(q) == inst.get(c) for q, c in j.pairs])
    sim = None
    if simulated:
        path = Path(simulated)
        text = path.read_text() if path.is_file() else None
    else:
        text = store.read_text(SIMULATED_FILE)
    if text is not None:
        sim = json.loads(text)["workers"]
    out = {}
    for m in methods:
        t0 = time.perf_counter()
        res = aggregate_labels(m, j.task, j.worker, j.label, n_t, n_w, gold=j.gold,
                               max_iter=a.max_iter, tol=a.tol)
        secs = time.perf_counter() - t0
        dec = (res.prob > 0.5) if m == "majority" else (res.prob >= a.accept)
        tp = int((dec & z & keep).sum())
        row = {"accuracy": float((dec == z)[keep].mean()) if keep.any() else float("nan"),
               "precision": tp / max(int((dec & keep).sum()), 1), "recall": tp / max(int((z & keep).sum()), 1),
               "seconds": secs, "pairs": int(keep.sum())}
        if sim:
            known = [i for i, w in enumerate(j.workers) if w in sim]
            if len(known) > 2:
                row["ability_spearman"] = float(spearmanr([res.ability[i] for i in known],
                                                          [sim[j.workers[i]]["alpha"] for i in known]).statistic)
        out[m] = row
    return out
