"""The gallery's data: the top categories, each one's picks (ranked from every product's flags, or moved
from the last run's by the touched products' flags) and the picked products' image, specs and frames."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..storage.main_image import image_preference
from .data import fetch


@dataclass
class Sample:
    product_id: str
    title: str
    category: str
    image: str | None  # blob path relative to the store
    specs: list[tuple[str, str]]
    frames: str | None  # the frames folder (blob path relative to the store), if any


def top_categories(con, n: int) -> list[str]:
    """The ``n`` breadcrumbs with the most products with a downloaded image (the kept ``imaged`` total)."""
    return [c for c, _ in fetch(con, "SELECT path, n FROM report_imaged_paths ORDER BY n DESC, path LIMIT ?", [n])]


def rank_picks(con, categories: list[str], per_category: int, gone: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Each of ``categories``' first ``per_category`` products by id with a downloaded image, from every
    product's flags (read once; only those categories' products ranked), none of ``gone`` (the taken-down
    products)."""
    if not categories:
        return {}
    con.register("report_gone", pa.table({"product_id": pa.array(sorted(gone), pa.string())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE report_imaged AS SELECT path AS cat, product_id FROM report_flags "
                    "WHERE levels > 0 AND m_image AND product_id NOT IN (SELECT product_id FROM report_gone)")
    finally:
        con.unregister("report_gone")
    con.register("report_top", pa.table({"cat": pa.array(categories, pa.string())}))
    try:
        out: dict[str, list[str]] = {}
        for pid, cat in fetch(con, """
                WITH c AS (SELECT cat, product_id, row_number() OVER (PARTITION BY cat ORDER BY product_id) AS k
                           FROM report_imaged WHERE cat IN (SELECT cat FROM report_top))
                SELECT product_id, cat FROM c WHERE k <= ? ORDER BY cat, k""", [per_category]):
            out.setdefault(cat, []).append(pid)
        return out
    finally:
        con.unregister("report_top")
        con.execute("DROP TABLE report_imaged")


def moved_picks(categories: list[str], per_category: int, kept: list[tuple[str, str]], touched: set[str],
                after: pa.Table) -> dict[str, list[str]]:
    """The picks of those of ``categories`` that can be moved from the last run's (``kept``: each
    category's first ``per_category`` products by id, all of them when it had fewer) by the flags now of
    the products touched since (``after``): a category's first products now are among its kept picks not
    touched and its touched products with an image now. A category is left out where that cannot tell:
    one the last run did not pick, or a full one that lost a pick (its next product by id is not known)."""
    mine: dict[str, list[str]] = {}
    for pid, cat in kept:
        mine.setdefault(cat, []).append(pid)
    now: dict[str, set[str]] = {}
    columns = ("product_id", "path", "levels", "m_image")
    for pid, path, levels, image in zip(*(after.column(c).to_pylist() for c in columns)) if after.num_rows else ():
        if levels and levels > 0 and image:
            now.setdefault(path, set()).add(pid)
    out = {}
    for cat in categories:
        if cat not in mine:
            continue
        picked, added = mine[cat], now.get(cat, set())
        if len(picked) >= per_category and any(p in touched and p not in added for p in picked):
            continue
        out[cat] = sorted({p for p in picked if p not in touched} | added)[:per_category]
    return out


def gallery(con, picks: list[tuple[str, str]]) -> list[Sample]:
    """The picked products' image, caption, spec table and frames folder.

    Blob paths are returned as the tables hold them: the caller resolves them (they are untrusted).
    """
    titles = dict(fetch(con, "SELECT product_id, title FROM products WHERE list_contains(?, product_id)",
                        [[pid for pid, _ in picks]]))
    picked = [(pid, titles.get(pid), cat) for pid, cat in picks]
    # one query per kind for all picked products (a query per product scanned the media table each
    # time: 2 s apiece on a store of 600 uncompacted media parts, 150 s for a gallery of 24)
    ids = [pid for pid, _, _ in picked]
    image = dict(fetch(con, f"""
        SELECT product_id, blob FROM (
            SELECT m.product_id, coalesce(d.blob, m.blob) AS blob, row_number() OVER (
                       PARTITION BY m.product_id
                       ORDER BY {image_preference('m')}, d.blob) AS k
            FROM media m
            LEFT JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm' AND d.status = 'ok'
            WHERE list_contains(?, m.product_id) AND m.kind = 'image' AND m.status = 'ok')
        WHERE k = 1""", [ids]))
    specs: dict[str, list[tuple[str, str]]] = {}
    for pid, prop, value in fetch(con, """
            SELECT product_id, property, value FROM (
                SELECT product_id, property, value, position,
                       row_number() OVER (PARTITION BY product_id ORDER BY position) AS k
                FROM specs WHERE list_contains(?, product_id))
            WHERE k <= 12 ORDER BY product_id, position""", [ids]):
        specs.setdefault(pid, []).append((prop, value))
    frames = dict(fetch(con, """
        SELECT product_id, blob FROM (
            SELECT product_id, blob, row_number() OVER (PARTITION BY product_id ORDER BY position, media_id) AS k
            FROM media WHERE list_contains(?, product_id) AND kind = 'frames' AND status = 'ok')
        WHERE k = 1""", [ids]))
    return [Sample(pid, title or "", cat, image.get(pid), specs.get(pid, []), frames.get(pid))
            for pid, title, cat in picked]
