"""Scoring the aggregation methods against a demo world's truth (``m5data annotate aggregate
--score-against``): each method's accuracy, match precision and recall on the non-gold pairs, and how well
its estimated worker abilities follow the simulated ones (``simulate``'s file). Writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ... import config as cfg
from .glad import METHODS
from .glad import aggregate as aggregate_labels
from .job import SIMULATED_FILE, read_judgements, true_instances

__all__ = ["score_methods"]


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
