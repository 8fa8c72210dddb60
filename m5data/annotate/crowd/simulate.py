"""``m5data annotate simulate``: synthetic judgements of the pools' pairs from a demo world's truth.

As the papers collected them: each pair judged by 5 distinct workers drawn from a pool of mixed
reliability, some spammers (ability 0: they answer at random) and one adversarial worker (negative
ability), with gold questions. Judgements follow GLAD's own generative model: worker ``i`` is right
about pair ``j`` with probability ``sigmoid(alpha_i * beta_j)``; pairs near the top of a pool
(look-alikes) are harder (smaller ``beta``) and now and then get "uncertain".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...stage_run import record
from ...storage import StageStats
from .job import SIMULATED_FILE, CrowdError, check_settings, true_instances
from .judgement_fields import GOLD_WORKER

SIMULATED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)  # fixed: a re-run of simulate writes identical rows


@dataclass
class SimulateReport:
    stats: StageStats
    n_pairs: int = 0
    n_judgements: int = 0
    n_gold: int = 0
    n_true_matches: int = 0
    workers: dict[str, dict] = field(default_factory=dict)  # worker_id -> {"alpha", "kind"}
    truth_file: Path | str | None = None  # where the simulated abilities went (a URL on object storage)


def simulated_workers(n: int, spam_share: float, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Worker ids, true abilities (GLAD alpha) and kinds: reliable (alpha 0.4..3), spammers (0), one adversarial (-1.5)."""
    rng = np.random.default_rng([seed, 7])
    n_spam = int(round(n * spam_share))
    n_rel = n - n_spam - 1
    alpha = np.concatenate([np.sort(rng.uniform(0.4, 3.0, n_rel))[::-1], np.zeros(n_spam), [-1.5]])
    kinds = ["reliable"] * n_rel + ["spammer"] * n_spam + ["adversarial"]
    order = rng.permutation(n)  # ids do not give the kind away
    ids = [f"sim-{i:03d}" for i in range(n)]
    return ids, alpha[order], [kinds[i] for i in order]


def simulate(store, settings: cfg.Settings, truth_dir: str | Path, *, top: int = 0) -> SimulateReport:
    """Write synthetic judgements of the pools' pairs (the top ``top`` of each pool; 0 = all).

    Replaces every earlier ``simulate`` row, so a re-run with the same seed leaves the same table.
    The simulated abilities go to ``derived/crowd/simulated_workers.json`` for scoring.
    """
    check_settings(settings)
    a = settings.crowd
    inst = true_instances(truth_dir)
    stats = StageStats("crowd-simulate")
    report = SimulateReport(stats)
    con = store.connect()
    try:
        where = f"WHERE rank <= {int(top)}" if top else ""
        pairs = con.sql(f"SELECT query_id, candidate_id, rank FROM pools {where} ORDER BY query_id, candidate_id").fetchall()
        kept = con.sql("SELECT * FROM annotations WHERE source <> 'simulate'").to_arrow_table()
    finally:
        con.close()
    if not pairs:
        raise CrowdError("no pools in the store: run `m5data annotate pools` first")
    stats.n_in = len(pairs)
    known = [(q, c, r) for q, c, r in pairs if q in inst and c in inst]
    if len(known) < len(pairs):
        stats.fail("pair not in the truth", len(pairs) - len(known))
    n = len(known)
    z = np.array([inst[q] == inst[c] for q, c, _ in known], np.int64)
    rng = np.random.default_rng([settings.annotate.seed, 11])
    ids, alpha, kinds = simulated_workers(a.workers, a.spammers, settings.annotate.seed)
    # harder pairs near the top of a pool (look-alikes): smaller inverse difficulty beta
    rank = np.array([r for _, _, r in known], float)
    beta = np.exp(rng.normal(0.6, 0.4, n) - 0.5 * (rank <= 10))
    # gold: a share of the pairs, half of them true matches where there are enough
    n_gold = int(round(n * a.gold))
    pos, neg = np.flatnonzero(z == 1), np.flatnonzero(z == 0)
    g_pos = rng.choice(pos, min(len(pos) // 2, n_gold // 2), replace=False) if len(pos) else np.array([], int)
    g_neg = rng.choice(neg, min(len(neg), n_gold - len(g_pos)), replace=False) if len(neg) else np.array([], int)
    is_gold = np.zeros(n, bool)
    is_gold[np.concatenate([g_pos, g_neg]).astype(int)] = True
    per = a.workers_per_pair
    who = np.argsort(rng.random((n, len(ids))), axis=1)[:, :per]  # distinct workers per pair
    task = np.repeat(np.arange(n), per)
    w = who.ravel()
    p_right = 1.0 / (1.0 + np.exp(-alpha[w] * beta[task]))
    right = rng.random(len(task)) < p_right
    said = np.where(right, z[task], 1 - z[task])
    unsure = rng.random(len(task)) < 0.02 * (rank[task] <= 10)  # a few "uncertain" on look-alikes
    names = np.array(["mismatch", "match"])
    label = np.where(unsure, "uncertain", names[said])
    rows = {
        "query_id": [known[t][0] for t in task], "candidate_id": [known[t][1] for t in task],
        "worker_id": [ids[i] for i in w], "label": label.tolist(), "is_gold": is_gold[task].tolist(),
        "source": ["simulate"] * len(task), "created_at": [SIMULATED_AT] * len(task),
    }
    gi = np.flatnonzero(is_gold)
    for key, values in (("query_id", [known[t][0] for t in gi]), ("candidate_id", [known[t][1] for t in gi]),
                        ("worker_id", [GOLD_WORKER] * len(gi)), ("label", names[z[gi]].tolist()),
                        ("is_gold", [True] * len(gi)), ("source", ["simulate"] * len(gi)),
                        ("created_at", [SIMULATED_AT] * len(gi))):
        rows[key] = rows[key] + values
    from ...storage.schema import table_spec

    new = pa.table(rows).cast(table_spec("annotations").schema)
    store.replace("annotations", pa.concat_tables([kept.cast(new.schema), new]))
    report.n_pairs, report.n_judgements, report.n_gold = n, len(task), int(is_gold.sum())
    report.n_true_matches = int(z.sum())
    report.workers = {i: {"alpha": float(al), "kind": k} for i, al, k in zip(ids, alpha, kinds)}
    store.write_text(SIMULATED_FILE, json.dumps({"seed": settings.annotate.seed, "truth": str(truth_dir), "workers": report.workers},
                                                indent=1) + "\n")
    report.truth_file = store.where(SIMULATED_FILE)
    stats.n_out = len(task)
    sections = cfg.as_dict(settings)
    record(store, stats,  # appends: no lock
        {"annotate": sections["annotate"], "crowd": sections["crowd"], "truth": str(truth_dir), "top": top}, "ok")
    return report
