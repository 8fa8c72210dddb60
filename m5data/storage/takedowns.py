"""Takedowns: products their owners asked to remove (``m5data takedown``, issue 57).

A takedown is one row of the ``takedowns`` table: a product id, a product page URL or a whole domain
(its subdomains too), with a reason and the time it was recorded. The store's raw tables keep every
row; what users read hides the products a takedown covers:

- the views of ``m5data sql`` and of the catalog file: each table with a ``product_id`` column
  (:data:`PRODUCT_TABLES`) is a view without them, its every row under ``raw.<table>``, and the
  view ``taken_down`` names each hidden product with the takedown that covers it;
- every later split version (splits/build.py and splits/incremental.py place no taken-down product; a
  takedown of a product of the current version makes the pipeline's splits stage write a new one:
  :func:`in_version`), and every later export (export/members.py leaves them out of the members of a
  version built before the takedown);
- a later crawl, which skips a taken-down URL or domain before fetching it (crawler/pipeline.py).

The same views hide the products whose page opted out after their last stored version (a refresh
crawl found the opt-out: m5data/optout.py's ``OPTED_OUT_PRODUCTS_SQL``, what exports leave out), listed
by the view ``opted_out``; the ``optouts`` view itself hides only taken-down products (the record of
an opt-out stays readable).
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from ..errors import UserError
from .schema import TABLES

KINDS = ("url", "product_id", "domain")
RAW = "raw"  # the schema of the raw tables' views in ``m5data sql`` and the catalog
TAKEN_DOWN_VIEW = "taken_down"
OPTED_OUT_VIEW = "opted_out"
# the tables a product's rows live in, by product id: their user views hide taken-down products
PRODUCT_TABLES = tuple(name for name, spec in TABLES.items() if "product_id" in spec.schema.names)


class TakedownError(UserError, ValueError):
    """A takedown that cannot be recorded (an unknown kind, an empty value)."""


def host_of(url: str) -> str:
    """The lower-case host of ``url`` ("" when it has none)."""
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def normalised(kind: str, value: str) -> str:
    """``value`` as the table keeps it: a domain lower case (the host of a URL given as one), a URL
    and a product id stripped of surrounding blanks. :class:`TakedownError` for a bad kind or value."""
    if kind not in KINDS:
        raise TakedownError(f"takedown kind must be one of {', '.join(KINDS)}, got {kind!r}")
    value = (value or "").strip()
    if kind == "domain":
        value = host_of(value) if "://" in value else value.lower().rstrip(".")
    if not value:
        raise TakedownError(f"takedown {kind} is empty")
    if kind == "url" and not host_of(value):
        raise TakedownError(f"takedown url {value!r} is not an absolute URL (http://host/...)")
    return value


def record(store, kind: str, value: str, reason: str | None = None) -> dict:
    """Write one takedown row (a takedown of the same kind and value again replaces it); the row."""
    row = {"kind": kind, "value": normalised(kind, value), "reason": reason or None,
           "taken_at": datetime.now(timezone.utc)}
    store.write("takedowns", [row])
    return row


def rows(store) -> list[dict]:
    """Every takedown, oldest first."""
    return sorted(store.read("takedowns").to_pylist(), key=lambda r: (r["taken_at"], r["kind"], r["value"]))


def covering(url: str, takedowns: list[dict]) -> dict | None:
    """The takedown that covers page ``url`` (its URL, or its domain or a parent domain), or None."""
    host = host_of(url)
    for t in takedowns:
        if t["kind"] == "url" and t["value"] == url.strip():
            return t
        if t["kind"] == "domain" and host and (host == t["value"] or host.endswith("." + t["value"])):
            return t
    return None


# the lower-case host of the SQL expression ``{url}`` ("" when it has none), as host_of gives it
HOST_SQL = "rtrim(lower(regexp_extract({url}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1)), '.')"


def taken_down_sql(products: str = "products", takedowns: str = "takedowns") -> str:
    """SQL of the taken-down products: ``product_id`` and the ``kind``, ``value``, ``reason`` and ``taken_at``
    of a takedown that covers it (a product covered twice is listed twice)."""
    host = HOST_SQL.format(url="p.url")
    return (f"SELECT p.product_id, t.kind, t.value, t.reason, t.taken_at FROM {products} p JOIN {takedowns} t ON "
            f"(t.kind = 'product_id' AND p.product_id = t.value) OR (t.kind = 'url' AND p.url = t.value) OR "
            f"(t.kind = 'domain' AND ({host} = t.value OR ends_with({host}, '.' || t.value)))")


def ids_sql(products: str = "products") -> str:
    """SQL of the distinct ids of the taken-down products (over ``products`` and ``takedowns``)."""
    return f"SELECT DISTINCT product_id FROM ({taken_down_sql(products)})"


def hide(con) -> None:
    """Make the view ``products`` of store connection ``con`` (with views ``products`` and ``takedowns``)
    leave out the taken-down products; its every row stays under ``all_products``."""
    con.execute("ALTER VIEW products RENAME TO all_products")
    con.execute(f"CREATE VIEW products AS SELECT * FROM all_products WHERE product_id NOT IN ({ids_sql('all_products')})")


def ids(store):
    """The ids of the taken-down products of ``store`` (an Arrow string array; empty without takedowns)."""
    import pyarrow as pa

    if not store.count("takedowns"):
        return pa.array([], pa.string())
    con = store.connect(need=("products", "takedowns"), only=("products", "takedowns"))
    try:
        return con.sql(ids_sql()).to_arrow_table().column("product_id").combine_chunks()
    finally:
        con.close()


def in_version(store, version: str) -> int:
    """How many products of split version ``version`` (its ``splits`` rows) a takedown covers now (0: none,
    as in a version built after every takedown)."""
    if not store.count("takedowns"):
        return 0
    tables = ("splits", "products", "takedowns")
    con = store.connect(need=tables, only=tables)
    try:
        return con.execute(f"SELECT count(DISTINCT product_id) FROM splits WHERE version = ? AND product_id IN "
                           f"({ids_sql()})", [version]).fetchone()[0]
    finally:
        con.close()


def opted_out_sql(products: str = "products", optouts: str = "optouts") -> str:
    """SQL of the products whose page opted out after their last stored version (``product_id`` and the
    opt-out's ``url``, ``source``, ``directive``, ``seen_at``): m5data/optout.py's ``OPTED_OUT_PRODUCTS_SQL``
    with its columns, the products exports leave out."""
    return (f"SELECT o.product_id, o.url, o.source, o.directive, o.seen_at FROM {optouts} o JOIN {products} p "
            f"ON o.product_id = p.product_id WHERE o.scope = 'page' AND o.seen_at > p.crawled_at")


def user_views() -> dict[str, str]:
    """The views that hide taken-down and opted-out products, in the order to create them, over the raw
    tables' views ``raw.<table>`` (:data:`PRODUCT_TABLES`) and ``takedowns``."""
    views = {TAKEN_DOWN_VIEW: taken_down_sql(f"{RAW}.products"),
             OPTED_OUT_VIEW: opted_out_sql(f"{RAW}.products", f"{RAW}.optouts")}
    for name in PRODUCT_TABLES:
        hidden = f"SELECT product_id FROM {TAKEN_DOWN_VIEW}"
        if name != "optouts":
            hidden += f" UNION SELECT product_id FROM {OPTED_OUT_VIEW}"
        views[name] = f"SELECT r.* FROM {RAW}.{name} r ANTI JOIN ({hidden}) d ON r.product_id = d.product_id"
    return views


def view_name(table: str) -> str:
    """The name of table ``table``'s view in ``m5data sql`` and the catalog (``raw.<table>`` for a product table)."""
    return f"{RAW}.{table}" if table in PRODUCT_TABLES else table

