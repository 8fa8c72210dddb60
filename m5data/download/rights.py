"""The rights an image states in its XMP packet (docs/compliance.md, "Provenance and licences").

``xmpRights:WebStatement`` (the URL of its rights statement, as an attribute or an element) and
``dc:rights`` (its copyright line, the x-default or first of its language alternatives), read from
the raw packet Pillow exposes (a JPEG's APP1 ``http://ns.adobe.com/xap/1.0/`` segment, a PNG's
``XML:com.adobe.xmp`` text, a WebP's XMP chunk) without an XML parser: a packet is never parsed
into entities, so a hostile one cannot expand. Kept in ``media.meta`` (``download.rights``).
"""

from __future__ import annotations

import html
import re

MAX_XMP_BYTES = 1 << 16  # the part of a packet read; rights fields come early and are short
MAX_CHARS = 2000
_WEB_STATEMENT = (re.compile(r'xmpRights:WebStatement\s*=\s*"([^"]*)"'),
                  re.compile(r"<xmpRights:WebStatement>([^<]*)</xmpRights:WebStatement>"))
_RIGHTS = re.compile(r"<dc:rights\b[^>]*>(.*?)</dc:rights>", re.S)
_LI = re.compile(r"<rdf:li\b([^>]*)>([^<]*)</rdf:li>")


def xmp_rights(packet: bytes | str | None) -> dict[str, str]:
    """``{web_statement, rights}`` (those present) of an XMP packet; {} when it states neither."""
    if not packet:
        return {}
    text = packet[:MAX_XMP_BYTES]
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    out = {}
    for pattern in _WEB_STATEMENT:
        if (found := pattern.search(text)) and found.group(1).strip():
            out["web_statement"] = _clean(found.group(1))
            break
    if block := _RIGHTS.search(text):
        items = _LI.findall(block.group(1))
        chosen = next((value for attrs, value in items if "x-default" in attrs), items[0][1] if items else "")
        if chosen.strip():
            out["rights"] = _clean(chosen)
    return out


def image_rights(fh) -> dict[str, str]:
    """The XMP rights of the local image file ``fh`` (its header only); {} when none or unreadable."""
    from PIL import Image

    try:
        with Image.open(fh) as im:
            return rights_of(im)
    except Exception:  # noqa: BLE001  the size check already judged the image: no rights is all this says
        return {}


def rights_of(im) -> dict[str, str]:
    """The XMP rights of an image Pillow has opened (read from its header, before it is loaded)."""
    try:
        return xmp_rights(im.info.get("xmp") or im.info.get("XML:com.adobe.xmp"))
    except Exception:  # noqa: BLE001  as image_rights: no rights is all a bad packet says
        return {}


def _clean(value: str) -> str:
    return " ".join(html.unescape(value).split())[:MAX_CHARS]
