"""What match-level reads and writes, below the job and its kept model (``match_level.py``,
``kept_model.py``): each product's inputs as compact arrays (caption features, unified labels, spec
hits, image descriptor), the evidence per product, the ``caption_match`` rows and the run's report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ... import config as cfg
from ...storage import StageStats
from ...storage.main_image import is_main
from .image_neighbours import DESC_DIM, describe_batch

Progress = Callable[[str, int, int], None]
LEVELS = ("well", "partial", "poor")
_BRACKETS = re.compile(r"[()（）\[\]【】]")


@dataclass
class Inputs:
    """What match-level keeps per product, as compact arrays in product_id order."""

    ids: object  # pyarrow string array
    has_text: np.ndarray  # bool: a non-empty cleaned caption
    class_id: np.ndarray  # int32 unified labels, -1: no breadcrumb or unmapped
    sub_id: np.ndarray  # int32, -1: none
    has_specs: np.ndarray  # bool
    spec_hits: np.ndarray  # int32 spec values found in the caption
    feats: object  # textclf.Features: hashed caption features
    desc: np.ndarray  # (n, 128) float32 image descriptors (zeros without one)
    img_reason: np.ndarray  # int16 index into img_reasons (0: the image was read)
    img_reasons: list[str | None]


@dataclass
class MatchReport:
    """What one match-level run produced, beyond the stage counts."""

    stats: StageStats
    levels: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    table: object = None  # the caption_match rows as a pyarrow Table
    refit: str | None = None  # why the classifier was fitted again (None: the kept one scored the changes)
    scored: int = 0  # products scored by this run (all of them when fitted again)

    @property
    def rows(self) -> list[dict]:
        """The rows as dicts (for scoring against a demo truth; at scale read ``table``)."""
        return self.table.to_pylist() if self.table is not None else []


def _norm(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").lower().split())


# each product's first main image that has an ok normalised copy
_INPUTS_SQL = f"""
    SELECT p.product_id, c.text, c.tokens, l.class_id, l.sub_class_id, s.specs, img.blob, img.phash
    FROM products p
    LEFT JOIN captions c ON c.product_id = p.product_id AND c.status = 'ok'
    LEFT JOIN label_map l ON l.platform = p.platform
         AND l.raw_path = array_to_string(p.category_path, ' > ')
    LEFT JOIN (SELECT product_id, list(value ORDER BY position) AS specs FROM specs
               WHERE value IS NOT NULL AND value <> '' GROUP BY product_id) s ON s.product_id = p.product_id
    LEFT JOIN (SELECT m.product_id, d.blob, m.phash,
                      row_number() OVER (PARTITION BY m.product_id ORDER BY m.position, m.media_id) AS k
               FROM media m JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm'
               WHERE {is_main('m', ok=True)} AND d.status = 'ok') img
         ON img.product_id = p.product_id AND img.k = 1
    ORDER BY p.product_id"""


def read_inputs(store, settings: cfg.Settings, progress: Progress | None = None, only: list[str] | None = None) -> Inputs:
    """Products with their caption features, unified labels, spec hits and image descriptor
    (``only``: just these product ids, an incremental run's new and changed products).

    Read in Arrow record batches of ``match_level.batch`` products: each batch is hashed,
    its spec values matched and its images described (in threads) before the next is read, so
    what stays is a few arrays per product, never the captions, tokens or spec lists.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from . import textclf

    a = settings.match_level
    dim = 1 << a.hash_bits
    con = store.connect(need=("products", "captions", "label_map", "specs", "media"))
    try:
        con.execute("SET threads = 2")
        where = ""
        if only is not None:
            con.execute("CREATE TEMP TABLE wanted AS SELECT DISTINCT unnest(?::VARCHAR[]) AS product_id", [list(only)])
            where = " WHERE p.product_id IN (SELECT product_id FROM wanted)"
        n = con.sql(f"SELECT count(*) FROM products p{where}").fetchall()[0][0]
        out = Inputs(ids=None, has_text=np.zeros(n, bool), class_id=np.full(n, -1, np.int32),
                     sub_id=np.full(n, -1, np.int32), has_specs=np.zeros(n, bool), spec_hits=np.zeros(n, np.int32),
                     feats=textclf.Features(), desc=np.zeros((n, DESC_DIM), np.float32),
                     img_reason=np.zeros(n, np.int16), img_reasons=[None])
        ids = []
        pos = 0
        reader = con.sql(_INPUTS_SQL.replace("\n    ORDER BY p.product_id", f"{where}\n    ORDER BY p.product_id")
                         ).to_arrow_reader(a.batch)
        for batch in reader:
            b = len(batch)
            if pos + b > n:  # products grew while reading: keep what the count saw
                batch, b = batch.slice(0, n - pos), n - pos
            col = dict(zip(batch.schema.names, batch.columns))
            ids.append(col["product_id"])
            texts = pc.fill_null(col["text"], "")
            out.has_text[pos:pos + b] = pc.greater(pc.utf8_length(texts), 0).to_numpy(zero_copy_only=False)
            out.class_id[pos:pos + b] = pc.fill_null(col["class_id"], -1).to_numpy(zero_copy_only=False)
            out.sub_id[pos:pos + b] = pc.fill_null(col["sub_class_id"], -1).to_numpy(zero_copy_only=False)
            out.feats.append(*textclf.hash_batch(pc.utf8_lower(texts), col["tokens"], dim))
            for i, (text, values) in enumerate(zip(texts.to_pylist(), col["specs"].to_pylist())):
                if values:
                    out.has_specs[pos + i] = True
                    out.spec_hits[pos + i] = spec_hits(text, values) if text else 0
            blobs = col["blob"].to_pylist()
            with store.local_files(blobs) as root:  # on object storage: this batch's images, removed after
                describe_batch(root, blobs, col["phash"].to_pylist(), out, pos)
            pos += b
            if progress:
                progress("read and describe products", pos, n)
        out.ids = pa.concat_arrays([c.cast(pa.string()) for c in ids]) if ids else pa.array([], pa.string())
        out.feats.close()
        if pos < n:  # products shrank while reading
            out = _truncate(out, pos)
        return out
    finally:
        con.close()


def _truncate(inp: Inputs, n: int) -> Inputs:
    for name in ("has_text", "class_id", "sub_id", "has_specs", "spec_hits", "desc", "img_reason"):
        setattr(inp, name, getattr(inp, name)[:n])
    return inp


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


def _epochs(a, n_train: int) -> int:
    """``match_level.epochs`` passes, more for a small store (at least ``match_level.min_steps`` updates, at most 50 passes)."""
    return int(min(50, max(a.epochs, -(-a.min_steps // max(1, n_train)))))


def level_of(score: float | None, well: float, partial: float) -> str | None:
    """``well`` / ``partial`` / ``poor`` for a score at the cut points; None without a score."""
    if score is None:
        return None
    return "well" if score >= well else "partial" if score >= partial else "poor"


def _round(x: np.ndarray):
    import pyarrow as pa

    x = np.round(x.astype(np.float64), 6)
    return pa.array(x, pa.float64(), mask=np.isnan(x))


def score_table(inp: Inputs, cat: np.ndarray, img: np.ndarray, a, run_id: str):
    """The ``caption_match`` rows of ``inp``'s products from their category and image agreement."""
    import pyarrow as pa

    n = len(inp.has_text)
    text = inp.has_text
    spec = np.where(text & inp.has_specs, np.minimum(1.0, inp.spec_hits / a.spec_hits), np.nan).astype(np.float32)
    cat = np.where(text, cat, np.nan)
    img = np.where(text, img, np.nan)
    num = np.zeros(n, np.float64)
    den = np.zeros(n, np.float64)
    for w, v in ((a.weight_category, cat), (a.weight_spec, spec), (a.weight_image, img)):
        if w > 0:
            ok = ~np.isnan(v)
            num[ok] += w * v[ok].astype(np.float64)
            den[ok] += w
    score = np.where(den > 0, np.round(num / np.where(den > 0, den, 1), 6), np.nan)
    level = np.where(score >= a.well, "well", np.where(score >= a.partial, "partial", "poor"))
    level = pa.array(level, pa.string(), mask=np.isnan(score))
    return pa.table({"product_id": inp.ids, "score": _round(score), "level": level, "category_score": _round(cat),
                     "spec_score": _round(spec), "image_score": _round(img), "reason": _reasons(inp),
                     "run_id": pa.array([run_id] * n, pa.string())})


def finish_report(report: MatchReport, table, inp: Inputs) -> None:
    """Counts of a written ``table``: failures (no score) by reason, levels, missing evidence."""
    import pyarrow as pa

    stats, n = report.stats, table.num_rows
    score, level, reason = table.column("score"), table.column("level"), table.column("reason")
    failed = np.asarray(score.is_null().to_numpy(zero_copy_only=False), bool) if n else np.zeros(0, bool)
    for r, cnt in zip(*np.unique(np.array([x or "no evidence" for x in reason.filter(pa.array(failed)).to_pylist()],
                                          dtype=object), return_counts=True)) if failed.any() else ():
        stats.fail(r, int(cnt))
    stats.n_out = n - int(failed.sum())
    report.table = table
    report.levels = {lvl: int(np.sum(level.to_numpy(zero_copy_only=False) == lvl)) for lvl in LEVELS}
    for names, cnt in zip(*np.unique(np.array([x or "" for x in reason.to_pylist()], dtype=object),
                                     return_counts=True)) if n else ():
        for r in names.split("; "):
            if r:
                report.reasons[r] = report.reasons.get(r, 0) + int(cnt)


def _reasons(inp: Inputs):
    """Why evidence is missing, per product ("; "-joined; null when nothing is missing)."""
    import pyarrow as pa

    # one code per combination of the four causes: a few distinct strings, not one per product
    code = ((~inp.has_text).astype(np.int64) | (inp.class_id < 0).astype(np.int64) << 1
            | (~inp.has_specs).astype(np.int64) << 2 | inp.img_reason.astype(np.int64) << 3)
    uniq, back = np.unique(code, return_inverse=True)
    text = []
    for c in uniq.tolist():
        parts = [name for bit, name in ((1, "empty caption"), (2, "no label"), (4, "no specs")) if c & bit]
        if c >> 3:
            parts.append(inp.img_reasons[c >> 3])
        text.append("; ".join(parts) or None)
    return pa.array(text, pa.string()).take(pa.array(back.astype(np.int64)))
