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
    with_duplicates: bool = typer.Option(False, "--with-duplicates",
                                         help="Take down the near-duplicates of its duplicate group too."),
) -> None:
    """Take a product, URL or domain out of every later export, the store's views and later crawls.

    \b
    Examples:
      m5data takedown --product-id shopa:614532883886 --reason "owner request #12"
      m5data takedown --domain shop.example.com
      m5data takedown --list
    """
    from ..console import arrow_table, console, esc, fail, warn
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
        written = takedowns.record(store, kind, value, reason)
        hit = takedowns.covered(store, written)
        same = takedowns.record_also(store, takedowns.copies(store, hit), "same image as {of}")
        near = takedowns.duplicates(store, hit | {r["value"] for r in same})
        if with_duplicates:
            takedowns.record_also(store, {p: f"{of} (duplicate group {g})" for p, (of, g) in near.items()},
                                  "near-duplicate of {of}")
    row, also = written[0], "".join(f" (also as {esc(r['value'])})" for r in written[1:])
    console.print(f"taken down: {row['kind']} [bold]{esc(row['value'])}[/]{also} ({len(hit):,} product(s) in the store); "
                  "later exports, the store's views and later crawls leave it out")
    for r in same:
        console.print(f"also taken down: product_id [bold]{esc(r['value'])}[/] ({esc(r['reason'])}: its main image is the same file)")
    if near:
        verb = "taken down too" if with_duplicates else "candidates, not taken down (--with-duplicates takes them down)"
        console.print(f"near-duplicates in the same duplicate group, {verb}: " +
                      ", ".join(f"{esc(p)} (of {esc(of)}, group {esc(g)})" for p, (of, g) in near.items()))
    if not hit:
        warn(f"takedown {row['kind']} {row['value']!r} covers 0 products of the store (it looked for "
             f"{_looked_for(written)}); it is recorded: later crawls skip it")
        raise typer.Exit(1)


def _looked_for(written: list[dict]) -> str:
    """What takedown rows ``written`` match, in words."""
    from ..storage.takedowns import url_key

    kind, values = written[0]["kind"], [r["value"] for r in written]
    if kind == "url":
        return "a product URL whose canonical form is " + " or ".join(repr(url_key(v)) for v in values)
    if kind == "domain":
        return "a product URL on host " + " or ".join(repr(v) for v in values) + " or a subdomain"
    return f"product id {values[0]!r}"
