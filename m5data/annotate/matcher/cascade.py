"""The matcher's cheap first test (a cascade): a small tree model over what dedup's rules already hold
for every candidate pair, so dedup builds the full features (jieba, words, n-grams, TF-IDF) only for
the candidates that pass it.

Its features (:data:`FEATURES`) come from dedup's own inputs (:mod:`..dedup.reads`): the titles'
MinHash Jaccard estimate (the same shingles, permutations and 16-bit signatures as dedup's title
index), the main images' pHash distance, and the spec rule's agreement counts (same brand, properties
both list besides the brand, agreeing ones, conflicting ones, the agreeing share). Training computes
them the same way for the labelled pairs (:func:`.model.cascade_features` of :func:`read_inputs`), fits the
small model on the same folds as the matcher, and reads its threshold off the held-out folds: the
highest that keeps at least ``keep`` (0.995) of the labelled pairs the full model accepts there
(held out too). The model file keeps it (trees as data, no pickle) with what it kept and dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .model import CASCADE_FEATURES as FEATURES  # noqa: F401 (model.cascade_features computes them)
from .model import Cascade, Trees

KEEP = 0.995  # share of the held-out accepted pairs the threshold keeps
TREES, LEAVES = 60, 15  # the small model (its cost is the pairs x trees walk, ~2 us a pair)


def dedup_settings(store):
    """The ``[dedup]`` settings of dedup's newest complete run, as its ``runs`` row recorded them (the
    defaults when dedup never ran here). The cascade's features must be read as dedup reads them (its
    shingles, permutations, wide title threshold): the matcher reads what the dedup stage recorded, not
    the ``[dedup]`` section (a stage reads its own settings section only, and the one dedup ran with is
    the one its next run most likely runs with)."""
    import json

    from ...config import DedupSettings
    from ...storage.errors import StoreError

    try:
        rows = store.read("runs", where="stage = 'dedup' AND status = 'ok'", columns=["started_at", "config"])
    except StoreError:  # no runs yet
        return DedupSettings()
    known = {f.name for f in dataclasses.fields(DedupSettings)}
    for _, config in sorted(zip(rows.column("started_at").to_pylist(), rows.column("config").to_pylist()),
                            key=lambda r: r[0], reverse=True):
        try:
            recorded = json.loads(config or "{}")
        except ValueError:
            continue
        if "dedup_run" in recorded and isinstance(recorded.get("dedup"), dict):  # a run that grouped (not a skip)
            return dataclasses.replace(DedupSettings(), **{k: v for k, v in recorded["dedup"].items() if k in known})
    return DedupSettings()


def read_inputs(store, settings, ids):
    """dedup's inputs (products, main image, comparable specs) and title signatures of the products
    ``ids`` (an Arrow string array), read as dedup reads them (:func:`dedup_settings`, the brand property
    of ``[annotate]``): ``(inputs, title index)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..dedup import near, reads
    from ..dedup.values import norm_value

    a = dedup_settings(store)
    wanted = pc.unique(pa.array(ids, pa.string())).sort()
    titles = near.LSHIndex(a.matcher_minhash_threshold, a.num_perm)

    def index_titles(batch: list[str]) -> None:
        values, offsets = near.title_hashes(batch, a.shingle)
        titles.add(values, offsets, np.fromiter(map(bool, batch), dtype=bool, count=len(batch)))

    inp = reads.read_inputs(store, norm_value(settings.annotate.brand_property), index_titles, only=wanted)
    return inp, titles


def rows_of(inp, ids) -> np.ndarray:
    """The row of each product id in ``inp`` (-1: not there)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    at = pc.index_in(pa.array(ids, pa.string()), value_set=inp.ids).fill_null(-1)
    return np.asarray(at.to_numpy(zero_copy_only=False), np.int64)


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, accepted: np.ndarray, settings,
        keep: float = KEEP) -> Cascade | None:
    """The cheap model on the labelled pairs' cheap features ``x``; its threshold the highest held-out
    score that keeps ``keep`` of the pairs ``accepted`` (the full model's held-out accepted ones).
    None when the full model accepts no held-out pair (nothing to keep: no cascade)."""
    from .training import out_of_fold
    from .trees import classifier, one_thread

    if not accepted.any():
        return None
    a = dataclasses.replace(settings.matcher, trees=TREES, leaves=LEAVES)
    x = np.where(np.isnan(x).all(axis=0), 0.0, x)  # a column no pair has (no pHash in the store): constant,
    # never split on (the trees' binning refuses a column of NaN only); the columns keep their places
    with one_thread():
        oof = out_of_fold(x, y, w, groups, a, settings.annotate.seed)  # the matcher's folds: same labels, groups and seed
        final = classifier(a, settings.annotate.seed).fit(x, y, sample_weight=w)
    kept_scores = np.sort(oof[accepted])
    threshold = float(kept_scores[int(np.floor((1.0 - keep) * len(kept_scores)))])
    passed = oof >= threshold
    validation = {"keep_target": keep, "accepted": int(accepted.sum()), "accepted_kept": int(passed[accepted].sum()),
                  "kept_share": round(float(passed[accepted].mean()), 4), "pairs": int(len(y)),
                  "pairs_dropped": int((~passed).sum()), "matches_dropped": int((~passed & y).sum()),
                  "non_matches_dropped": int((~passed & ~y).sum())}
    return Cascade(baseline=float(np.ravel(final._baseline_prediction)[0]), trees=Trees.from_sklearn(final),
                   threshold=threshold, validation=validation)
