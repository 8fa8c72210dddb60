"""Importing judgements (``m5data annotate import``): worker judgements from CSV or JSONL (query_id,
candidate_id, worker_id, label, is_gold, optional gold_label) -> ``annotations`` (source ``import``).

A bad row (not UTF-8, an unreadable CSV record, an id over 1,024 characters, a reserved worker id ...)
is skipped with a reason and its line number, never a crash. Conflicts within the file are dropped, not
resolved: one worker's two different labels of one pair keep neither, and a pair given two different
``gold_label`` values gets no known answer; both are counted and named with their lines. A known answer
is stored as one more row of the reserved worker ``@gold`` (:mod:`.job`).

Reading the file's records: :mod:`.judgement_files`; what a judgement's fields mean: :mod:`.judgement_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ... import config as cfg
from ...stage_run import record
from ...storage import StageStats
from .job import CrowdError, check_settings
from .judgement_fields import GOLD_WORKER, MAX_ID, normalise_label, truthy, worker_id_problem
from .judgement_files import read_rows

__all__ = ["Conflict", "ImportReport", "import_judgements"]


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
