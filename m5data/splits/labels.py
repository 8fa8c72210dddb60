"""Unified label keys in SQL: a product's class / sub-class / sub-sub-class as one BIGINT.

Below ``build.py`` (which plans splits over them) and ``manifest.py`` (which counts them), so that
the arrows between those modules run one way.
"""

from __future__ import annotations

PATH_SEP = " > "  # products.category_path joined like label_map.raw_path


def cat_key_sql(level: int, alias: str = "") -> str:
    """A BIGINT key of a product's unified label at ``level`` (null when unlabelled)."""
    a = f"{alias}." if alias else ""
    key = f"({a}class_id::BIGINT << 42)"
    if level >= 2:
        key += f" | (coalesce({a}sub_class_id, 0)::BIGINT << 21)"
    if level >= 3:
        key += f" | coalesce({a}subsub_class_id, 0)::BIGINT"
    return f"CASE WHEN {a}class_id IS NULL THEN NULL ELSE {key} END"


def cat_name_sql(col: str) -> str:
    """``class/sub/subsub`` text of a key made by :func:`cat_key_sql`."""
    return (f"({col} >> 42)::VARCHAR || '/' || (({col} >> 21) & 2097151)::VARCHAR || '/' || "
            f"({col} & 2097151)::VARCHAR")


def cat_key_of(name: str) -> int:
    c, s, ss = (int(x) for x in name.split("/"))
    return (c << 42) | (s << 21) | ss
