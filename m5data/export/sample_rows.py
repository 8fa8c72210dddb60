"""Export samples read from the store: the SQL of a sample's header (product, caption, unified labels,
duplicate group, licence and provenance, the main image's rights), of its media and of the label
hashes an incremental export compares, and the :class:`~.samples.Sample` each row makes
(:func:`sample_from_row`; :func:`load_samples` for a list of products; ``members.py`` streams them in
one ordered pass).
"""

from __future__ import annotations

from ..optout import OPTED_OUT_PRODUCTS_SQL
from ..storage.main_image import MAIN_IMAGE, is_main
from .samples import PROVENANCE, Sample


def use_ids(con, product_ids) -> None:
    """(Re)create the temp table ``wanted(product_id)`` on ``con`` (a list parameter: no pandas, no Arrow)."""
    con.execute("CREATE OR REPLACE TEMP TABLE wanted AS SELECT DISTINCT unnest(?::VARCHAR[]) AS product_id",
                [list(product_ids)])


def first_media(rows) -> dict[str, str]:
    media: dict[str, str] = {}
    for x in rows:
        if x["k"] == "image" and x["m"] not in (None, "image/jpeg"):
            continue  # only a JPEG original can stand in for a missing normalised image
        media.setdefault(x["k"], x["b"])  # first by position: the main one
    return media


def sample_from_row(r: dict, specs: list[tuple[str, str]], m: dict[str, str]) -> Sample:
    sub3 = r["subsub_class_id"]
    return Sample(
        product_id=r["product_id"], platform=r["platform"], source_id=r["source_id"], title=r["title"],
        caption=r["caption"] or r["title"] or None, specs=specs,
        class_id=r["class_id"], class_name=r["class_name"], sub_class_id=r["sub_class_id"],
        sub_class_name=r["sub_class_name"], subsub_class_id=sub3 if sub3 else None,
        subsub_class_name=r["subsub_class_name"], group_id=r["group_id"],
        image=m.get("image_norm") or m.get("image"), frames=m.get("frames"), mfcc=m.get("mfcc"),
        mp3=m.get("audio"), video=m.get("video"), provenance={key: r.get(key) for key in PROVENANCE},
    )


# the XMP rights the download read from each product's main image (media.meta download.rights, the
# first main image by position, as the sample's image is): one row per product of ``ids``
IMAGE_RIGHTS_SQL = """SELECT product_id,
       json_extract_string(meta, '$.download.rights.web_statement') AS image_web_statement,
       json_extract_string(meta, '$.download.rights.rights') AS image_rights
FROM media
WHERE product_id IN (SELECT product_id FROM ids) AND """ + MAIN_IMAGE + """ AND blob IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY position, media_id) = 1"""

# a sample's header columns and the joins that give them, for the products of ``ids`` (a product_id
# column); also the ``s`` part of the export's one-pass stream (members.py)
SAMPLE_HEADER_SQL = """SELECT p.product_id, p.platform, p.source_id, p.title, c.text AS caption,
       l.class_id, t1.name AS class_name, l.sub_class_id, t2.name AS sub_class_name,
       l.subsub_class_id, t3.name AS subsub_class_name, d.group_id,
       p.url AS page_url, strftime(p.crawled_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS crawled_at,
       lic.license, lic.acquire_license_page, lic.copyright_notice,
       ir.image_web_statement, ir.image_rights
FROM ids JOIN products p USING (product_id)
LEFT JOIN licenses lic ON lic.product_id = p.product_id
LEFT JOIN (""" + IMAGE_RIGHTS_SQL + """) ir ON ir.product_id = p.product_id
LEFT JOIN captions c ON c.product_id = p.product_id AND c.status = 'ok'
LEFT JOIN label_map l ON l.platform = p.platform AND l.raw_path = array_to_string(p.category_path, ' > ')
LEFT JOIN taxonomy t1 ON t1.level = 1 AND t1.label_id = l.class_id
LEFT JOIN taxonomy t2 ON t2.level = 2 AND t2.label_id = l.sub_class_id
LEFT JOIN taxonomy t3 ON t3.level = 3 AND t3.label_id = l.subsub_class_id AND l.subsub_class_id <> 0
LEFT JOIN dedup d ON d.product_id = p.product_id
WHERE p.product_id NOT IN (""" + OPTED_OUT_PRODUCTS_SQL + ")"  # an owner's opt-out after its last crawl

# what the sample header reads of label_map and taxonomy, one row per category key (platform, raw_path):
# a hash of the label columns SAMPLE_HEADER_SQL gives a product of that category, by the same joins.
# align rewrites both tables whole every night (their watermarks move while few labels change): an
# incremental export compares these rows (11k at 1M products) with its base's, not every sample.
# the category key goes into the export folder (``_labels.parquet``) as the md5 of its raw path, never the
# path itself: a shop's breadcrumb is shop text that may carry personal data (the egress gate, issue 76)
LABEL_HASH_SQL = """SELECT l.platform, md5(l.raw_path) AS raw_path,
       hash(l.class_id, t1.name, l.sub_class_id, t2.name, l.subsub_class_id, t3.name) AS h
FROM label_map l
LEFT JOIN taxonomy t1 ON t1.level = 1 AND t1.label_id = l.class_id
LEFT JOIN taxonomy t2 ON t2.level = 2 AND t2.label_id = l.sub_class_id
LEFT JOIN taxonomy t3 ON t3.level = 3 AND t3.label_id = l.subsub_class_id AND l.subsub_class_id <> 0"""

_SAMPLE_SQL = f"""
WITH ids AS (SELECT product_id FROM wanted)
{SAMPLE_HEADER_SQL}
ORDER BY p.product_id
"""

_MEDIA_SQL = """
SELECT product_id, kind, blob, coalesce(position, 0) AS position, media_id, mime
FROM media JOIN wanted USING (product_id)
WHERE status = 'ok' AND blob IS NOT NULL AND kind IN ('image', 'image_norm', 'frames', 'mfcc', 'audio', 'video')
  AND (kind <> 'image' OR """ + is_main() + """)
ORDER BY product_id, kind, position, media_id
"""


def load_samples(con, product_ids: list[str]) -> list[Sample]:
    """The samples of ``product_ids`` (sorted by product id; unknown ids are skipped).

    Args:
        con: a connection from ``store.connect()`` (views over every table).
        product_ids: the products to assemble.
    """
    use_ids(con, product_ids)
    try:
        rows = con.execute(_SAMPLE_SQL).fetchall()
        cols = [d[0] for d in con.description]
        specs: dict[str, list[tuple[str, str]]] = {}
        for pid, prop, value in con.execute(
                "SELECT product_id, property, value FROM specs JOIN wanted USING (product_id) "
                "ORDER BY product_id, position").fetchall():
            specs.setdefault(pid, []).append((prop or "", value or ""))
        media: dict[str, dict[str, str]] = {}
        for pid, kind, blob, _pos, _mid, mime in con.execute(_MEDIA_SQL).fetchall():
            if kind == "image" and mime not in (None, "image/jpeg"):
                continue  # only a JPEG original can stand in for a missing normalised image
            media.setdefault(pid, {}).setdefault(kind, blob)  # first by position: the main one
    finally:
        con.execute("DROP TABLE IF EXISTS wanted")
    samples = []
    for row in rows:
        r = dict(zip(cols, row))
        samples.append(sample_from_row(r, specs.get(r["product_id"], []), media.get(r["product_id"], {})))
    return samples
