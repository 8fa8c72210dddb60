"""The licence a product page states (docs/compliance.md, "Provenance and licences").

schema.org's ``license``, ``acquireLicensePage`` and ``copyrightNotice`` on the page's Product, else
on one of its ImageObjects (JSON-LD or microdata, as extruct reads them), else the page's
``<link rel="license" href>``; kept in the ``licenses`` table beside the product.
"""

from __future__ import annotations

from urllib.parse import urljoin

from .items import clean_text

FIELDS = {"license": "license", "acquireLicensePage": "acquire_license_page", "copyrightNotice": "copyright_notice"}
COLUMNS = tuple(FIELDS.values())  # what a ``licenses`` row states (its source says only where)
MAX_CHARS = 2000  # a licence statement is a URL or a line; a longer one is cut


def page_license(page, url: str) -> dict:
    """``{license, acquire_license_page, copyright_notice, source}`` of a parsed page, or {} when it states none."""
    if page is None:
        return {}
    for node in page.products:
        for holder in [node, *(i for i in _as_list(node.get("image")) if isinstance(i, dict))]:
            found = {column: _value(holder.get(key), url) for key, column in FIELDS.items()}
            if any(found.values()):
                return {**found, "source": "schema.org"}
    if page.tree is not None:
        for href in page.tree.xpath('//link[contains(concat(" ", normalize-space(@rel), " "), " license ")]/@href'):
            if (value := _value(href, url)) is not None:
                return {"license": value, "acquire_license_page": None, "copyright_notice": None, "source": "link-rel"}
    return {}


def stated(row: dict | None) -> tuple | None:
    """What a licence (a ``licenses`` row, a :func:`page_license`) states, comparable: None when nothing."""
    found = tuple((row or {}).get(column) for column in COLUMNS)
    return found if any(found) else None


def _as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _value(value, base: str) -> str | None:
    """A statement as text: a URL (made absolute), a string, or a CreativeWork's url / @id / name."""
    for v in _as_list(value):
        if isinstance(v, dict):
            v = v.get("url") or v.get("@id") or v.get("name") or v.get("text")
        text = clean_text(v) if isinstance(v, str) else None
        if text:
            if text.startswith(("/", "./", "../")):
                text = urljoin(base, text)
            return text[:MAX_CHARS]
    return None
