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

import encodings.idna
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

from ..errors import UserError
from .main_image import MAIN_IMAGE
from .schema import TABLES

KINDS = ("url", "product_id", "domain")
RAW = "raw"  # the schema of the raw tables' views in ``m5data sql`` and the catalog
TAKEN_DOWN_VIEW = "taken_down"
OPTED_OUT_VIEW = "opted_out"
# the tables a product's rows live in, by product id: their user views hide taken-down products
DEFAULT_PORTS = {"http": 80, "https": 443}
# the columns that name a product: a row naming a withheld product in any of them is hidden (a pool's or a
# labelled pair's candidate as much as its query)
ID_COLUMNS = ("product_id", "query_id", "candidate_id")
PRODUCT_TABLES = tuple(name for name, spec in TABLES.items() if set(ID_COLUMNS) & set(spec.schema.names))


class TakedownError(UserError, ValueError):
    """A takedown that cannot be recorded (an unknown kind, an empty value)."""


def host_of(url: str) -> str:
    """The lower-case host of ``url`` ("" when it has none)."""
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def canonical_host(host: str, idn: str | None = "ascii") -> str:
    """``host`` lower case without a trailing dot; ``idn`` "ascii": each Unicode label in its punycode
    form (``xn--...``), "unicode": each punycode label in its Unicode form, None: as given. ``www.`` stays:
    ``www.shop.example`` and ``shop.example`` are two hosts (a domain takedown of the second covers both)."""
    host = host.strip().rstrip(".").lower()
    if idn is None:
        return host
    out = []
    for label in host.split("."):
        try:
            if idn == "ascii" and not label.isascii():
                label = encodings.idna.ToASCII(label).decode("ascii")
            elif idn == "unicode" and label.startswith("xn--"):
                label = encodings.idna.ToUnicode(label)
        except UnicodeError:  # not a valid IDN label: kept as it is
            pass
        out.append(label.lower())
    return ".".join(out)


def _unquoted(text: str) -> str:
    """``text`` percent-decoded (UTF-8), or as it is where that is not UTF-8 (as :data:`URL_KEY_SQL`)."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def canonical_url(url: str, idn: str | None = "ascii", key: bool = False) -> str:
    """``url`` in canonical form ("" without a host): scheme and host lower case, the host's trailing dot,
    a default port (80, 443), the fragment and the path's trailing ``/`` dropped, the host's IDN labels as
    ``idn`` says (:func:`canonical_host`). ``key``: path and query percent-decoded too, the form two URLs
    are compared in (:data:`URL_KEY_SQL` in SQL, ``idn=None``); else they are kept as given (the value
    recorded)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    host = canonical_host(parts.hostname or "", idn)
    if not host:
        return ""
    scheme = parts.scheme.lower()
    netloc = host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path, query = (_unquoted(parts.path), _unquoted(parts.query)) if key else (parts.path, parts.query)
    return f"{scheme}://{netloc}{path.rstrip('/')}" + (f"?{query}" if query else "")


def url_key(url: str) -> str:
    """The form URLs are compared in (two URLs of one page have the same): :func:`canonical_url` with
    ``key``, the host as given; equal to :data:`URL_KEY_SQL`."""
    return canonical_url(url, None, key=True)


def forms(kind: str, value: str) -> list[str]:
    """The values a takedown of ``kind`` and ``value`` is recorded as, canonical (:func:`normalised`): one,
    and for a URL or domain with an IDN host both its punycode and Unicode forms (the store's URLs hold
    either: SQL cannot convert one into the other). :class:`TakedownError` for a bad kind or value."""
    first = normalised(kind, value)
    if kind == "product_id":
        return [first]
    other = canonical_host(first, "unicode") if kind == "domain" else canonical_url(first, "unicode")
    return [first] + ([other] if other and other != first else [])


def normalised(kind: str, value: str) -> str:
    """``value`` as the table keeps it: a domain :func:`canonical_host` (the host of a URL given as one), a
    URL :func:`canonical_url` (punycode hosts), a product id stripped of surrounding blanks.
    :class:`TakedownError` for a bad kind or value."""
    if kind not in KINDS:
        raise TakedownError(f"takedown kind must be one of {', '.join(KINDS)}, got {kind!r}")
    value = (value or "").strip()
    if kind == "domain":
        value = canonical_host(host_of(value) if "://" in value else value)
    if not value:
        raise TakedownError(f"takedown {kind} is empty")
    if kind == "url":
        if not host_of(value) or not canonical_url(value):
            raise TakedownError(f"takedown url {value!r} is not an absolute URL (http://host/...)")
        value = canonical_url(value)
    return value


def record(store, kind: str, value: str, reason: str | None = None) -> list[dict]:
    """Write one takedown (a takedown of the same kind and value again replaces it): a row per one of its
    :func:`forms`; the rows (the canonical one first)."""
    now = datetime.now(timezone.utc)
    written = [{"kind": kind, "value": v, "reason": reason or None, "taken_at": now} for v in forms(kind, value)]
    store.write("takedowns", written)
    return written


def rows(store) -> list[dict]:
    """Every takedown, oldest first."""
    return sorted(store.read("takedowns").to_pylist(), key=lambda r: (r["taken_at"], r["kind"], r["value"]))


def covering(url: str, takedowns: list[dict]) -> dict | None:
    """The takedown that covers page ``url`` (its URL, or its domain or a parent domain, compared
    canonically as the views do), or None."""
    host, key = canonical_host(host_of(url), None), url_key(url)
    for t in takedowns:
        if t["kind"] == "url" and key and key == url_key(t["value"]):
            return t
        value = canonical_host(t["value"], None)
        if t["kind"] == "domain" and host and (host == value or host.endswith("." + value)):
            return t
    return None


# the lower-case host of the SQL expression ``{url}`` ("" when it has none), as host_of gives it
HOST_SQL = "rtrim(lower(regexp_extract({url}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1)), '.')"


# the comparison form of the SQL expression ``{url}`` (NULL without a host), as url_key gives it: the
# URL's parts read once (a lambda over a one-item list), percent-decoding kept off where it is not UTF-8
_URL_RE = r"^([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/?#]*@)?([^/:?#]*)(?::([0-9]*))?([^?#]*)(?:\?([^#]*))?"
URL_KEY_SQL = (
    "list_transform([regexp_extract({url}, '" + _URL_RE + "', ['s', 'h', 'o', 'p', 'q'])], lambda u: "
    "CASE WHEN rtrim(u.h, '.') = '' THEN NULL ELSE lower(u.s) || '://' || rtrim(lower(u.h), '.') || "
    "CASE WHEN u.o = '' OR TRY_CAST(u.o AS BIGINT) = CASE lower(u.s) WHEN 'http' THEN 80 WHEN 'https' THEN 443 END "
    "THEN '' ELSE ':' || coalesce(CAST(TRY_CAST(u.o AS BIGINT) AS VARCHAR), u.o) END || "
    "rtrim(coalesce(try(url_decode(u.p)), u.p), '/') || "
    "CASE WHEN u.q = '' THEN '' ELSE '?' || coalesce(try(url_decode(u.q)), u.q) END END)[1]")


def taken_down_sql(products: str = "products", takedowns: str = "takedowns") -> str:
    """SQL of the taken-down products: ``product_id`` and the ``kind``, ``value``, ``reason`` and ``taken_at``
    of a takedown that covers it (a product covered twice is listed twice). URLs are compared in their
    :data:`URL_KEY_SQL` form (the recorded one and the product's), hosts lower case without a trailing dot."""
    host, url_key_of = HOST_SQL.format(url="url"), URL_KEY_SQL.format(url="url")
    value_key = URL_KEY_SQL.format(url="value")
    return (f"SELECT p.product_id, t.kind, t.value, t.reason, t.taken_at FROM "
            f"(SELECT product_id, {url_key_of} AS url_key, {host} AS host FROM {products}) p JOIN "
            f"(SELECT *, CASE kind WHEN 'url' THEN {value_key} WHEN 'domain' THEN rtrim(lower(value), '.') "
            f"ELSE value END AS match FROM {takedowns}) t ON "
            f"(t.kind = 'product_id' AND p.product_id = t.match) OR (t.kind = 'url' AND p.url_key = t.match) OR "
            f"(t.kind = 'domain' AND (p.host = t.match OR ends_with(p.host, '.' || t.match)))")


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

    if not store.parts("takedowns"):  # its parts, not a count of its rows: a report that reads nothing
        return pa.array([], pa.string())  # else of an unchanged table asks nothing of it
    con = store.connect(need=("products", "takedowns"), only=("products", "takedowns"))
    try:
        return con.sql(ids_sql()).to_arrow_table().column("product_id").combine_chunks()
    finally:
        con.close()


def covered(store, written: list[dict]) -> set[str]:
    """The products of the store the takedown rows ``written`` (recorded) cover now."""
    con = store.connect(need=("products", "takedowns"), only=("products", "takedowns"))
    try:
        sql = f"SELECT DISTINCT product_id FROM ({taken_down_sql()}) WHERE kind = ? AND list_contains(?, value)"
        return {pid for row in written for (pid,) in con.execute(sql, [row["kind"], [row["value"]]]).fetchall()}
    finally:
        con.close()


def _others(store, tables: tuple[str, ...], sql: str, of: set[str]) -> list[tuple]:
    """The rows of ``sql`` (its two parameters: the products ``of`` and those already taken down) over ``tables``."""
    if not of or not all(store.count(t) for t in tables):
        return []
    gone = ids(store).to_pylist()
    con = store.connect(need=tables, only=tables)
    try:
        return con.execute(sql, [sorted(of), sorted(set(gone) | of)]).fetchall()
    finally:
        con.close()


def copies(store, of: set[str]) -> dict[str, str]:
    """The products, not taken down, whose main image is the same file (its ``sha256``) as that of one of the
    products ``of``: each -> that product (the smallest id where several)."""
    sql = (f"WITH main AS (SELECT product_id, sha256 FROM media WHERE {MAIN_IMAGE} "
           "AND sha256 IS NOT NULL AND sha256 <> '') "
           "SELECT c.product_id, min(m.product_id) FROM main m JOIN main c ON c.sha256 = m.sha256 "
           "WHERE list_contains(?, m.product_id) AND NOT list_contains(?, c.product_id) GROUP BY 1 ORDER BY 1")
    return dict(_others(store, ("media",), sql, of))


def duplicates(store, of: set[str]) -> dict[str, tuple[str, str]]:
    """The products, not taken down, in the duplicate group (``dedup``) of one of the products ``of``:
    each -> (that product, the group): candidates, a group may hold distinct listings."""
    sql = ("SELECT d.product_id, min(g.product_id), any_value(g.group_id) FROM dedup g JOIN dedup d "
           "ON d.group_id = g.group_id WHERE list_contains(?, g.product_id) AND NOT list_contains(?, d.product_id) "
           "GROUP BY 1 ORDER BY 1")
    return {pid: (first, group) for pid, first, group in _others(store, ("dedup",), sql, of)}


def record_also(store, taken: dict[str, str], reason: str) -> list[dict]:
    """Record a product-id takedown per product of ``taken`` (product -> the product it follows), with the
    reason ``reason`` formatted with that product (``{of}``); the rows."""
    now = datetime.now(timezone.utc)
    written = [{"kind": "product_id", "value": pid, "reason": reason.format(of=of), "taken_at": now}
               for pid, of in sorted(taken.items())]
    if written:
        store.write("takedowns", written)
    return written


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
        joins = " ".join(f"ANTI JOIN ({hidden}) d{i} ON r.{col} = d{i}.product_id"
                         for i, col in enumerate(c for c in ID_COLUMNS if c in TABLES[name].schema.names))
        views[name] = f"SELECT r.* FROM {RAW}.{name} r {joins}"
    return views


def view_name(table: str) -> str:
    """The name of table ``table``'s view in ``m5data sql`` and the catalog (``raw.<table>`` for a product table)."""
    return f"{RAW}.{table}" if table in PRODUCT_TABLES else table

