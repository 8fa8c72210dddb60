"""The manifest of a split version: per split its products, classes, modality completeness and checksum.

Written to ``<store>/derived/splits/<version>/manifest.json`` (with the version's frozen plan, see
``plan.py``). ``check-splits`` recomputes every figure from the ``splits`` table and compares.

Modalities (supplementary F of the paper): *image* = the main image downloaded (media status ok),
*caption* = a cleaned, non-empty caption, *table* = at least one spec row, *video* and *audio* =
a video / extracted audio with status ok; *all five* = all of them.

Checksum: the sum of the md5 digests of ``<seed>:<product_id>`` over the split, each read as a
128-bit little-endian integer, modulo 2**128, in hex (:func:`checksum`): independent of row order, so
the build needs no sort of millions of ids, and for a product alone in its group the digest is the
one its split was drawn by, so the build hashes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import UserError
from ..storage.names import check_name
from .carry import FLAGS, MODALITY_CTES
from .labels import PATH_SEP, cat_key_sql
from .plan import SPLITS

MODALITIES = ("image", "caption", "table", "video", "audio")
MANIFEST = "manifest.json"


class ManifestError(UserError, ValueError):
    """A split manifest that cannot be read (not JSON, not UTF-8); the message names the file."""


def manifest_rel(version: str) -> str:
    """``derived/splits/<version>/manifest.json``; BadNameError for a version that is not a plain name."""
    return f"derived/splits/{check_name('split version', version)}/{MANIFEST}"


def manifest_path(store, version: str) -> Path | str:
    """Where the manifest is, for messages: ``<store>/derived/splits/<version>/manifest.json`` (or its URL)."""
    return store.where(manifest_rel(version))


def read_manifest(store, version: str) -> dict | None:
    try:  # a ValueError: not JSON, or not UTF-8
        text = store.read_text(manifest_rel(version))
        return None if text is None else json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"corrupt split manifest {manifest_path(store, version)}: {exc}") from None


def write_manifest(store, version: str, data: dict) -> Path | str:
    """Write whole (a local store: temp file, rename; object storage: one PUT)."""
    store.write_text(manifest_rel(version), json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    return manifest_path(store, version)


def label_sql(level: int) -> str:
    """SQL of (product_id, cat): each product's unified label key at ``level`` (null when unlabelled)."""
    return f"""
        SELECT p.product_id, {cat_key_sql(level, 'l')} AS cat
        FROM products p LEFT JOIN label_map l
          ON l.platform = coalesce(p.platform, '')
         AND l.raw_path = coalesce(array_to_string(p.category_path, '{PATH_SEP}'), '')
    """


def split_stats(con, source: str, labels: str | None = None, seed: int = 0, flags: str | None = None) -> dict:
    """Per split: products, classes (distinct unified labels), modality counts and checksum, in one grouped pass.

    Args:
        con: a store connection.
        source: a table or view name with columns (product_id, split), and cat without ``labels``.
        labels: SQL of (product_id, cat), e.g. :func:`label_sql`; None when ``source`` has cat.
        seed: the version's seed (the checksum hashes ``<seed>:<product_id>``); ignored when ``source``
            has the digest's limbs already (columns c0..c3: the build reuses its hashes).
        flags: a table of (product_id, flags) with the modalities as ``carry.FLAGS`` bits, else they are
            read from ``media``, ``captions`` and ``specs`` here.
    """
    mods = ", ".join(f'count(*) FILTER (WHERE "{m}")' for m in MODALITIES)
    every = " AND ".join(f'"{m}"' for m in MODALITIES)
    # the checksum's four 32-bit limbs, summed apart so that no sum overflows (combined below)
    limbs = ", ".join(f"sum(c{i}::UBIGINT)" for i in range(4))
    if labels:
        digest = f"md5_number('{int(seed)}:' || a.product_id)"
        parts = ", ".join(f"(({digest} >> {32 * i}) & 4294967295)::UINTEGER AS c{i}" for i in range(4))
    else:
        parts = ", ".join(f"a.c{i}" for i in range(4))
    if flags:
        bits = ", ".join(f'(coalesce(f.flags, 0) & {FLAGS[m]}) <> 0 AS "{m}"' for m in MODALITIES)
        rows = con.execute(f"""
            SELECT split, count(*), count(DISTINCT cat), count(*) FILTER (WHERE cat IS NULL), {mods},
                   count(*) FILTER (WHERE {every}), {limbs}
            FROM (SELECT a.split, {'lab.cat' if labels else 'a.cat'}, {parts}, {bits}
                  FROM {source} a
                  {f'LEFT JOIN ({labels}) lab ON lab.product_id = a.product_id' if labels else ''}
                  LEFT JOIN {flags} f ON f.product_id = a.product_id)
            GROUP BY split
        """).fetchall()
        return _entries(rows)
    rows = con.execute(f"""
        WITH {MODALITY_CTES}, x AS (
            SELECT a.split, {'lab.cat' if labels else 'a.cat'}, {parts},
                   coalesce(m.image, false) AS image, c.product_id IS NOT NULL AS caption,
                   t.product_id IS NOT NULL AS "table", coalesce(m.video, false) AS video,
                   coalesce(m.audio, false) AS audio
            FROM {source} a
            {f'LEFT JOIN ({labels}) lab ON lab.product_id = a.product_id' if labels else ''}
            LEFT JOIN m ON m.product_id = a.product_id
            LEFT JOIN c ON c.product_id = a.product_id
            LEFT JOIN t ON t.product_id = a.product_id
        )
        SELECT split, count(*), count(DISTINCT cat), count(*) FILTER (WHERE cat IS NULL), {mods},
               count(*) FILTER (WHERE {every}), {limbs}
        FROM x GROUP BY split
    """).fetchall()
    return _entries(rows)


def _entries(rows) -> dict:
    """Manifest entries of :func:`split_stats`'s grouped rows, in the order of ``plan.SPLITS``."""
    out: dict[str, dict] = {}
    for row in rows:
        split, n, classes, unlabeled = row[:4]
        counts = dict(zip(MODALITIES, row[4:9]))
        total = sum(int(limb) << (32 * i) for i, limb in enumerate(row[10:14])) % (1 << 128)
        out[split] = {"products": n, "classes": classes, "unlabeled": unlabeled,
                      "modalities": counts | {"all_five": row[9]}, "checksum": f"{total:032x}"}
    order = {s: i for i, s in enumerate(SPLITS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def checksum(ids, seed: int = 0) -> str:
    """The manifest's checksum of a collection of product ids, in Python (for users and tests)."""
    digests = (int.from_bytes(hashlib.md5(f"{seed}:{p}".encode()).digest(), "little") for p in ids)
    return f"{sum(digests) % (1 << 128):032x}"
