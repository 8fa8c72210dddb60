"""Duplicate groups for the splits: annotate's ``dedup`` groups joined with its accepted ``matches``.

A product's *group* is the stable key its split is drawn by: every product of a group lands on the
same side of every boundary (train / evaluation / classification). Without ``dedup`` and
``matches`` every product is a group of its own, and the fine-grained (instance) splits have no
queries: :class:`GroupSource` says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GROUP_TABLE = "split_groups"  # temp table: product_id, grp (only products in groups of two or more)


@dataclass
class GroupSource:
    """Where the duplicate groups came from (printed and stored in the manifest)."""

    source: str  # dedup, matches, dedup+matches or none
    dedup_rows: int = 0
    accepted_matches: int = 0
    groups: int = 0  # groups of two or more products
    grouped_products: int = 0

    def describe(self) -> str:
        if self.source == "none":
            return ("no duplicate groups: the dedup table is empty and no accepted matches exist "
                    "(run `m5data annotate dedup`); every product is its own group and query-fg is empty")
        parts = []
        if self.dedup_rows:
            parts.append(f"dedup ({self.dedup_rows:,} rows)")
        else:
            parts.append("no dedup table")
        if self.accepted_matches:
            parts.append(f"accepted matches ({self.accepted_matches:,} pairs)")
        else:
            parts.append("no accepted matches")
        return (f"groups from {' + '.join(parts)}: {self.groups:,} groups of two or more products "
                f"({self.grouped_products:,} products)")

    def to_json(self) -> dict:
        return asdict(self) | {"describe": self.describe()}


def _union_find(edges) -> dict[str, str]:
    """Connected components of ``(a, b)`` pairs; each product -> the smallest product id of its component."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
        parent.setdefault(ra, ra)
    return {x: find(x) for x in parent}


def load_groups(con) -> GroupSource:
    """Create the temp table ``split_groups`` (product_id, grp) on ``con``; grp = the group's smallest id.

    ``con`` is a store connection (views ``dedup``, ``matches`` and ``products``).
    """
    dedup_rows = con.execute("SELECT count(*) FROM dedup").fetchall()[0][0]
    accepted = con.execute("SELECT count(*) FROM matches WHERE accepted AND query_id <> candidate_id").fetchall()[0][0]
    if accepted:
        import pyarrow as pa

        edges = con.execute("""
            SELECT product_id AS a, group_id AS b FROM dedup WHERE group_id <> product_id
            UNION ALL
            SELECT query_id, candidate_id FROM matches WHERE accepted AND query_id <> candidate_id
        """).fetchall()
        comp = _union_find(edges)
        table = pa.table({"product_id": pa.array(list(comp), pa.string()), "grp": pa.array(list(comp.values()), pa.string())})
        con.register("_split_groups_in", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {GROUP_TABLE} AS SELECT * FROM _split_groups_in "
                    "WHERE product_id IN (SELECT product_id FROM products)")
        con.unregister("_split_groups_in")
    else:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {GROUP_TABLE} AS
            SELECT d.product_id, d.group_id AS grp FROM dedup d
            WHERE d.group_id IN (SELECT group_id FROM dedup GROUP BY group_id HAVING count(*) > 1)
              AND d.product_id IN (SELECT product_id FROM products)
        """)
    # a group is only a group when two of its products are in the store
    con.execute(f"""
        DELETE FROM {GROUP_TABLE} WHERE grp IN (SELECT grp FROM {GROUP_TABLE} GROUP BY grp HAVING count(*) < 2)
    """)
    groups, grouped = con.execute(f"SELECT count(DISTINCT grp), count(*) FROM {GROUP_TABLE}").fetchall()[0]
    source = "+".join(n for n, c in (("dedup", dedup_rows), ("matches", accepted)) if c) or "none"
    return GroupSource(source, dedup_rows, accepted, groups, grouped)
