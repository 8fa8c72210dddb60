"""Every product's unified labels: ``products`` joined with ``label_map`` on platform + raw path.

No table of its own: the join is cheap in DuckDB and never goes stale. The same SQL works in
``m5data sql`` (see docs/align.md).
"""

from __future__ import annotations

from .inventory import PATH_SEP

PRODUCT_LABELS_SQL = f"""
SELECT p.product_id, p.platform, l.raw_path, l.class_id, l.sub_class_id, l.subsub_class_id, l.method
FROM products p
LEFT JOIN label_map l
  ON l.platform = coalesce(p.platform, '')
 AND l.raw_path = coalesce(array_to_string(p.category_path, '{PATH_SEP}'), '')
"""


def product_labels(store, where: str | None = None):
    """A pyarrow table: product_id, platform, raw_path, class_id, sub_class_id, subsub_class_id, method.

    Products whose path align has not seen yet (crawled after the last run) have null ids.
    """
    con = store.connect()
    try:
        sql = f"SELECT * FROM ({PRODUCT_LABELS_SQL}) AS labels"
        if where:
            sql += f" WHERE {where}"
        return con.sql(sql + " ORDER BY product_id").to_arrow_table()
    finally:
        con.close()
