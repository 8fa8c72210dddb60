"""Every table of the store, each with one pyarrow schema, its key and its schema version.

This module is the only place that defines table layouts; ``docs/store.md`` documents each column.

Keys: a write is an *upsert* by key. Rows are never updated in place; a later write of the same key
wins when the table is read (last write wins), and ``compact`` drops the older copies for good.
``replace_by`` names the columns whose latest write replaces all earlier rows of that group: a
product's spec table is replaced whole when the product is crawled again, so a property that
disappeared from the page disappears from the store too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SEQ_COLUMN = "_seq"  # write sequence (ns since epoch of the write); not part of a table's public schema
MARKER = "store.json"  # the store's format marker, at its root (a folder or an object-storage prefix)
STORE_FORMAT = 1  # the layout version the marker records

_ts = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    version: int
    replace_by: tuple[str, ...] = ()
    doc: str = ""

    @property
    def group(self) -> tuple[str, ...]:
        """Columns whose latest write wins as a whole (the key unless ``replace_by`` says otherwise)."""
        return self.replace_by or self.key


def _spec(name: str, doc: str, key: tuple[str, ...], version: int, cols: list[tuple[str, pa.DataType]],
          replace_by: tuple[str, ...] = ()) -> TableSpec:
    schema = pa.schema([pa.field(n, t, nullable=n not in key) for n, t in cols])
    return TableSpec(name, schema, key, version, replace_by, doc)


PRODUCTS = _spec("products", "one row per product page", ("product_id",), 1, [
    ("product_id", pa.string()),  # platform:source_id
    ("platform", pa.string()),
    ("source_id", pa.string()),
    ("url", pa.string()),
    ("merchant_id", pa.string()),
    ("title", pa.string()),
    ("price", pa.float64()),
    ("currency", pa.string()),
    ("category_path", pa.list_(pa.string())),  # raw breadcrumb, top level first
    ("description", pa.string()),
    ("crawled_at", _ts),
    ("content_hash", pa.string()),  # sha256 of the normalised item, for duplicate pages
    ("has_image", pa.bool_()),
    ("has_video", pa.bool_()),
    ("has_caption", pa.bool_()),
    ("has_specs", pa.bool_()),
    ("run_id", pa.string()),
])

SPECS = _spec("specs", "one row per property value of a product (long form)", ("product_id", "position"), 1, [
    ("product_id", pa.string()),
    ("position", pa.int32()),  # order on the page, from 0
    ("property", pa.string()),
    ("value", pa.string()),
], replace_by=("product_id",))

MEDIA = _spec("media", "one row per media object, downloaded or derived", ("media_id",), 1, [
    ("media_id", pa.string()),  # sha1 of product_id|kind|url (downloaded) or of source media_id|kind (derived)
    ("product_id", pa.string()),
    ("kind", pa.string()),  # image, video, audio, frames, mfcc
    ("role", pa.string()),  # main, gallery, video, derived
    ("position", pa.int32()),
    ("url", pa.string()),
    ("source_media_id", pa.string()),  # for derived media: the media it came from
    ("blob", pa.string()),  # path relative to the store root (blobs/ab/<sha256>.<ext> or derived/...)
    ("sha256", pa.string()),
    ("mime", pa.string()),
    ("bytes", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("duration", pa.float64()),  # seconds
    ("fps", pa.float64()),
    ("codec", pa.string()),
    ("has_audio", pa.bool_()),
    ("frame_count", pa.int32()),
    ("quality_tier", pa.int8()),  # image quality group by original size: 1 (high), 2, 3 (low)
    ("phash", pa.string()),  # perceptual hash, hex
    ("status", pa.string()),  # pending, ok, failed, too_large, not_media, corrupt, absent, opted_out
    ("http_status", pa.int32()),
    ("error", pa.string()),
    ("attempts", pa.int32()),
    ("meta", pa.string()),  # JSON: kind-specific details (frame timestamps, MFCC shape, ...)
    ("updated_at", _ts),
])

CAPTIONS = _spec("captions", "one row per product: cleaned caption and its tokens", ("product_id",), 1, [
    ("product_id", pa.string()),
    ("text", pa.string()),  # cleaned caption
    ("tokens", pa.list_(pa.string())),  # jieba segmentation
    ("n_chars", pa.int32()),
    ("lang", pa.string()),
    ("status", pa.string()),  # ok, empty
    ("updated_at", _ts),
])

CRAWL_ERRORS = _spec("crawl_errors", "one row per page that could not be parsed fully", ("url",), 1, [
    ("url", pa.string()),
    ("platform", pa.string()),
    ("reason", pa.string()),
    ("http_status", pa.int32()),
    ("run_id", pa.string()),
    ("seen_at", _ts),
])

PAGE_VALIDATORS = _spec("page_validators", "one row per product page URL: the validators its last 200 sent",
                        ("url",), 1, [
    ("url", pa.string()),  # the page link the crawl followed (before redirects): what a refresh requests
    ("product_id", pa.string()),  # the product the page gave
    ("etag", pa.string()),  # the ETag header as sent (a weak one keeps its W/ prefix); null when none
    ("last_modified", pa.string()),  # the Last-Modified header as sent (an HTTP date); null when none
    ("run_id", pa.string()),
    ("seen_at", _ts),
])

TAXONOMY = _spec("taxonomy", "one row per unified label (class, sub-class or subsub-class)", ("level", "label_id"), 1, [
    ("level", pa.int8()),  # 1 class, 2 sub-class, 3 subsub-class
    ("label_id", pa.int32()),
    ("name", pa.string()),
    ("parent_id", pa.int32()),  # label_id of the parent level (null for level 1)
    ("class_id", pa.int32()),
    ("sub_class_id", pa.int32()),
    ("subsub_class_id", pa.int32()),
])

LABEL_MAP = _spec("label_map", "one row per raw platform category path", ("platform", "raw_path"), 1, [
    ("platform", pa.string()),
    ("raw_path", pa.string()),  # the breadcrumb joined by ' > '
    ("raw_level1", pa.string()),
    ("raw_level2", pa.string()),
    ("raw_level3", pa.string()),
    ("class_id", pa.int32()),
    ("sub_class_id", pa.int32()),
    ("subsub_class_id", pa.int32()),  # 0 when the sub-class has no level-3 children
    ("method", pa.string()),  # identical, merged, own, review, unmapped
])

ANNOTATIONS = _spec("annotations", "one row per worker judgement of a query/candidate pair",
                    ("query_id", "candidate_id", "worker_id"), 2, [
    ("query_id", pa.string()),
    ("candidate_id", pa.string()),
    ("worker_id", pa.string()),
    ("label", pa.string()),  # match, mismatch, uncertain
    ("is_gold", pa.bool_()),
    ("source", pa.string()),  # import, simulate, ui
    ("created_at", _ts),
])

SPLITS = _spec("splits", "one row per product in a split of a split version", ("version", "split", "product_id"), 2, [
    ("product_id", pa.string()),
    ("split", pa.string()),  # train, query-c, gallery-c, query-fg, gallery-fg, cls-train, cls-test, subset
    ("version", pa.string()),
], replace_by=("version",))

DEDUP = _spec("dedup", "one row per product: its duplicate group (annotate dedup)", ("product_id",), 1, [
    ("product_id", pa.string()),
    ("group_id", pa.string()),  # the smallest product_id of the group (a product alone is its own group)
    ("rule", pa.string()),  # evidence that joined it: exact_image, exact_title, phash, minhash, spec; null when alone
    ("matched_id", pa.string()),  # the product it was joined to by that rule
    ("distance", pa.float64()),  # Hamming distance (phash) or 1 - Jaccard estimate (minhash); 0 for exact rules
    ("reason", pa.string()),  # evidence the product lacks (no main image, empty title, no specs); null when none
    ("run_id", pa.string()),
])

CAPTION_MATCH = _spec("caption_match", "one row per product: how well its caption matches it (annotate match-level)",
                      ("product_id",), 1, [
    ("product_id", pa.string()),
    ("score", pa.float64()),  # 0 (poor) .. 1 (well matched)
    ("level", pa.string()),  # well, partial, poor; null when no evidence (see reason)
    ("category_score", pa.float64()),  # agreement with the unified category (cross-fitted classifier)
    ("spec_score", pa.float64()),  # overlap of caption tokens with spec values
    ("image_score", pa.float64()),  # agreement with the image, where image evidence exists
    ("reason", pa.string()),  # why a score is missing (empty caption, no label, ...)
    ("run_id", pa.string()),
])

POOLS = _spec("pools", "one row per (query, candidate) of a query's candidate pool (annotate pools)",
              ("query_id", "candidate_id"), 1, [
    ("query_id", pa.string()),
    ("candidate_id", pa.string()),
    ("rank", pa.int32()),  # 1 = most similar
    ("score", pa.float64()),  # cosine of the concatenated embeddings
    ("embedder", pa.string()),
    ("run_id", pa.string()),
], replace_by=("query_id",))

MATCHES = _spec("matches", "one row per judged pair: aggregated crowd labels (annotate aggregate)",
                ("query_id", "candidate_id"), 1, [
    ("query_id", pa.string()),
    ("candidate_id", pa.string()),
    ("prob", pa.float64()),  # probability of match
    ("accepted", pa.bool_()),  # prob >= the acceptance threshold
    ("method", pa.string()),  # glad, majority, dawid_skene
    ("n_judgements", pa.int32()),
    ("run_id", pa.string()),
])

WORKERS = _spec("workers", "one row per annotator: estimated ability (annotate aggregate)", ("worker_id",), 1, [
    ("worker_id", pa.string()),
    ("ability", pa.float64()),  # GLAD alpha (higher = more reliable; negative = adversarial)
    ("gold_accuracy", pa.float64()),  # share of gold questions answered right; null without gold
    ("n_judgements", pa.int64()),
    ("method", pa.string()),
    ("run_id", pa.string()),
])

RUNS = _spec("runs", "one row per stage run", ("run_id",), 1, [
    ("run_id", pa.string()),
    ("stage", pa.string()),
    ("started_at", _ts),
    ("ended_at", _ts),
    ("status", pa.string()),  # ok, failed, interrupted
    ("n_in", pa.int64()),
    ("n_out", pa.int64()),
    ("n_failed", pa.int64()),
    ("bytes", pa.int64()),
    ("seconds", pa.float64()),
    ("failures", pa.string()),  # JSON object: reason -> count
    ("config", pa.string()),  # JSON of the effective settings
])

# issue 57 (OPTOUT): what owners state - their opt-outs, and the licence a product page gives
OPTOUTS = _spec("optouts", "one row per opt-out a page or media file stated (crawl, download)", ("url",), 1, [
    ("url", pa.string()),  # the page (scope page) or media file (scope media) that stated it
    ("product_id", pa.string()),  # the product it concerns; null when the crawl could not tell (robots.txt)
    ("scope", pa.string()),  # page: no product content stored, no media fetched; media: that file only
    ("source", pa.string()),  # x-robots-tag, tdm-header, tdm-meta, tdmrep.json, robots.txt
    ("directive", pa.string()),  # what it said: "noai, noindex", "tdm-reservation: 1 (location /p/*)"
    ("run_id", pa.string()),
    ("seen_at", _ts),
])

LICENSES = _spec("licenses", "one row per product: the licence its page states (crawl)", ("product_id",), 1, [
    ("product_id", pa.string()),
    ("url", pa.string()),  # the page that stated it
    ("license", pa.string()),  # schema.org license (a URL or text), else <link rel="license" href>
    ("acquire_license_page", pa.string()),  # schema.org acquireLicensePage
    ("copyright_notice", pa.string()),  # schema.org copyrightNotice
    ("source", pa.string()),  # schema.org (the Product's, else an ImageObject's: JSON-LD or microdata), link-rel
    ("run_id", pa.string()),
    ("seen_at", _ts),
])


# face boxes per detected picture (m5data/faces/): what an export blurs, detected once
FACES = _spec("faces", "one row per image or frames folder looked at for faces (extract, export)", ("blob",), 1, [
    ("blob", pa.string()),  # the file detected: an image blob or a frames folder (one picture per frame)
    ("media_id", pa.string()),  # the media row it was found through (a shared blob: the first)
    ("product_id", pa.string()),
    ("kind", pa.string()),  # image_norm, image, frames
    ("width", pa.int32()),  # of the picture(s) detected: the boxes' pixels
    ("height", pa.int32()),
    ("model", pa.string()),  # detector and its version
    ("threshold", pa.float64()),  # score a face needed
    ("n_faces", pa.int32()),  # faces found (0: looked at, none)
    ("frame", pa.list_(pa.int32())),  # per face: 0 for an image, the frame's index (0-based) in a folder
    ("x0", pa.list_(pa.float32())),  # per face: the box, in pixels
    ("y0", pa.list_(pa.float32())),
    ("x1", pa.list_(pa.float32())),
    ("y1", pa.list_(pa.float32())),
    ("score", pa.list_(pa.float32())),  # per face: the detector's score (0-1)
    ("detected_at", _ts),
])

TAKEDOWNS = _spec("takedowns", "one row per takedown request (m5data takedown)", ("kind", "value"), 1, [
    ("kind", pa.string()),  # url, product_id, domain
    ("value", pa.string()),  # the URL, product id or host (lower case) taken down
    ("reason", pa.string()),
    ("taken_at", _ts),  # when it was recorded ("at" is a word of SQL)
])

IMAGE_VECTORS = _spec("image_vectors", "one row per normalised image and image model (the vision stage)",
                      ("media_id", "model"), 1, [
    ("media_id", pa.string()),  # the image_norm media row
    ("model", pa.string()),  # the model and its weights (vision/backbone.py: identity)
    ("product_id", pa.string()),
    ("blob", pa.string()),  # the normalised image's file
    ("dim", pa.int32()),  # the vector's length (null with an error)
    ("vector", pa.list_(pa.float32())),  # L2-normalised features; null when the picture could not be read
    ("error", pa.string()),  # why there is no vector (the picture's reason); null when there is one
    ("made_at", _ts),
])

IMAGE_CODES = _spec("image_codes", "one row per picture scanned for QR codes and barcodes (vision, export)",
                    ("blob",), 1, [
    ("blob", pa.string()),  # the picture scanned (a normalised image, or a JPEG original)
    ("media_id", pa.string()),  # the media row it was found through (a shared blob: the first)
    ("product_id", pa.string()),
    ("kind", pa.string()),  # image_norm or image
    ("width", pa.int32()),  # of the picture scanned: the boxes' pixels
    ("height", pa.int32()),
    ("scanner", pa.string()),  # the readers and their version (vision/codes.py)
    ("n_codes", pa.int32()),  # codes found (0: scanned, none)
    ("qr_codes", pa.int32()),  # of which QR codes (blurred in exports: export.blur_codes)
    ("code_kind", pa.list_(pa.string())),  # per code: qr or barcode
    ("value", pa.list_(pa.string())),  # per code: what it says; null when found but not decoded
    ("x0", pa.list_(pa.float32())),  # per code: its box, in pixels
    ("y0", pa.list_(pa.float32())),
    ("x1", pa.list_(pa.float32())),
    ("y1", pa.list_(pa.float32())),
    ("scanned_at", _ts),
])

TABLES: dict[str, TableSpec] = {t.name: t for t in (
    PRODUCTS, SPECS, MEDIA, CAPTIONS, CRAWL_ERRORS, PAGE_VALIDATORS, TAXONOMY, LABEL_MAP, ANNOTATIONS, SPLITS, RUNS,
    DEDUP, CAPTION_MATCH, POOLS, MATCHES, WORKERS,
    OPTOUTS, LICENSES,  # issue 57 (OPTOUT)
    FACES,
    TAKEDOWNS,  # issue 57: products their owners asked to remove (storage/takedowns.py)
    IMAGE_VECTORS, IMAGE_CODES,  # issue 78: what the pictures show (m5data/vision)
)}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r} (tables: {', '.join(TABLES)})") from None


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR", pa.int8(): "TINYINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN", _ts: "TIMESTAMPTZ",
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB SQL type of a pyarrow type used in these schemas."""
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    return _DUCKDB_TYPES[t]
