"""Match-level between full runs: the kept classifier and image gallery score only what changed.

A full run (the first, ``--full``, a change of the ``annotate`` settings, or a store grown past its
fit) scores every product with cross-fitted classifiers, as ``match_level.py`` describes, and then
fits one more classifier on all its labelled captions. It keeps in the store, through
``store.write_bytes`` (so a store on S3 keeps them too), an ``.npz`` file (numpy arrays only, read
with ``allow_pickle=False``) named by its content hash under ``derived/match_level/``:

- ``model-<hash>.npz``: the classifier's weights, its labels (classes, class/sub-class pairs), the
  IDF of the hashed caption columns it was fitted with, and the image gallery the image evidence
  votes from (product ids, descriptors, unified classes);
- ``labels.npz``: every product's unified class and sub-class as of the last run (an align that
  relabels products makes them "changed"); rewritten in place after the run's rows are written, so
  a run killed after it has already scored the relabelled products (a model file is written only
  by a full run and named by its hash: a killed full run leaves the previous one in use).

and saves its state through the :class:`~m5data.stages.StageRun` the contract opened (``derived/state/match_level.json``: the
watermarks it read, the settings' hash, both files, the count of products the model was fitted on), last.

A later run reads what changed since (``store.changed`` on products, captions and specs, the
products of changed media rows, and products whose labels differ from the kept ones): nothing -> no
work at all; else it reads only those products, scores them with the kept classifier (it was not
fitted on a new product's caption, so none scores itself, as with cross-fitting) and the kept
gallery (a product in it does not vote for itself), and writes their rows (``caption_match`` is
keyed by product: the new rows replace the old ones). When the products the model was fitted on
fall below ``match_level.refit_share`` of the store's products, the run is a full one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np

from ... import arrays
from ... import config as cfg
from ...stages import StageRun

STAGE = "match_level"
READS = ("products", "captions", "label_map", "taxonomy", "specs", "media")
FOLDER = "derived/match_level"
FORMAT = 1  # the .npz layout; another one means a full run


def inputs(settings: cfg.Settings) -> tuple:
    """What, beside the tables, decides the scores: the run's fingerprint (refit_share only decides when to
    fit again); the registry's ``inputs`` (``stage.py``)."""
    a = dataclasses.asdict(settings.match_level)
    return FORMAT, {"seed": settings.annotate.seed, **{k: v for k, v in a.items() if k != "refit_share"}}


def run_config(settings: cfg.Settings, levels: dict) -> dict:
    """The ``config`` of a match-level run's ``runs`` row."""
    return {**cfg.as_dict(settings), "match_level_run": {"levels": levels}}


def _save_npz(store, kind: str, versioned: bool = True, **arrays) -> str:
    """Write arrays as ``<kind>-<content hash>.npz`` (or ``<kind>.npz``, rewritten in place); its store path."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    rel = f"{FOLDER}/{kind}-{hashlib.sha256(data).hexdigest()[:16]}.npz" if versioned else f"{FOLDER}/{kind}.npz"
    store.write_bytes(rel, data)
    return rel


def _load_npz(store, rel) -> dict | None:
    data = store.read_bytes(rel) if isinstance(rel, str) else None
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, KeyError):
        return None


def gallery_of(inp, has_image: np.ndarray, a, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, descriptors, classes)`` of the products the image evidence votes from (as ``image_votes`` picks them)."""
    pool = np.flatnonzero(has_image & (inp.class_id >= 0))
    if a.image_gallery and len(pool) > a.image_gallery:
        pool = np.sort(np.random.default_rng(seed).choice(pool, a.image_gallery, replace=False))
    return pool, inp.desc[pool].copy(), inp.class_id[pool].copy()


def _pairs(h, sub_id: np.ndarray, has: np.ndarray) -> np.ndarray:
    pair = h.cls.astype(np.int64) << 32 | (sub_id.astype(np.int64) & 0xFFFFFFFF)
    return arrays.unique(pair[has & (h.cls >= 0) & (sub_id >= 0)])


def save(run: StageRun, settings: cfg.Settings, inp, gallery, levels: dict) -> None:
    """Fit the classifier on every labelled caption, keep it with the gallery and the labels; complete the run
    (its ``runs`` row, then its state)."""
    from . import textclf
    from .reads import _epochs

    store, a = run.store, settings.match_level
    h = textclf.Hierarchy(np.where(inp.has_text, inp.class_id, -1), np.where(inp.has_text, inp.sub_id, -1))
    labelled = np.flatnonzero(inp.has_text & (h.cls >= 0))
    dim = 1 << a.hash_bits
    ids = np.asarray(inp.ids.to_pylist(), dtype=str)
    group = np.full(len(inp.has_text), -1, np.int64)
    group[labelled] = 0
    idf = textclf.idf(textclf.doc_freq(inp.feats, group, 1, dim)[0], max(1, len(labelled)))
    model = textclf.Model(h, a.hash_bits, a.hash_bits + 2)
    if h.n_class >= 2:
        model.fit(inp.feats, idf, labelled, h.sub, epochs=_epochs(a, len(labelled)), lr=a.lr,
                  alpha=a.alpha, seed=settings.annotate.seed)
    rows, desc, gal_cls = gallery
    model_file = _save_npz(
        store, "model", Wc=model.Wc, bc=model.bc, Ws=model.Ws, bs=model.bs, idf=np.asarray(idf),
        classes=h.classes, pairs=_pairs(h, np.where(inp.has_text, inp.sub_id, -1), inp.has_text),
        fitted=np.array([h.n_class >= 2]), gallery_ids=ids[rows], gallery_desc=desc, gallery_class=gal_cls)
    labels_file = _save_npz(store, "labels", False, ids=ids, class_id=inp.class_id, sub_id=inp.sub_id)
    run.complete(run_config(settings, levels), model=model_file, labels=labels_file, fitted_on=len(ids))


def hierarchy(saved: dict, class_id: np.ndarray, sub_id: np.ndarray):
    """The kept classifier's labels applied to other products (a class or sub-class it never saw: -1)."""
    from . import textclf

    h = textclf.Hierarchy.__new__(textclf.Hierarchy)
    h.classes, pairs = saved["classes"], saved["pairs"]
    h.n_class, h.n_sub = len(h.classes), len(pairs)
    parent = (pairs >> 32).astype(np.int64)
    h.n_child = np.bincount(parent, minlength=h.n_class).astype(np.int64)
    h.child_base = np.concatenate([[0], np.cumsum(h.n_child)[:-1]]).astype(np.int64)
    at = np.minimum(np.searchsorted(h.classes, class_id), max(0, h.n_class - 1))
    known = (class_id >= 0) & (h.n_class > 0) & (h.classes[at] == class_id if h.n_class else False)
    h.cls = np.where(known, at, -1).astype(np.int32)
    pair = h.cls.astype(np.int64) << 32 | (sub_id.astype(np.int64) & 0xFFFFFFFF)
    j = np.minimum(np.searchsorted(pairs, pair), max(0, len(pairs) - 1))
    hit = known & (sub_id >= 0) & (len(pairs) > 0) & (pairs[j] == pair if len(pairs) else False)
    h.sub = np.where(hit, j - h.child_base[np.maximum(h.cls, 0)], -1).astype(np.int32)
    return h


def changed_products(store, since: dict[str, int], labels: dict) -> list[str]:
    """Products new or changed since the watermarks ``since`` (``run.since``): rows of products, captions,
    specs or media written since, or unified labels other than the kept ``labels``."""
    ids: set[str] = set()
    for table in ("products", "captions", "specs"):
        ids.update(store.changed(table, int(since.get(table, 0))).column("product_id").to_pylist())
    media = store.changed("media", int(since.get("media", 0))).column("media_id").to_pylist()
    con = store.connect()
    try:
        if media:
            ids.update(r[0] for r in con.execute(
                "SELECT DISTINCT product_id FROM media WHERE media_id IN (SELECT unnest(?::VARCHAR[]))",
                [media]).fetchall())
        now = con.sql("""SELECT p.product_id, coalesce(l.class_id, -1), coalesce(l.sub_class_id, -1) FROM products p
                         LEFT JOIN label_map l ON l.platform = p.platform
                              AND l.raw_path = array_to_string(p.category_path, ' > ')""").fetchnumpy()
    finally:
        con.close()
    kept = {pid: (c, s) for pid, c, s in zip(labels["ids"].tolist(), labels["class_id"].tolist(),
                                             labels["sub_id"].tolist())}
    cols = list(now.values())
    for pid, c, s in zip(cols[0].tolist(), cols[1].tolist(), cols[2].tolist()):
        if kept.get(pid) != (c, s):
            ids.add(pid)
    return sorted(ids)


def incremental(run: StageRun, settings: cfg.Settings, progress=None):
    """``(report, None)`` of a run that scored only what changed since ``run.since`` (or nothing), else
    ``(None, why a full run)``: ``run.why_full`` (asked, none before, other settings) or the kept files'."""
    store, state = run.store, run.state
    if run.since is None:
        return None, run.why_full
    total = store.count("products")
    if state.get("fitted_on", 0) < settings.match_level.refit_share * total:
        return None, (f"fitted on {state.get('fitted_on', 0):,} products, below {settings.match_level.refit_share:.0%} "
                      f"of {total:,}")
    from .reads import MatchReport

    stats = run.stats
    report = MatchReport(stats)
    ids, new = [], 0
    # nothing it reads was written since: neither kept file is loaded (at 1M the labels are a million ids,
    # and with the levels counted again this was 3.3 s of a run that did nothing); a kept file gone is
    # found by the next run that has products to score, which then runs in full
    if not run.unchanged():
        saved = _load_npz(store, state.get("model"))
        if saved is None:
            return None, "no kept classifier"
        labels = _load_npz(store, state.get("labels"))
        if labels is None:
            return None, "no kept labels"
        ids = changed_products(store, run.since, labels)
        if ids:
            _score(store, settings, saved, ids, report, progress)
            known = set(labels["ids"].tolist())
            new = sum(1 for pid in ids if pid not in known)
    stats.n_in = len(ids)
    stats.details["changes"] = {"new": new, "changed": len(ids) - new, "unchanged": total - len(ids)}
    levels_mark = store.watermark("caption_match")  # after this run's writes: its counts stand until the next
    kept_levels = state.get("levels")
    fresh = not ids and isinstance(kept_levels, dict) and state.get("levels_mark") == levels_mark
    report.levels = dict(kept_levels) if fresh else _levels(store)
    stats.finish()
    labels_file = _relabelled(store) if ids else state["labels"]  # as of this run: a relabelled product is scored once
    run.complete(run_config(settings, report.levels), model=state["model"], labels=labels_file,
                 fitted_on=state["fitted_on"], levels=report.levels, levels_mark=levels_mark)
    return report, None


def _score(store, settings: cfg.Settings, saved: dict, ids: list[str], report, progress) -> None:
    """Score ``ids`` with the kept classifier and gallery and write their rows."""
    from ..kernels.search import exact_search
    from . import textclf
    from .reads import finish_report, read_inputs, score_table

    a = settings.match_level
    inp = read_inputs(store, settings, progress, only=ids)
    m = len(inp.has_text)
    report.scored = m
    h = hierarchy(saved, np.where(inp.has_text, inp.class_id, -1), np.where(inp.has_text, inp.sub_id, -1))
    # image votes from the kept gallery (a product in it is not its own neighbour)
    k = a.image_k
    vote_cls = np.full((m, k), -1, np.int64)
    vote_w = np.zeros((m, k), np.float32)
    has_image = inp.img_reason == 0
    gal, gal_ids, gal_cls = saved["gallery_desc"], saved["gallery_ids"], saved["gallery_class"]
    rows = np.flatnonzero(has_image)
    if len(gal) >= 2 and len(rows):
        where = {pid: i for i, pid in enumerate(gal_ids.tolist())}
        ids_m = inp.ids.to_pylist()
        self_index = np.array([where.get(ids_m[r], -1) for r in rows], np.int64)
        at = np.minimum(np.searchsorted(h.classes, gal_cls), max(0, h.n_class - 1))
        gal_dense = np.where((h.n_class > 0) & (h.classes[at] == gal_cls), at, -1) if h.n_class else np.full(len(gal), -1)
        for hits in exact_search(inp.desc[rows], gal, k, self_index=self_index):
            r = rows[hits.start:hits.start + len(hits.index)]
            w = np.clip(hits.scores, 0.0, None).astype(np.float32)
            w[~np.isfinite(hits.scores)] = 0.0
            total = w.sum(axis=1, keepdims=True)
            kk = hits.index.shape[1]
            vote_cls[r, :kk] = np.where(w > 0, gal_dense[hits.index], -1)
            vote_w[r, :kk] = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    inp.desc = None
    cat = np.full(m, np.nan, np.float32)
    img = np.full(m, np.nan, np.float32)
    test = np.flatnonzero(inp.has_text)
    if bool(saved["fitted"][0]) and len(test):
        model = textclf.Model(h, a.hash_bits, a.hash_bits + 2)
        model.Wc, model.bc, model.Ws, model.bs = saved["Wc"], saved["bc"], saved["Ws"], saved["bs"]
        cls_s, sub_s, img_s = model.score(inp.feats, saved["idf"], test, h.sub, vote_cls[test], vote_w[test])
        has_cls = h.cls[test] >= 0
        both = np.where(np.isnan(sub_s), cls_s, (cls_s + sub_s) / 2)
        cat[test[has_cls]] = both[has_cls]
        img[test] = img_s
    table = score_table(inp, cat, img, a, report.stats.run_id)
    store.write("caption_match", table)
    finish_report(report, table, inp)


def _levels(store) -> dict[str, int]:
    from .reads import LEVELS

    con = store.connect(need=("caption_match",))
    try:
        found = dict(con.execute("SELECT level, count(*) FROM caption_match WHERE level IS NOT NULL GROUP BY 1").fetchall())
    finally:
        con.close()
    return {lvl: int(found.get(lvl, 0)) for lvl in LEVELS}


def _relabelled(store) -> str:
    """The labels file as of now (every product's unified class and sub-class)."""
    con = store.connect()
    try:
        now = con.sql("""SELECT p.product_id, coalesce(l.class_id, -1)::INTEGER AS c, coalesce(l.sub_class_id, -1)::INTEGER AS s
                         FROM products p LEFT JOIN label_map l ON l.platform = p.platform
                              AND l.raw_path = array_to_string(p.category_path, ' > ') ORDER BY 1""").fetchnumpy()
    finally:
        con.close()
    return _save_npz(store, "labels", False, ids=np.asarray(now["product_id"], dtype=str), class_id=now["c"],
                     sub_id=now["s"])
