"""What align works on: every raw category path and every platform sub-class, read from ``products``.

A product's raw path is its ``category_path`` joined by ``' > '`` (the ``label_map`` key together
with the platform). Its first element is the platform's level-1 name, the second its level-2 name
(the *sub-class*) and the third, when present, a finer level-3 name; deeper elements stay part of the
raw path but do not add levels. A sub-class is one ``(platform, level-1 name, level-2 name)``; its
text for S_content is the first ``content_chars`` characters of its titles, ordered by product id
and joined by newlines (see :func:`m5data.align.similarity.content_text`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .mapping import Level1Mapping

PATH_SEP = " > "
# Names are compared without surrounding whitespace (ASCII, no-break and ideographic spaces); the
# SQL pattern and the Python characters below must stay the same set.
_WS = " \t\n\v\f\r\xa0\u3000"
_SQL_WS = r"[ \t\n\v\f\r\x{a0}\x{3000}]"


def clean(name: str | None) -> str:
    """A breadcrumb name without surrounding whitespace ('' for None)."""
    return (name or "").strip(_WS)


def _sql_clean(expr: str) -> str:
    return f"regexp_replace(coalesce({expr}, ''), '^{_SQL_WS}+|{_SQL_WS}+$', '', 'g')"


@dataclass
class SubClass:
    """One platform's level-2 category under one of its level-1 names."""

    platform: str
    level1: str
    name: str
    class_id: int | None
    n_products: int = 0
    n_titled: int = 0
    text: str = ""
    children: dict[str, int] = field(default_factory=dict)  # raw level-3 name -> products

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.platform, self.level1, self.name)


@dataclass
class RawPath:
    """One ``label_map`` row before ids: a platform's raw breadcrumb and its parts."""

    platform: str
    raw_path: str
    level1: str
    level2: str
    level3: str
    n_products: int


@dataclass
class Inventory:
    subclasses: list[SubClass]
    paths: list[RawPath]
    unmapped: dict[tuple[str, str], int]  # (platform, level-1 name) -> products
    n_products: int

    def index(self) -> dict[tuple[str, str, str], int]:
        return {s.key: i for i, s in enumerate(self.subclasses)}


def read_inventory(store, mapping: Level1Mapping, chars: int, with_text: bool = True) -> Inventory:
    """Read raw paths, sub-classes and (``with_text``) their S_content texts from ``products``."""
    # one view (planning every table cost ~0.5 s); a store past a few MB reads it on a database of its own,
    # which gives the memory of this read of every product back when it closes (Store.connect_whole)
    con = store.connect_whole(("products",))
    try:
        path_rows = con.execute(
            "SELECT coalesce(platform, ''), coalesce(array_to_string(category_path, ?), ''), "
            "any_value(category_path), count(*) FROM products GROUP BY 1, 2 ORDER BY 1, 2", [PATH_SEP]
        ).fetchall()
        texts: dict[tuple[str, str, str], tuple[int, str]] = {}
        if with_text:
            l1, l2 = _sql_clean("category_path[1]"), _sql_clean("category_path[2]")
            # Only the titles that start inside the character budget leave DuckDB: a sub-class of
            # 90,000 products sends its first ~450 titles, not all of them.
            # The cleaned names once (a CTE), then the windows over them: ~20% less than cleaning in each window.
            rows = con.execute(f"""
                WITH c AS (
                    SELECT coalesce(platform, '') AS platform, {l1} AS l1, {l2} AS l2, product_id, title
                    FROM products
                    WHERE len(category_path) >= 2 AND title IS NOT NULL AND title <> ''
                ), t AS (
                    SELECT platform, l1, l2, product_id, title,
                           sum(length(title) + 1) OVER w - length(title) - 1 AS start,
                           count(*) OVER (PARTITION BY platform, l1, l2) AS n_titled
                    FROM c WINDOW w AS (PARTITION BY platform, l1, l2 ORDER BY product_id ROWS UNBOUNDED PRECEDING)
                )
                SELECT platform, l1, l2, any_value(n_titled), string_agg(title, chr(10) ORDER BY product_id)
                FROM t WHERE start < ? GROUP BY 1, 2, 3
            """, [chars]).fetchall()
            for platform, a, b, n_titled, joined in rows:
                # Same text as content_text(titles, chars): the non-empty titles joined by newlines, cut.
                texts[(platform, a, b)] = (int(n_titled), (joined or "")[:chars])
    finally:
        con.close()
    subclasses: dict[tuple[str, str, str], SubClass] = {}
    paths: list[RawPath] = []
    unmapped: dict[tuple[str, str], int] = {}
    total = 0
    for platform, raw_path, path, n in path_rows:
        total += n
        parts = [clean(p) for p in (path or [])]
        level1, level2, level3 = (parts + ["", "", ""])[:3]
        paths.append(RawPath(platform, raw_path, level1, level2, level3, n))
        if not level1:
            continue
        class_id = mapping.class_of(platform, level1)
        if class_id is None:
            unmapped[(platform, level1)] = unmapped.get((platform, level1), 0) + n
        if not level2:
            continue
        key = (platform, level1, level2)
        sub = subclasses.get(key)
        if sub is None:
            sub = subclasses[key] = SubClass(platform, level1, level2, class_id)
        sub.n_products += n
        if level3:
            sub.children[level3] = sub.children.get(level3, 0) + n
    for key, (n_titled, text) in texts.items():
        if key in subclasses:
            subclasses[key].n_titled = n_titled
            subclasses[key].text = text
    ordered = [subclasses[k] for k in sorted(subclasses)]
    return Inventory(ordered, paths, unmapped, total)
