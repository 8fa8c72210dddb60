"""A media row's ``media_id``, made in one place: the crawl, a URL list (download), the importer and
extract's derived rows all take it from here. Existing stores key their ``media`` rows on these ids,
so each function's bytes must never change (``tests/storage/test_media_ids.py`` pins them).

* a downloaded object: sha1 of ``product_id|kind|url``: a re-crawl or a re-listed URL finds its row;
* an imported file (``m5data import m5product``): the same of ``import:<path in the folder>`` for the
  URL, so an import never takes the key of a crawled URL;
* a derived row (extract's normalised image, frames, audio, MFCC): sha1 of ``source_media_id|kind``.
"""

from __future__ import annotations

import hashlib

__all__ = ["derived_id", "imported_media_id", "media_id"]


def media_id(product_id: str, kind: str, url: str) -> str:
    """The key of a downloaded media row: sha1 of ``product_id|kind|url`` (hex)."""
    return hashlib.sha1(f"{product_id}|{kind}|{url}".encode("utf-8")).hexdigest()


def imported_media_id(product_id: str, kind: str, rel: str) -> str:
    """The key of a media row read from an import folder's file ``rel`` (its path in the folder)."""
    return media_id(product_id, kind, f"import:{rel}")


def derived_id(source_media_id: str, kind: str) -> str:
    """The key of the media row of kind ``kind`` that extract derives from the row ``source_media_id``."""
    return hashlib.sha1(f"{source_media_id}|{kind}".encode("utf-8")).hexdigest()
