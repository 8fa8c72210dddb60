"""``m5data takedown``: record that a product, a page URL or a whole domain must leave the dataset;
``--list`` shows the takedowns (storage/takedowns.py says what each hides)."""

from __future__ import annotations

from typing import Optional

import typer

from ..verbs import one_line_errors, open_store


def takedown(
    ctx: typer.Context,
    show: bool = typer.Option(False, "--list", help="List the takedowns recorded."),
    url: Optional[str] = typer.Option(None, "--url", help="A product page URL."),
    product_id: Optional[str] = typer.Option(None, "--product-id", help="A product id (platform:source_id)."),
    domain: Optional[str] = typer.Option(None, "--domain", help="A host: every product page on it or its subdomains."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (a request's reference, a licence, ...)."),
) -> None:
    """Take a product, URL or domain out of every later export, the store's views and later crawls.

    \b
    Examples:
      m5data takedown --product-id shopa:614532883886 --reason "owner request #12"
      m5data takedown --domain shop.example.com
      m5data takedown --list
    """
    from ..console import arrow_table, console, esc, fail
    from ..storage import takedowns

    given = [(kind, value) for kind, value in (("url", url), ("product_id", product_id), ("domain", domain))
             if value is not None]
    if show == bool(given) or len(given) > 1:
        fail("give one of --url, --product-id, --domain (or --list)", code=2)
    store, _ = open_store(ctx)
    with one_line_errors():
        if show:
            import pyarrow as pa

            rows = takedowns.rows(store)
            table = pa.table({c: [r[c] for r in rows] for c in ("kind", "value", "reason", "taken_at")})
            console.print(arrow_table(table, title=f"takedowns: {len(rows):,}", max_rows=100_000))
            return
        kind, value = given[0]
        row = takedowns.record(store, kind, value, reason)
        covered = len(_covered(store, row))
    console.print(f"taken down: {row['kind']} [bold]{esc(row['value'])}[/] ({covered:,} product(s) in the store); "
                  "later exports, the store's views and later crawls leave it out")


def _covered(store, row: dict) -> set[str]:
    """The products of the store that takedown ``row`` covers."""
    from ..storage.takedowns import taken_down_sql

    con = store.connect(need=("products", "takedowns"), only=("products", "takedowns"))
    try:
        sql = f"SELECT product_id FROM ({taken_down_sql()}) WHERE kind = ? AND value = ?"
        return {r[0] for r in con.execute(sql, [row["kind"], row["value"]]).fetchall()}
    finally:
        con.close()
