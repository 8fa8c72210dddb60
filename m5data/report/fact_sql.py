"""What the report keeps, as SQL: the facts of each store table (:data:`SOURCES`, with the column its
changed groups are found by), the running totals grouped from them (:data:`TOTALS`), each product's
modality flags (:data:`FLAGS`) and their totals (:data:`FLAG_TOTALS`), and the names of their views in
the report's connection; :func:`live` makes those views from the store's tables as they are now.
How a run makes and moves them is :mod:`.facts`.
"""

from __future__ import annotations

from .data import FAILURE_REASON

# the table's changed-group column and the SQL of the facts of its rows (in no order: every statistic
# of the page is a GROUP BY with a total order, the same whatever order the facts are in)
SOURCES = {
    "products": ("product_id", """
        SELECT product_id, platform, merchant_id, array_to_string(category_path, ' > ') AS path,
               len(category_path)::INTEGER AS levels,
               CASE WHEN length(trim(title)) > 0 THEN length(title) END::INTEGER AS title_chars
        FROM products {where}"""),
    "media": ("media_id", """
        SELECT media_id, product_id, kind, status, quality_tier, duration,
               CASE WHEN status NOT IN ('ok', 'pending') THEN """ + FAILURE_REASON + """ END AS reason
        FROM media {where}"""),
    "specs": ("product_id", """
        SELECT product_id, property, value, count(*)::BIGINT AS n FROM specs {where} GROUP BY ALL"""),
    "dedup": ("product_id", "SELECT product_id, group_id, rule FROM dedup {where}"),
    # its level per product: the match-level section's counts without a GROUP BY of the table's view
    # (0.045 s a run at 100k products, and 0.02 for that view's making)
    "caption_match": ("product_id", "SELECT product_id, level FROM caption_match {where}"),
    # each picture's faces and product (the compliance section's faces per product: compliance_facts.py)
    "faces": ("blob", "SELECT blob, product_id, n_faces FROM faces {where}"),
}
FLAG_TABLES = ("products", "media", "specs")  # the facts a product's modalities are made from
KEPT_VIEWS = {t: f"report_{t}_kept" for t in SOURCES}  # views of the kept files in the report's connection

# The running totals the page is drawn from, kept beside the facts: name -> (its facts table, the SQL
# grouping a relation ``{f}`` of those facts into its keys and ``n``). A full run groups every fact;
# an incremental run adds the groups of the changed groups' new facts to the kept totals and takes
# away those of their old facts (:func:`_delta`), so it reads only what changed. The sums are
# integers: both ways give the same totals, whatever order the facts come in.
TOTALS = {
    "paths": ("products", "SELECT platform, path, levels, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "merchants": ("products", "SELECT merchant_id, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "titles": ("products", "SELECT title_chars, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "media": ("media", "SELECT kind, status, quality_tier, reason, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "durations": ("media", "SELECT duration, count(*)::BIGINT AS n FROM {f} "
                           "WHERE kind = 'video' AND status = 'ok' AND duration IS NOT NULL GROUP BY ALL"),
    "spec_values": ("specs", "SELECT property, value, sum(n)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "dedup_groups": ("dedup", "SELECT group_id, rule, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
    "levels": ("caption_match", "SELECT level, count(*)::BIGINT AS n FROM {f} GROUP BY ALL"),
}
TOTAL_VIEWS = {name: f"report_{name}" for name in TOTALS}  # views of the kept totals, read by .data

# Each product's five modalities (``storage.stats.MODALITY_SQL``) with its breadcrumb, from the facts:
# ``{p}``, ``{m}`` and ``{s}`` relations of products', media and specs facts. Kept as facts of their
# own (``flags``, a row per product, :data:`FLAGS_VIEW`): an incremental run makes those of the
# products whose rows of any of the three tables changed, and reads the kept ones for the rest.
FLAGS = """
    SELECT p.product_id, p.platform, p.path, p.levels, coalesce(m.m_image, false) AS m_image,
           p.title_chars IS NOT NULL AS m_caption, s.product_id IS NOT NULL AS m_table,
           coalesce(m.m_video, false) AS m_video, coalesce(m.m_audio, false) AS m_audio
    FROM {p} p
    LEFT JOIN (SELECT product_id, bool_or(kind = 'image') AS m_image, bool_or(kind = 'video') AS m_video,
                      bool_or(kind = 'audio') AS m_audio
               FROM {m} WHERE status = 'ok' AND kind IN ('image', 'video', 'audio') GROUP BY 1) m
           ON m.product_id = p.product_id
    LEFT JOIN (SELECT DISTINCT product_id FROM {s}) s ON s.product_id = p.product_id"""
# ... and the running total of products per exact combination of them (kept as the others, its delta
# from the flags before and after of the products whose rows of any table changed)
COMBOS = "SELECT m_image, m_caption, m_table, m_video, m_audio, count(*)::BIGINT AS n FROM ({flags}) GROUP BY ALL"
# ... and the products with a downloaded image per breadcrumb (the gallery's top categories, :func:`.gallery_data.top_categories`)
IMAGED = "SELECT path, count(*)::BIGINT AS n FROM ({flags}) WHERE levels > 0 AND m_image GROUP BY ALL"
FLAG_TOTALS = {"combos": (COMBOS, "report_combos"), "imaged": (IMAGED, "report_imaged_paths")}  # name -> (SQL, view)
KEPT_TOTALS = (*TOTALS, *FLAG_TOTALS)
FLAGS_VIEW = "report_flags"  # every product's flags (the splits section, the gallery's picks)


def live(con) -> None:
    """Views of the facts and totals made from the store's tables as they are now, in ``con`` (a store
    connection): for reading :mod:`.data` without kept facts (tests, one-off queries)."""
    for table, (_, sql) in SOURCES.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {KEPT_VIEWS[table]} AS {sql.replace('{where}', '')}")
    for name, (table, sql) in TOTALS.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {TOTAL_VIEWS[name]} AS {sql.format(f=KEPT_VIEWS[table])}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {FLAGS_VIEW} AS " + FLAGS.format(
        p=KEPT_VIEWS["products"], m=KEPT_VIEWS["media"], s=KEPT_VIEWS["specs"]))
    for sql, view in FLAG_TOTALS.values():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {sql.format(flags=f'SELECT * FROM {FLAGS_VIEW}')}")
