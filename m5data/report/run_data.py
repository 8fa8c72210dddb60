"""The report's sections read from what stage runs left, not from the totals: the last dedup run's
matcher (its ``runs`` row's config, :func:`last_run_config`, and the newest model's held-out figures)
and a training run's metrics (``metrics.json`` in its run folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .data import quoted


@dataclass
class DedupMatcher:
    used: str  # the last dedup run's matcher: rules, "learned <version>" or "rules (<why>)"
    added: int  # pairs the matcher added to the rules' pairs
    groups: int  # groups of 2+ of that run
    groups_rules: int  # ... of the rules' pairs alone
    model: dict | None  # the newest model.json's version, threshold and held-out validation


def dedup_matcher(store) -> DedupMatcher | None:
    """What the learned matcher did in the last dedup run, and the newest model's held-out figures
    (``derived/matcher/<version>/model.json``, read as JSON data); None before any dedup run."""
    config = last_run_config(store, "dedup")
    try:
        run = json.loads(config).get("dedup_run", {}) if config else None
    except ValueError:
        run = None
    if run is None:
        return None
    model = None
    # the newest version's file, through the store (a path on a folder store, an object on S3)
    models = sorted(rel for rel in store.files("derived/matcher/") if rel.count("/") == 3 and rel.endswith("/model.json"))
    if models:
        try:
            d = json.loads(store.read_bytes(models[-1]) or b"")
            model = {"version": str(d["version"]), "threshold": float(d["threshold"]), "validation": dict(d["validation"])}
        except (ValueError, KeyError, TypeError, OSError):
            model = None
    return DedupMatcher(used=str(run.get("matcher", "rules")), added=int(run.get("pairs", {}).get("matcher", 0)),
                        groups=int(run.get("groups", 0)), groups_rules=int(run.get("groups_rules", run.get("groups", 0))),
                        model=model)


def last_run_config(store, stage: str) -> str | None:
    """The ``config`` of ``stage``'s newest run (by its start) in ``runs``. A local store's parts are
    read as they are: a run's row is written once, under an id of its own, so no key has rows in two
    parts and the view's window is not needed (its plan over the ~30 parts ``runs`` holds between
    compactions cost 0.2 s, the stage's largest read on a night with little new); on object storage
    through the view."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["started_at", "config"]
    rows = None
    local = store.local_parts("runs")
    if local is not None:
        parts = [str(p) for p in local]
        if not parts:
            return None
        try:
            rows = pq.read_table(parts, columns=columns, filters=[("stage", "=", stage)])
        except (pa.ArrowException, OSError):  # a damaged part: the view's read names it (StoreError)
            rows = None
    if rows is None:
        rows = store.read("runs", where=f"stage = '{quoted(stage)}'", columns=columns)
    if not rows.num_rows:
        return None
    return rows.column("config")[pc.index(rows.column("started_at"), pc.max(rows.column("started_at"))).as_py()].as_py()


def training_metrics(run_dir: Path | None) -> dict | None:
    """The metrics table a training run's evaluation wrote (``metrics.json`` in the run folder), if any."""
    if run_dir is None:
        return None
    for name in ("metrics.json", "eval.json", "evaluation.json"):
        path = Path(run_dir) / name
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                return None
    return None
