"""A product's main image, defined once: which media row it is, in SQL and in Arrow, and the order
that shows a product's images main one first. Every stage that needs it (dedup, match_level, pools,
the crowd's tasks and labelling UI, splits, export, the report, takedowns) takes it from here.

A main image is a media row with ``kind = 'image'`` and ``role = 'main'``; a product's main image
is its first such row with ``status = 'ok'`` by ``position``, then ``media_id`` (nulls last).

**A null role is not main.** ``role`` is what the writer of a row knew of it: the crawl writes
``main`` for a page's first image and ``gallery`` for the others, a URL list ``main`` for each image,
the importer ``main`` for a product's picture, extract ``derived`` for what it makes; no stage
writes an image row without a role (docs/store.md lists ``main``, ``gallery``, ``video``,
``derived``, ``audio``). An image with no role was therefore written by none of them (a store
written by hand, or by an older version) and nothing says it is the product's main picture: it is
one of the product's images, shown after the main one (:func:`image_preference`) where any image is
shown, never taken as the main one where the main one decides (duplicates, match levels, pools,
splits' modalities, export's image). Export once counted it as main (``coalesce(role, 'main')``)
while dedup, match_level and pools did not; no stage-written row ever told the two apart.
"""

from __future__ import annotations

__all__ = ["MAIN_IMAGE", "image_preference", "is_main", "is_main_image", "main_image_mask", "main_image_sql"]


def is_main(alias: str = "", ok: bool = False) -> str:
    """The SQL predicate "this media row (``alias``, or the unqualified columns) is a main image"
    (false, never null, for a row without a role), with ``status = 'ok'`` too when ``ok``; in
    parentheses, so that it sits in any expression."""
    a = f"{alias}." if alias else ""
    where = f"{a}kind = 'image' AND coalesce({a}role = 'main', false)"
    return f"({where} AND {a}status = 'ok')" if ok else f"({where})"


MAIN_IMAGE = is_main(ok=True)  # a media row that can be a product's main image


def is_main_image(kind, role) -> bool:
    """:func:`is_main` of one row's values in Python."""
    return kind == "image" and role == "main"


def main_image_sql(columns: str, only: str = "") -> str:
    """SQL of each product's main image (``columns`` of its media row, ``product_id`` among them): the
    first :data:`MAIN_IMAGE` row by position, then media_id (nulls last). ``only``: more of the media
    rows' filter (``AND ...``)."""
    return (f"SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY product_id ORDER BY position, media_id) "
            f"AS main_rank FROM media WHERE {MAIN_IMAGE} {only}) WHERE main_rank = 1")


def image_preference(alias: str) -> str:
    """The ORDER BY of a product's image rows (media ``alias``) that puts its main image first, then
    the others (a row without a role among them) by position, then media_id: the image shown for a
    product, its main one where it has one."""
    return f"{alias}.role IS DISTINCT FROM 'main', {alias}.position, {alias}.media_id"


def main_image_mask(media):
    """The rows of an Arrow ``media`` table (kind, role, status) that :data:`MAIN_IMAGE` keeps, as a
    boolean array (false for a null)."""
    import pyarrow.compute as pc

    ok = pc.and_kleene(pc.and_kleene(pc.equal(media.column("kind"), "image"), pc.equal(media.column("role"), "main")),
                       pc.equal(media.column("status"), "ok"))
    return pc.fill_null(ok, False)
