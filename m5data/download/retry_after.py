"""The ``Retry-After`` header (RFC 9110 10.2.3), read one way for both HTTP clients.

The download's fetcher (aiohttp, :mod:`.fetch`) and the crawl's politeness middleware (Scrapy,
:mod:`m5data.crawler.politeness`) both wait what a 429/503 asks; one reading keeps them waiting
alike. Only the standard library is imported, so the crawler imports this without aiohttp.
"""

from __future__ import annotations

import email.utils
import time
from datetime import timezone


def retry_after_seconds(value: str | bytes | None) -> float | None:
    """Seconds a ``Retry-After`` value asks for: delta-seconds (ASCII digits only; a number past a
    float's range is ``inf``, the callers cap it) or an HTTP date (0 once past); None when absent
    or unreadable (negative or fractional numbers, ``nan``, other digits such as ``²``, prose).

    ``bytes`` are read as latin-1, as Scrapy hands header values over.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no claim about the local zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())
