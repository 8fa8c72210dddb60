"""The match-level job: how well each product's caption matches it -> ``caption_match`` (a global job).

Three kinds of evidence, none needing a network model:

- ``category_score``: a text classifier trained on the store's own captions (TF-IDF over jieba
  tokens and character 1-3-grams, a linear model with logistic loss) predicts the unified class and sub-class
  (``label_map`` via ``products.category_path``). Cross-fitted: the products are split into
  ``match_level.folds`` folds (by a seeded hash of the product id: a product keeps its fold as the store grows) and each fold is scored by a model trained on the others, so no product
  scores its own caption. Per level, the probability of the product's own label divided by the
  top probability (1 when its label is the classifier's first choice); the mean of both levels,
  or the class level alone when no other product of its sub-class was in the training folds.
- ``spec_score``: spec values found in the caption (a value such as ``美兰(KOLE)`` also counts by
  the part outside or inside its brackets), ``min(1, hits / match_level.spec_hits)``.
- ``image_score``: the main image's ``match_level.image_k`` nearest other products by a colour
  histogram + pHash descriptor vote for a class; the score is how much the caption's classifier
  agrees with that vote (``sum_c P_image(c) * P_text(c) / max_c P_text(c)``).

``score`` is the weighted mean of the evidence a product has (weights ``match_weight_*``);
``level`` is ``well`` at ``score >= match_level.well``, ``partial`` at ``>= match_level.partial``, else ``poor``.
Missing evidence gets a ``reason`` (empty caption, no label, no specs, no image); a product with
an empty caption gets no score. The table is replaced whole (atomic), the folds are seeded by
``annotate.seed``: a re-run writes the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import config as cfg
from ...stages import StageRun, opened
from ...storage import StageStats
from .image_neighbours import DESC_DIM, image_descriptor, image_descriptors, image_votes
from .reads import (
    LEVELS,
    Inputs,
    MatchReport,
    Progress,
    _epochs,
    finish_report,
    level_of,
    read_inputs,
    score_table,
    spec_hits,
)

__all__ = ["LEVELS", "Inputs", "MatchReport", "MatchScore", "category_scores", "check_settings", "level_of",
           "match_level", "read_inputs", "run", "score_levels", "spec_hits", "truth_level",
           # image evidence, from .image_neighbours (imported from here by callers)
           "DESC_DIM", "image_descriptor", "image_descriptors", "image_votes"]


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[match_level]`` values before any work."""
    a = s.match_level
    if a.folds < 2:
        raise cfg.ConfigError(f"config match_level.folds must be >= 2, got {a.folds!r}")
    if not 0.0 <= a.partial <= a.well <= 1.0:
        raise cfg.ConfigError("config match_level.partial <= match_level.well must both be in [0, 1], "
                              f"got {a.partial!r} and {a.well!r}")
    weights = (a.weight_category, a.weight_spec, a.weight_image)
    if min(weights) < 0 or sum(weights) <= 0:
        raise cfg.ConfigError("config match_level.weight_* must be >= 0 and not all 0")
    if a.spec_hits <= 0 or a.image_k < 1 or a.lr <= 0 or a.alpha < 0:
        raise cfg.ConfigError("config match_level.spec_hits and match_level.lr must be > 0, match_level.alpha >= 0, "
                              "match_level.image_k >= 1")
    if not 0.0 <= a.refit_share <= 1.0:
        raise cfg.ConfigError(f"config match_level.refit_share must be in [0, 1], got {a.refit_share!r}")
    if not 10 <= a.hash_bits <= 24:
        raise cfg.ConfigError(f"config match_level.hash_bits must be in 10..24, got {a.hash_bits!r}")
    if a.epochs < 1 or a.min_steps < 0 or a.batch < 1 or a.image_gallery < 0:
        raise cfg.ConfigError("config match_level.epochs and match_level.batch must be >= 1, "
                              "match_level.min_steps and match_level.image_gallery >= 0")


# ------------------------------------------------------------------ evidence


def fold_of(ids, seed: int, folds: int) -> np.ndarray:
    """Each product's cross-fitting fold, a seeded hash of its id: a product keeps its fold when the
    store grows (a fold drawn over positions would move every product, and a rebuild would then
    disagree with the kept scores of products that did not change)."""
    import hashlib

    return np.fromiter((int.from_bytes(hashlib.blake2b(f"{seed}:{pid}".encode(), digest_size=8).digest(), "little") % folds
                        for pid in ids.to_pylist()), np.int64, count=len(ids))


def category_scores(inp: Inputs, settings: cfg.Settings, votes: tuple[np.ndarray, np.ndarray],
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted category agreement and caption-image agreement per product (nan: none)."""
    from . import textclf

    a = settings.match_level
    n = len(inp.has_text)
    cat = np.full(n, np.nan, np.float32)
    img = np.full(n, np.nan, np.float32)
    h = textclf.Hierarchy(np.where(inp.has_text, inp.class_id, -1), np.where(inp.has_text, inp.sub_id, -1))
    labelled = np.flatnonzero(inp.has_text & (h.cls >= 0))
    unlabelled = np.flatnonzero(inp.has_text & (h.cls < 0))
    if len(labelled) < a.folds or h.n_class < 2:
        return cat, img
    fold = np.full(n, -1, np.int64)
    fold[labelled] = fold_of(inp.ids, settings.annotate.seed, a.folds)[labelled]
    dim = 1 << a.hash_bits
    df = textclf.doc_freq(inp.feats, fold, a.folds, dim)
    df_all = df.sum(axis=0)
    # the neighbours' unified classes as the classifier's class indexes (-1: a class it does not know)
    at = np.minimum(np.searchsorted(h.classes, votes[0]), max(0, h.n_class - 1))
    vote_cls = np.where((votes[0] >= 0) & (h.classes[at] == votes[0]), at, -1).astype(np.int64)
    # products without a label are scored against the image only, by a model of all labelled ones
    jobs = [(labelled[fold[labelled] != k], labelled[fold[labelled] == k], df_all - df[k]) for k in range(a.folds)]
    if len(unlabelled):
        jobs.append((labelled, unlabelled, df_all))
    del df
    for j, (train, test, dfk) in enumerate(jobs, 1):
        seen_class = np.bincount(h.cls[train], minlength=h.n_class)
        if (seen_class > 0).sum() >= 2:
            seen_sub = np.zeros(max(1, h.n_sub), np.int64)
            has_sub = h.sub[train] >= 0
            np.add.at(seen_sub, h.child_base[h.cls[train][has_sub]] + h.sub[train][has_sub], 1)
            model = textclf.Model(h, a.hash_bits, a.hash_bits + 2)
            idf = textclf.idf(dfk, len(train))
            model.fit(inp.feats, idf, train, h.sub, epochs=_epochs(a, len(train)), lr=a.lr,
                      alpha=a.alpha, seed=settings.annotate.seed + j)
            # the sub-class level only where the product's sub-class was among the training rows
            own_sub = h.sub.copy()
            ok = own_sub >= 0
            own_sub[ok] = np.where(seen_sub[h.child_base[h.cls[ok]] + own_sub[ok]] > 0, own_sub[ok], -1)
            cls_s, sub_s, img_s = model.score(inp.feats, idf, test, own_sub, vote_cls[test], votes[1][test])
            own = h.cls[test]
            has_cls = own >= 0
            both = np.where(np.isnan(sub_s), cls_s, (cls_s + sub_s) / 2)
            cat[test[has_cls]] = np.where(seen_class[own[has_cls]] > 0, both[has_cls],
                                          np.where(np.isnan(sub_s[has_cls]), 0.0, sub_s[has_cls]))
            img[test] = img_s
        if progress:
            progress("classifier folds", j, len(jobs))
    return cat, img


# ------------------------------------------------------------------ the job
def run(store, settings: cfg.Settings, *, progress: Progress | None = None) -> StageStats:
    """Stage contract: score every product's caption and replace ``caption_match``; see :func:`match_level`."""
    return match_level(store, settings, progress=progress).stats


def match_level(store, settings: cfg.Settings, *, progress: Progress | None = None, full: bool = False,
                run: StageRun | None = None) -> MatchReport:
    """Score each product's caption against its category, spec values and image; replace ``caption_match``.

    Unless ``full``, a run after a complete one scores only the products new or changed since with the
    classifier and image gallery that run kept (``kept_model.py``); it fits again (in full) when the
    products it was fitted on are below ``match_level.refit_share`` of the store.

    Args:
        store: the store (reads products, captions, label_map, specs, media; writes caption_match, runs).
        settings: the ``[match_level]`` folds, weights and cut points; ``annotate.seed`` seeds the folds.
        progress: ``progress(step, done, total)`` callback.
        full: score every product with cross-fitted classifiers and fit the kept one again.
        run: the run the contract opened (``stages.call``); None: opened here (``stages.opened``), a
            full one with ``full``.
    """
    from . import kept_model

    check_settings(settings)
    if run is None:
        with opened(kept_model.STAGE, store, settings, full=full) as run:
            return match_level(store, settings, progress=progress, run=run)
    kept, refit = kept_model.incremental(run, settings, progress)
    return kept if kept is not None else _score_all(run, settings, refit, progress)


def _score_all(run: StageRun, settings: cfg.Settings, refit: str | None, progress: Progress | None) -> MatchReport:
    """A full run: every product scored by cross-fitted classifiers, ``caption_match`` replaced, the classifier kept."""
    from . import kept_model

    store, a, stats = run.store, settings.match_level, run.stats
    report = MatchReport(stats, refit=refit)
    inp = read_inputs(store, settings, progress)
    n = stats.n_in = report.scored = len(inp.has_text)
    has_image = inp.img_reason == 0
    votes = image_votes(inp.desc, has_image, inp.class_id, a.image_k, gallery=a.image_gallery,
                        seed=settings.annotate.seed, progress=progress)
    gallery = kept_model.gallery_of(inp, has_image, a, settings.annotate.seed)
    inp.desc = None  # the descriptors are done with: free them before the classifier
    cat, img = category_scores(inp, settings, votes, progress)
    del votes
    table = score_table(inp, cat, img, a, stats.run_id)
    store.replace("caption_match", table)
    finish_report(report, table, inp)
    stats.details["changes"] = {"new": n, "changed": 0, "unchanged": 0}
    stats.finish()
    kept_model.save(run, settings, inp, gallery, report.levels)  # last: a killed run leaves the previous model
    return report


# ------------------------------------------------------------------ scoring against a truth
@dataclass
class MatchScore:
    """ROC AUC of ``1 - score`` for the truth's mismatched captions, and the 3x3 level confusion."""

    products: int = 0  # scored products found in the truth
    positives: int = 0  # mismatched captions among them
    auc: float = float("nan")
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # truth level -> predicted level -> n
    unscored_mismatched: int = 0  # mismatched captions without a score (empty caption ...)


def truth_level(row: dict) -> str:
    """A truth product's level: its ``caption_level`` when the truth has one, else poor/well by ``caption_mismatched``."""
    if row.get("caption_level"):
        return row["caption_level"]
    return "poor" if row.get("caption_mismatched") else "well"


def score_levels(rows: list[dict], truth_rows: list[dict]) -> MatchScore:
    """Score ``caption_match`` rows against a demo shop's truth products."""
    from sklearn.metrics import roc_auc_score

    truth = {r["product_id"]: r for r in truth_rows}
    scored = [r for r in rows if r["product_id"] in truth and r["score"] is not None]
    out = MatchScore(products=len(scored))
    y = [truth_level(truth[r["product_id"]]) != "well" for r in scored]
    out.positives = sum(y)
    if 0 < out.positives < len(y):
        out.auc = float(roc_auc_score(y, [-r["score"] for r in scored]))
    out.confusion = {t: {p: 0 for p in LEVELS} for t in LEVELS}
    for r in scored:
        out.confusion[truth_level(truth[r["product_id"]])][r["level"]] += 1
    out.unscored_mismatched = sum(1 for r in rows if r["product_id"] in truth and r["score"] is None
                                  and truth_level(truth[r["product_id"]]) != "well")
    return out
