"""Products that may no longer leave the store: taken down (storage/takedowns.py) or opted out since
their last stored version (a refresh crawl found their page's opt-out: ``takedowns.opted_out_sql``, the
rule the views of ``m5data sql`` and the exports' samples use).

A split version built after both leaves them out (splits/build.py, splits/incremental.py); one built
before that holds one makes the pipeline's next splits run write a new version without it
(:func:`in_version`), and the export refuses to resume a folder of such a version (its shards may
hold the product: a release folder never holds an opted-out product).
"""

from __future__ import annotations

from . import takedowns


def opted_out_ids_sql(products: str = "products", optouts: str = "optouts") -> str:
    """SQL of the distinct ids of the opted-out products (over ``products`` and ``optouts``)."""
    return f"SELECT DISTINCT product_id FROM ({takedowns.opted_out_sql(products, optouts)})"


def sources(store) -> tuple[dict[str, str], tuple[str, ...]]:
    """The id queries that apply to ``store`` (``taken_down``, ``opted_out``; none for an empty table)
    and the tables they read."""
    sqls, tables = {}, ["products"]
    # their parts, not a count of their rows: a nightly report that reads nothing else of an unchanged
    # table asks nothing of it (an empty table has no part)
    if store.parts("takedowns"):
        sqls["taken_down"], tables = takedowns.ids_sql(), tables + ["takedowns"]
    if store.parts("optouts"):
        sqls["opted_out"], tables = opted_out_ids_sql(), tables + ["optouts"]
    return sqls, tuple(tables)


def ids_sql(sqls: dict[str, str]) -> str:
    return " UNION ".join(f"({sql})" for sql in sqls.values())


def ids(store):
    """The ids of the taken-down and the opted-out products of ``store`` (an Arrow string array)."""
    import pyarrow as pa

    sqls, tables = sources(store)
    if not sqls:
        return pa.array([], pa.string())
    con = store.connect(need=tables, only=tables)
    try:
        return con.sql(ids_sql(sqls)).to_arrow_table().column("product_id").combine_chunks()
    finally:
        con.close()


def hide(store, con) -> None:
    """Make the view ``products`` of store connection ``con`` (with the views of ``products``,
    ``takedowns`` and ``optouts``) leave out the taken-down and the opted-out products."""
    sqls, _ = sources(store)
    if sqls:
        con.execute("ALTER VIEW products RENAME TO all_products")
        over = {"taken_down": takedowns.ids_sql("all_products"), "opted_out": opted_out_ids_sql("all_products")}
        sqls = {why: over[why] for why in sqls}
        con.execute(f"CREATE VIEW products AS SELECT * FROM all_products WHERE product_id NOT IN ({ids_sql(sqls)})")


def in_version(store, version: str) -> dict[str, int]:
    """How many products of split version ``version`` (its ``splits`` rows) are withheld now, by why
    (``taken_down``, ``opted_out``; a product both counts in each): empty as in a version built after both."""
    sqls, tables = sources(store)
    if not sqls:
        return {}
    tables += ("splits",)
    con = store.connect(need=tables, only=tables)
    try:
        out = {why: con.execute(f"SELECT count(DISTINCT product_id) FROM splits WHERE version = ? AND product_id IN "
                                f"({sql})", [version]).fetchone()[0] for why, sql in sqls.items()}
    finally:
        con.close()
    return {why: n for why, n in out.items() if n}


def opted_out_of_version(store, version: str, shown: int = 5) -> tuple[int, list[str]]:
    """The opted-out products of split version ``version``: how many, and the first ``shown`` ids."""
    if not store.count("optouts"):
        return 0, []
    tables = ("splits", "products", "optouts")
    con = store.connect(need=tables, only=tables)
    try:
        rows = con.execute(f"SELECT DISTINCT product_id FROM splits WHERE version = ? AND product_id IN "
                           f"({opted_out_ids_sql()}) ORDER BY product_id", [version]).fetchall()
    finally:
        con.close()
    return len(rows), [r[0] for r in rows[:shown]]


def described(counts: dict[str, int]) -> str:
    """``in_version``'s counts in words: "1 taken-down product(s) (m5data takedown --list) and ..."."""
    words = {"taken_down": "taken-down product(s) (m5data takedown --list)",
             "opted_out": "product(s) opted out since (m5data sql: SELECT * FROM opted_out)"}
    return " and ".join(f"{n:,} {words[why]}" for why, n in counts.items())
