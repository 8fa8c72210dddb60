"""What is in a store: counts per table, modality completeness, top categories and properties."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import withheld
from .errors import DamagedLog
from .schema import TABLES
from .store import Store

# A product "has" a modality when the store holds it usably (not merely when the page linked it).
MODALITY_SQL = {
    "image": "EXISTS (SELECT 1 FROM media m WHERE m.product_id = p.product_id AND m.kind = 'image' AND m.status = 'ok')",
    "caption": "coalesce(length(trim(p.title)), 0) > 0",
    "video": "EXISTS (SELECT 1 FROM media m WHERE m.product_id = p.product_id AND m.kind = 'video' AND m.status = 'ok')",
    "audio": "EXISTS (SELECT 1 FROM media m WHERE m.product_id = p.product_id AND m.kind = 'audio' AND m.status = 'ok')",
    "specs": "EXISTS (SELECT 1 FROM specs s WHERE s.product_id = p.product_id)",
}


@dataclass
class StoreStats:
    counts: dict[str, int]
    parts: dict[str, int]
    products: int
    completeness: dict[str, int]  # modality (and "all five") -> products that have it
    top_categories: list[tuple[str, int]]
    top_properties: list[tuple[str, int, int]]  # property, rows, distinct values
    media_status: list[tuple[str, str, int]]  # kind, status, count
    damaged: dict[str, str] = field(default_factory=dict)  # a table whose log cannot be read -> why (object storage)


def store_stats(store: Store, top: int = 10) -> StoreStats:
    """What is in the store. A table whose log is damaged (object storage) is named in ``damaged`` with
    why; the others are counted, and the sections that read a damaged table are left empty."""
    parts, damaged = {}, {}
    for name in TABLES:
        try:
            parts[name] = len(store.parts(name))
        except DamagedLog as exc:
            damaged[name] = str(exc)
    con = store.connect(need=tuple(parts))
    try:
        counts = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in parts}
        empty = StoreStats(counts, parts, counts.get("products", 0), {}, [], [], [], damaged)
        return empty if {"products", "media", "specs"} & set(damaged) else _sections(
            con, counts, parts, damaged, top, {} if {"takedowns", "optouts"} & set(damaged) else withheld.sources(store)[0])
    finally:
        con.close()


def _sections(con, counts: dict[str, int], parts: dict[str, int], damaged: dict[str, str], top: int,
              sqls: dict[str, str]) -> StoreStats:
    flags = ", ".join(f"({sql}) AS {name}" for name, sql in MODALITY_SQL.items())
    all_five = " AND ".join(MODALITY_SQL)
    row = con.execute(
        f"WITH f AS (SELECT {flags} FROM products p) SELECT count(*), "
        + ", ".join(f"count(*) FILTER (WHERE {m})" for m in MODALITY_SQL)
        + f", count(*) FILTER (WHERE {all_five}) FROM f"
    ).fetchone()
    completeness = dict(zip([*MODALITY_SQL, "all five"], row[1:]))
    # the top lists name shop text: none of a withheld product's (egress/gate.py; the caller masks the names)
    shown = f"product_id NOT IN ({withheld.ids_sql(sqls)})" if sqls else "true"
    categories = con.execute(
        "SELECT array_to_string(category_path, ' > ') AS c, count(*) AS n FROM products "
        f"WHERE len(category_path) > 0 AND {shown} GROUP BY 1 ORDER BY n DESC, c LIMIT ?", [top]
    ).fetchall()
    properties = con.execute(
        f"SELECT property, count(*) AS n, count(DISTINCT value) FROM specs WHERE {shown} GROUP BY 1 "
        "ORDER BY n DESC, property LIMIT ?", [top],
    ).fetchall()
    media_status = con.execute(
        "SELECT kind, status, count(*) FROM media GROUP BY 1, 2 ORDER BY 1, 3 DESC"
    ).fetchall()
    return StoreStats(counts, parts, row[0], completeness, categories, properties, media_status, damaged)
