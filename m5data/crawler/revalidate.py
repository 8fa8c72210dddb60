"""A refresh crawl that asks the shop what changed: HTTP validators kept per product page.

A product page's 200 that was stored as a product leaves its ``ETag`` and ``Last-Modified`` in the
``page_validators`` table (keyed by the link the crawl followed). ``crawl --refresh`` sends them back
as ``If-None-Match`` and ``If-Modified-Since`` (RFC 9110 13.1.3, 13.2.2: a server that has both
evaluates If-None-Match and ignores If-Modified-Since); a ``304 Not Modified`` is an unchanged product
that costs the shop a header and writes nothing. A 200 whose content equals the stored product is
unchanged too. Only validators and content of products whose rows are whole count: a product whose
spec or media rows were lost (``doctor --repair`` quarantined their part) is fetched in full and
written again, which is how ``crawl --refresh`` restores them.

Validators are response headers the shop sends to anyone; cookies and auth headers never come here.
"""

from __future__ import annotations

from w3lib.url import canonicalize_url

from .licence import COLUMNS as LICENCE
from .licence import stated

MAX_VALIDATOR_CHARS = 512  # a longer ETag / Last-Modified is not stored (a cut one would never match)


def header_text(response, name: str) -> str | None:
    """A response header as text, or None when absent, too long or holding control characters."""
    raw = response.headers.get(name)
    if not raw:
        return None
    text = raw.decode("latin-1").strip()
    if not text or len(text) > MAX_VALIDATOR_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    return text


def validators_of(response, link: str) -> dict[str, str | None]:
    """The validators a product page's 200 sent ({} when it sent none, or for any other status)."""
    if response.status != 200:
        return {}
    etag, modified = header_text(response, "ETag"), header_text(response, "Last-Modified")
    if etag is None and modified is None:
        return {}
    return {"link": link, "etag": etag, "last_modified": modified}


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The request headers of a conditional GET: the ETag as stored (weak ``W/"..."`` as is)."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def stored_versions(store) -> dict[str, tuple[str | None, str | None, bool, tuple | None]]:
    """product_id -> (content_hash, url, whole, licence) of every stored product; ``whole`` when the rows
    the page said it has are there (spec rows when ``has_specs``, crawled media rows when it linked
    media); ``licence`` what its ``licenses`` row states (``licence.stated``; None: nothing)."""
    tables = ("products", "specs", "media", "licenses")  # the views it reads, on a cursor (~5 ms, not ~45)
    con = store.connect(need=tables, only=tables, cursor=True)
    try:
        rows = con.sql(f"""
            SELECT p.product_id, p.content_hash, p.url,
                   (NOT coalesce(p.has_specs, false) OR s.product_id IS NOT NULL)
                   AND (NOT (coalesce(p.has_image, false) OR coalesce(p.has_video, false)) OR m.product_id IS NOT NULL),
                   {", ".join(f"l.{c}" for c in LICENCE)}
            FROM products p
            LEFT JOIN (SELECT DISTINCT product_id FROM specs) s ON s.product_id = p.product_id
            LEFT JOIN (SELECT DISTINCT product_id FROM media WHERE source_media_id IS NULL) m
                   ON m.product_id = p.product_id
            LEFT JOIN licenses l ON l.product_id = p.product_id""").fetchall()
    finally:
        con.close()
    return {pid: (digest, url, bool(whole), stated(dict(zip(LICENCE, lic)))) for pid, digest, url, whole, *lic in rows}


def stored_validators(store) -> dict[str, tuple[str, str | None, str | None]]:
    """canonical page URL -> (product_id, etag, last_modified) of the stored validators."""
    con = store.connect(need=("page_validators",), only=("page_validators",), cursor=True)
    try:
        rows = con.sql("SELECT url, product_id, etag, last_modified FROM page_validators").fetchall()
    finally:
        con.close()
    out = {}
    for url, pid, etag, modified in rows:
        try:
            out[canonicalize_url(url)] = (pid, etag, modified)
        except ValueError:  # a URL w3lib cannot parse is never requested again either
            continue
    return out


def refresh_validators(store, versions: dict[str, tuple]) -> dict[str, tuple[str, str | None, str | None]]:
    """What a refresh sends: the stored validators of whole products (``versions``: :func:`stored_versions`)
    that have one."""
    whole = {pid for pid, (_, _, ok, _) in versions.items() if ok}
    return {url: v for url, v in stored_validators(store).items() if v[0] in whole and (v[1] or v[2])}
