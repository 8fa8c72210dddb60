"""The match-level job: how well each product's caption matches it -> ``caption_match`` (a global job).

Three kinds of evidence, none needing a network model:

- ``category_score``: a text classifier trained on the store's own captions (TF-IDF over jieba
  tokens and character 1-3-grams, a linear model with logistic loss) predicts the unified class and sub-class
  (``label_map`` via ``products.category_path``). Cross-fitted: the products are split into
  ``match_folds`` folds and each fold is scored by a model trained on the others, so no product
  scores its own caption. Per level, the probability of the product's own label divided by the
  top probability (1 when its label is the classifier's first choice); the mean of both levels,
  or the class level alone when no other product of its sub-class was in the training folds.
- ``spec_score``: spec values found in the caption (a value such as ``美兰(KOLE)`` also counts by
  the part outside or inside its brackets), ``min(1, hits / match_spec_hits)``.
- ``image_score``: the main image's ``match_image_k`` nearest other products by a colour
  histogram + pHash descriptor vote for a class; the score is how much the caption's classifier
  agrees with that vote (``sum_c P_image(c) * P_text(c) / max_c P_text(c)``).

``score`` is the weighted mean of the evidence a product has (weights ``match_weight_*``);
``level`` is ``well`` at ``score >= match_well``, ``partial`` at ``>= match_partial``, else ``poor``.
Missing evidence gets a ``reason`` (empty caption, no label, no specs, no image); a product with
an empty caption gets no score. The table is replaced whole (atomic), the folds are seeded by
``annotate.seed``: a re-run writes the same rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import config as cfg
from ..storage import StageStats, record_run

Progress = Callable[[str, int, int], None]
LEVELS = ("well", "partial", "poor")
_BRACKETS = re.compile(r"[()（）\[\]【】]")


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``annotate.match_*`` values before any work."""
    a = s.annotate
    if a.match_folds < 2:
        raise cfg.ConfigError(f"config annotate.match_folds must be >= 2, got {a.match_folds!r}")
    if not 0.0 <= a.match_partial <= a.match_well <= 1.0:
        raise cfg.ConfigError("config annotate.match_partial <= match_well must both be in [0, 1], "
                              f"got {a.match_partial!r} and {a.match_well!r}")
    weights = (a.match_weight_category, a.match_weight_spec, a.match_weight_image)
    if min(weights) < 0 or sum(weights) <= 0:
        raise cfg.ConfigError("config annotate.match_weight_* must be >= 0 and not all 0")
    if a.match_model not in ("sgd", "lbfgs"):
        raise cfg.ConfigError(f"config annotate.match_model must be sgd or lbfgs, got {a.match_model!r}")
    if a.match_spec_hits <= 0 or a.match_image_k < 1 or a.match_c <= 0:
        raise cfg.ConfigError("config annotate.match_spec_hits and match_c must be > 0, match_image_k >= 1")


@dataclass
class Inputs:
    """What match-level reads, one entry per product, sorted by product_id."""

    ids: list[str]
    texts: list[str]  # cleaned caption ("" when empty or missing)
    tokens: list[list[str]]
    class_id: list[int | None]  # unified labels (None: no breadcrumb or unmapped)
    sub_id: list[int | None]
    specs: list[list[str]]  # spec values
    image: list[str | None]  # normalised main image, relative to the store root
    phash: list[str | None]


@dataclass
class MatchReport:
    """What one match-level run produced, beyond the stage counts."""

    stats: StageStats
    levels: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)


def _norm(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").lower().split())


def read_inputs(store) -> Inputs:
    """Products with their caption, unified labels, spec values and normalised main image."""
    con = store.connect()
    try:
        rows = con.sql("""
            SELECT p.product_id, c.text, c.tokens, l.class_id, l.sub_class_id, img.blob, img.phash
            FROM products p
            LEFT JOIN captions c ON c.product_id = p.product_id AND c.status = 'ok'
            LEFT JOIN label_map l ON l.platform = p.platform
                 AND l.raw_path = array_to_string(p.category_path, ' > ')
            LEFT JOIN (SELECT m.product_id, d.blob, m.phash,
                              row_number() OVER (PARTITION BY m.product_id ORDER BY m.position, m.media_id) AS k
                       FROM media m JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm'
                       WHERE m.kind = 'image' AND m.role = 'main' AND m.status = 'ok' AND d.status = 'ok') img
                 ON img.product_id = p.product_id AND img.k = 1
            ORDER BY p.product_id""").fetchall()
        spec_rows = con.sql("SELECT product_id, value FROM specs ORDER BY product_id, position").fetchall()
    finally:
        con.close()
    specs: dict[str, list[str]] = {}
    for pid, value in spec_rows:
        if value:
            specs.setdefault(pid, []).append(value)
    return Inputs(ids=[r[0] for r in rows], texts=[r[1] or "" for r in rows], tokens=[list(r[2] or []) for r in rows],
                  class_id=[r[3] for r in rows], sub_id=[r[4] for r in rows],
                  specs=[specs.get(r[0], []) for r in rows], image=[r[5] for r in rows], phash=[r[6] for r in rows])


# ------------------------------------------------------------------ evidence
def spec_hits(caption: str, values: list[str]) -> int:
    """Spec values found in the caption (a bracketed value also by its parts; 2+ characters each)."""
    text = _norm(caption)
    hits = 0
    for value in values:
        v = _norm(value)
        parts = {v} | {p for p in _BRACKETS.split(v) if p}
        if any(len(p) >= 2 and p in text for p in parts):
            hits += 1
    return hits


def image_descriptors(store_root, blobs: list[str | None], phashes: list[str | None]) -> tuple[np.ndarray, list[str | None]]:
    """L2-normalised descriptors (4x4x4 colour histogram of the image at 32x32, pHash bits as +-1).

    Returns ``(descriptors, reasons)``: a row of zeros and a reason where the image is missing
    or unreadable.
    """
    from PIL import Image

    from ..storage.blobs import BlobPathError, resolve_blob

    out = np.zeros((len(blobs), 64 + 64), dtype=np.float32)
    reasons: list[str | None] = []
    for i, blob in enumerate(blobs):
        if not blob:
            reasons.append("no image")
            continue
        try:
            with Image.open(resolve_blob(store_root, blob)) as im:
                px = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)).reshape(-1, 3)
        except BlobPathError:  # a media row naming a file outside the store: never opened
            reasons.append("image blob path outside the store")
            continue
        except (OSError, ValueError) as exc:
            reasons.append(f"image unreadable ({type(exc).__name__})")
            continue
        q = (px // 64).astype(np.int64)
        hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float32)
        out[i, :64] = hist / np.linalg.norm(hist)
        try:
            bits = int(phashes[i] or "", 16)
            out[i, 64:] = np.array([1.0 if bits >> b & 1 else -1.0 for b in range(64)]) / 8.0 * 0.5
        except ValueError:
            pass
        out[i] /= np.linalg.norm(out[i])
        reasons.append(None)
    return out, reasons


def image_votes(desc: np.ndarray, has: np.ndarray, labels: list[int | None], k: int) -> dict[int, dict[int, float]]:
    """For each product with an image: class votes of its ``k`` nearest other labelled products (cosine)."""
    from sklearn.neighbors import NearestNeighbors

    pool = np.flatnonzero(has & np.array([lab is not None for lab in labels]))
    queries = np.flatnonzero(has)
    if len(pool) < 2 or not len(queries):
        return {}
    nn = NearestNeighbors(n_neighbors=min(k + 1, len(pool)), metric="cosine", algorithm="brute").fit(desc[pool])
    dist, idx = nn.kneighbors(desc[queries])
    votes: dict[int, dict[int, float]] = {}
    for q, drow, irow in zip(queries.tolist(), dist, idx):
        v: dict[int, float] = {}
        taken = 0
        for d, j in zip(drow.tolist(), irow.tolist()):
            other = int(pool[j])
            if other == q or taken >= k:
                continue
            taken += 1
            v[labels[other]] = v.get(labels[other], 0.0) + max(0.0, 1.0 - d)
        total = sum(v.values())
        votes[q] = {c: w / total for c, w in v.items()} if total > 0 else {}
    return votes


def _features(tokens, texts, train, test):
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(analyzer=lambda x: x, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    xa = sp.hstack([words.fit_transform([tokens[i] for i in train]), chars.fit_transform([texts[i] for i in train])]).tocsr()
    xb = sp.hstack([words.transform([tokens[i] for i in test]), chars.transform([texts[i] for i in test])]).tocsr()
    return xa, xb


def _model(a):
    """The linear classifier: logistic loss by SGD (``match_model = sgd``, ~50x faster) or by lbfgs (``lbfgs``)."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    if a.match_model == "lbfgs":
        return LogisticRegression(C=a.match_c, max_iter=2000)
    return SGDClassifier(loss="log_loss", alpha=a.match_alpha, max_iter=50, tol=None, random_state=a.seed)


def _agreement(model, proba: np.ndarray, own: int) -> float | None:
    classes = list(model.classes_)
    if own not in classes:
        return None
    return float(proba[classes.index(own)] / proba.max())


def category_scores(inp: Inputs, settings: cfg.Settings, votes: dict[int, dict[int, float]],
                    progress: Progress | None = None) -> tuple[dict[int, float], dict[int, float]]:
    """Cross-fitted category agreement and caption-image agreement, by product index."""
    from sklearn.model_selection import KFold

    a = settings.annotate
    labelled = np.array([i for i in range(len(inp.ids)) if inp.texts[i] and inp.class_id[i] is not None])
    unlabelled = np.array([i for i in range(len(inp.ids)) if inp.texts[i] and inp.class_id[i] is None])
    cat: dict[int, float] = {}
    img: dict[int, float] = {}
    if len(labelled) < a.match_folds or len(set(inp.class_id[i] for i in labelled)) < 2:
        return cat, img
    folds = list(KFold(a.match_folds, shuffle=True, random_state=a.seed).split(labelled))
    # products without a label are scored against the image only, by a model of all labelled ones
    jobs = [(labelled[tr], labelled[te]) for tr, te in folds] + ([(labelled, unlabelled)] if len(unlabelled) else [])
    for n, (train, test) in enumerate(jobs, 1):
        xa, xb = _features(inp.tokens, inp.texts, train, test)
        models = {}
        for level, labels in (("class", inp.class_id), ("sub", inp.sub_id)):
            y = np.array([labels[i] for i in train])
            if len(set(y.tolist())) >= 2:
                models[level] = (_model(a).fit(xa, y), labels)
        probas = {level: m.predict_proba(xb) for level, (m, _) in models.items()}
        for row, i in enumerate(test.tolist()):
            if "class" in models and inp.class_id[i] is not None:
                parts = [_agreement(models[level][0], probas[level][row], models[level][1][i]) for level in models]
                parts = [p for p in parts if p is not None]
                cat[i] = float(np.mean(parts)) if parts else 0.0
            if i in votes and votes[i] and "class" in models:
                model = models["class"][0]
                p = probas["class"][row]
                classes = list(model.classes_)
                img[i] = float(sum(w * p[classes.index(c)] for c, w in votes[i].items() if c in classes) / p.max())
        if progress:
            progress("classifier folds", n, len(jobs))
    return cat, img


# ------------------------------------------------------------------ the job
def run(store, settings: cfg.Settings, *, progress: Progress | None = None) -> StageStats:
    """Stage contract: score every product's caption and replace ``caption_match``; see :func:`match_level`."""
    return match_level(store, settings, progress=progress).stats


def level_of(score: float | None, well: float, partial: float) -> str | None:
    """``well`` / ``partial`` / ``poor`` for a score at the cut points; None without a score."""
    if score is None:
        return None
    return "well" if score >= well else "partial" if score >= partial else "poor"


def match_level(store, settings: cfg.Settings, *, progress: Progress | None = None) -> MatchReport:
    """Score each product's caption against its category, spec values and image; replace ``caption_match``.

    Args:
        store: the store (reads products, captions, label_map, specs, media; writes caption_match, runs).
        settings: ``annotate.match_*`` folds, weights and cut points; ``annotate.seed`` seeds the folds.
        progress: ``progress(step, done, total)`` callback.
    """
    check_settings(settings)
    a = settings.annotate
    stats = StageStats("match_level")
    report = MatchReport(stats)
    inp = read_inputs(store)
    n = stats.n_in = len(inp.ids)
    desc, img_reasons = image_descriptors(store.root, inp.image, inp.phash)
    has_image = np.array([r is None for r in img_reasons], dtype=bool)
    votes = image_votes(desc, has_image, inp.class_id, a.match_image_k)
    if progress:
        progress("image neighbours", 1, 1)
    cat, img = category_scores(inp, settings, votes, progress)

    weights = {"category": a.match_weight_category, "spec": a.match_weight_spec, "image": a.match_weight_image}
    rows = []
    for i, pid in enumerate(inp.ids):
        reasons = []
        if not inp.texts[i]:
            reasons.append("empty caption")
        if inp.class_id[i] is None:
            reasons.append("no label")
        if not inp.specs[i]:
            reasons.append("no specs")
        if img_reasons[i]:
            reasons.append(img_reasons[i])
        row = {"product_id": pid, "score": None, "level": None, "category_score": None, "spec_score": None,
               "image_score": None, "reason": "; ".join(reasons) or None, "run_id": stats.run_id}
        if inp.texts[i]:
            row["category_score"] = cat.get(i)
            if inp.specs[i]:
                row["spec_score"] = min(1.0, spec_hits(inp.texts[i], inp.specs[i]) / a.match_spec_hits)
            row["image_score"] = img.get(i)
            parts = [(weights[k], row[f"{k}_score"]) for k in weights if row[f"{k}_score"] is not None and weights[k] > 0]
            if parts:
                row["score"] = round(sum(w * v for w, v in parts) / sum(w for w, _ in parts), 6)
                row["level"] = level_of(row["score"], a.match_well, a.match_partial)
        for k in ("category_score", "spec_score", "image_score"):
            if row[k] is not None:
                row[k] = round(row[k], 6)
        if row["level"] is None:
            stats.fail(row["reason"] or "no evidence")
        rows.append(row)
    store.replace("caption_match", rows)
    stats.n_out = n - stats.n_failed
    report.rows = rows
    report.levels = {lvl: sum(r["level"] == lvl for r in rows) for lvl in LEVELS}
    for r in rows:
        for reason in (r["reason"] or "").split("; "):
            if reason:
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
    record_run(store, stats.finish(), {**cfg.as_dict(settings), "match_level_run": {"levels": report.levels}})
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
