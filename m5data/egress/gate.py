"""The egress gate: the one place that says what of the store may leave it, for a person or a file.

Every path that writes or serves product data passes here: the export layouts (WebDataset, Parquet,
M5Product: their samples, media, provenance, card and Croissant), the report (its facts, charts and
gallery), the labelling UI, ``m5data stats`` and the Python API's readers (``m5data.api.read``). The
gate applies, in this order (:data:`ORDER`), rules defined once, elsewhere:

1. **takedowns** (storage/takedowns.py: by product, URL in its canonical form, domain, image copies):
   a taken-down product leaves nowhere;
2. **opt-outs** (storage/withheld.py: a page opt-out seen after the product's last stored version):
   an opted-out product leaves nowhere, and an opted-out file (``media.status = 'opted_out'``) has no
   blob to leave with;
3. **personal data** (masking.py, its rules in masking_rules.py): every text that leaves is masked
   (``export.mask_personal_data``, on by default): titles, captions, spec property names and values,
   category names, licence and copyright strings, page URLs' query strings;
4. **faces** (faces/, export/faces.py, egress/video.py): pictures leave with their faces blurred, videos
   only when a check of the video itself found no face (``export.blur_faces``, on by default); and
   **QR codes** (vision/codes.py, export/codes.py): still pictures leave with their QR codes blurred (a
   QR code is a contact; ``export.blur_codes``, on by default).

Steps 1 and 2 are one set of product ids (:meth:`Gate.withheld`), read from the store each time a path
asks, so a takedown or an opt-out recorded since applies to the next read without any step of the
user's. The store itself keeps every row as crawled (``m5data sql``'s ``raw.<table>`` views): the gate
is about what leaves it.
"""

from __future__ import annotations

import time

from .. import masking

ORDER = ("takedowns", "opt-outs", "personal data", "faces")


def withheld_ids(store) -> frozenset[str]:
    """The ids of the products that may not leave ``store`` now: taken down, or opted out since stored."""
    from ..storage import withheld

    return frozenset(withheld.ids(store).to_pylist())


def text(value: str | None, mask: bool = True) -> str | None:
    """A text as it may leave: its personal data masked (``mask``: ``export.mask_personal_data``)."""
    return masking.mask_text(value)[0] if mask else value


def samples(items: list, mask: bool = True) -> tuple[list, dict]:
    """Export samples as they may leave, and the replacements per field (the shards' stats count them)."""
    return masking.mask_samples(items) if mask else (items, {})


class Gate:
    """The gate of one store and its settings, for a path that serves many requests (the UI, the report):
    its withheld ids are read again when older than ``ttl`` seconds (0: on every ask)."""

    def __init__(self, store, *, mask: bool = True, blur: bool = True, ttl: float = 0.0):
        self.store, self.mask, self.blur, self.ttl = store, mask, blur, ttl
        self._gone: frozenset[str] | None = None
        self._at = 0.0

    @classmethod
    def of(cls, store, settings=None, *, ttl: float = 0.0) -> "Gate":
        """The gate with ``settings``' ``export.mask_personal_data`` and ``export.blur_faces`` (defaults: on)."""
        export = getattr(settings, "export", None)
        return cls(store, mask=getattr(export, "mask_personal_data", True),
                   blur=getattr(export, "blur_faces", True), ttl=ttl)

    def withheld(self) -> frozenset[str]:
        now = time.monotonic()
        if self._gone is None or now - self._at >= self.ttl:
            self._gone, self._at = withheld_ids(self.store), now
        return self._gone

    def text(self, value: str | None) -> str | None:
        return text(value, self.mask)

    def rows(self, table):
        """An Arrow table as it may leave: without the withheld products' rows (a table with a
        ``product_id`` column), every string column masked (a ``url`` column: its query string)."""
        return rows(table, self.withheld(), self.mask)


# the columns a reader's table leaves unmasked: ids, digests, paths and enumerations the pipeline made
_KEPT = frozenset({"product_id", "query_id", "candidate_id", "media_id", "blob", "kind", "status", "run_id", "lang", "split", "version",
                   "source", "scope", "stage", "sha256", "digest", "mime", "host", "reason", "content_type",
                   "group_id", "cluster_id", "level", "method", "value_kind"})


def rows(table, gone: frozenset[str], mask: bool = True):
    """``table`` (Arrow) without the rows of the products ``gone`` and with its text masked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..storage.takedowns import ID_COLUMNS

    if gone:  # a row that names a withheld product in any id column (a pool's candidate too), as m5data sql's views
        ids = pa.array(sorted(gone), pa.string())
        for col in (c for c in ID_COLUMNS if c in table.column_names):
            table = table.filter(pc.invert(pc.fill_null(pc.is_in(table.column(col), ids), False)))
    if not mask or not table.num_rows:
        return table
    for i, name in enumerate(table.column_names):
        if name in _KEPT:
            continue
        col = table.column(i).combine_chunks()
        if _is_text(col.type):
            masked = _masked(col, name)
        elif pa.types.is_list(col.type) and _is_text(col.type.value_type):  # a category path
            values = _masked(col.values, name)  # (the offsets index the whole child array, a slice's too)
            masked = None if values is None else pa.ListArray.from_arrays(col.offsets, values, mask=col.is_null())
        else:
            continue
        if masked is not None:
            table = table.set_column(i, name, masked)
    return table


def _is_text(t) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _masked(col, name: str):
    """A string array with its personal data masked (None: nothing to mask); only the candidates
    (masking.CANDIDATES_RE2: a superset of what a rule changes, matched by Arrow's RE2) go through Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hit = pc.fill_null(pc.match_substring_regex(col, masking.CANDIDATES_RE2), False)
    if not pc.any(hit).as_py():
        return None
    fix = masking.mask_url if name.endswith("url") else masking.mask_text
    values = col.to_pylist()
    for j in pc.indices_nonzero(hit).to_pylist():
        values[j] = fix(values[j])[0]
    return pa.array(values, col.type)


def face_rows(store, blobs) -> dict[str, dict]:
    """The ``faces`` rows of the pictures ``blobs`` (images, frames folders), by blob: one read of the table."""
    return _rows_by_blob(store, "faces", blobs, ["n_faces", "frame"])


def code_rows(store, blobs) -> dict[str, dict]:
    """The ``image_codes`` rows of the pictures ``blobs``, by blob: one read of the table."""
    return _rows_by_blob(store, "image_codes", blobs, ["n_codes", "code_kind"])


def _rows_by_blob(store, table: str, blobs, columns: list[str]) -> dict[str, dict]:
    """Rows of a table of boxes per picture (``faces``, ``image_codes``) for ``blobs``: their size, ``columns``, boxes."""
    from ..storage.views import sql_str

    blobs = sorted({b for b in blobs if b})
    if not blobs:
        return {}
    found = store.read(table, where=f"blob IN ({', '.join(sql_str(b) for b in blobs)})",
                       columns=["blob", "width", "height", *columns, "x0", "y0", "x1", "y1"])
    return {row["blob"]: row for row in found.to_pylist()}


def picture(data: bytes, row: dict | None, frame: int = 0, codes: dict | None = None,
            still: bool = False) -> tuple[bytes, int]:
    """``(bytes, boxes blurred)``: a picture (its bytes ``data``; for a video's frame, ``row`` is its frames
    folder's and ``frame`` the picture's index there) as it may leave, its faces blurred (a JPEG then) by the
    boxes of its ``faces`` row, or, without a row, by those detected now (a picture extract never looked
    at); ``still`` (a picture, not a video's frame): its QR codes blurred too, by its ``image_codes`` row
    ``codes`` or, without one, as scanned now (m5data/vision/codes.py); ``data`` itself when it shows
    neither or cannot be decoded."""
    from ..faces.boxes import blur_jpeg, boxes_by_frame

    if row is not None:
        boxes, size = boxes_by_frame(row).get(frame, []), (row["width"], row["height"])
    else:
        import cv2
        import numpy as np

        from ..faces.detect import detect

        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            return data, 0
        boxes, size = [(f.x0, f.y0, f.x1, f.y1) for f in detect(bgr)], (bgr.shape[1], bgr.shape[0])
    out, n = blur_jpeg(data, boxes, size)
    if still:
        qr, qsize = _qr_boxes(data, codes)
        out, m = blur_jpeg(out, qr, qsize)
        n += m
    return out, n


def _qr_boxes(data: bytes, codes: dict | None) -> tuple[list, tuple[int, int]]:
    """The QR boxes of a picture and the size they are in: its ``image_codes`` row's, or scanned now."""
    from ..vision.codes import QR, qr_boxes, scan

    if codes is not None and codes.get("n_codes") is not None:
        return qr_boxes(codes), (codes["width"], codes["height"])
    import cv2
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return [], (0, 0)
    return [(c.x0, c.y0, c.x1, c.y1) for c in scan(bgr) if c.kind == QR], (bgr.shape[1], bgr.shape[0])


def picture_key(data: bytes, row: dict | None, frame: int = 0, codes: dict | None = None, still: bool = False) -> str:
    """What decides what :func:`picture` returns for these arguments, as a hex digest: the bytes, the
    ``faces`` row and frame index (or, without a row, the detector that looks now) and the blur's rules.
    Two calls of equal keys give equal pictures: one made earlier may be used again (the report's gallery)."""
    import hashlib
    import json

    from ..faces.boxes import GROW
    from ..faces.detect import MODEL, THRESHOLD

    digest = hashlib.sha1(data)
    from ..vision.codes import scanner

    looked = [codes, scanner()] if still else None  # a picture's QR codes: its row, or the scanner that looks now
    digest.update(json.dumps([row, frame, MODEL, THRESHOLD, GROW, looked], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def picture_of(store, blob: str, data: bytes, frame: int = 0) -> tuple[bytes, int]:
    """:func:`picture` of the store's picture ``blob`` (a still picture: its QR codes blurred too), its rows read now."""
    return picture(data, face_rows(store, [blob]).get(blob), frame, code_rows(store, [blob]).get(blob), still=True)
