"""What becomes of one media URL: its :class:`Outcome`, the outcome of a client error (transient ones
are tried again), the wait before the next attempt, and the media row it writes."""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp

from .safety import UnsafeURL

MAX_RETRY_DELAY = 60.0  # seconds: the longest single wait before a retry, Retry-After included


@dataclass
class Outcome:
    """What became of one URL. ``status`` is a media status; ``reason`` a short key for stats."""

    status: str  # ok, failed, too_large, not_media, corrupt
    reason: str = "ok"
    error: str | None = None
    http_status: int | None = None
    attempts: int = 0
    blob: str | None = None
    sha256: str | None = None
    mime: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    transient: bool = False  # worth another attempt
    retry_after: float | None = None
    stored: Any = None  # an ok body not in the store yet: its blob writer, or re-encoded JPEG bytes


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Wait before attempt ``attempt + 1``: base * 2^(attempt-1) with jitter, at least Retry-After."""
    delay = base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_RETRY_DELAY)


def outcome_of_error(exc: Exception, opts) -> Outcome:
    """Map a client error to an outcome; transient ones are retried by :meth:`~.fetch.Fetcher.fetch`."""
    if isinstance(exc, UnsafeURL):
        return Outcome("failed", "unsafe_url", str(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome("failed", "bad_url", f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Outcome("failed", "truncated", f"body cut short: {exc}", transient=True)
    if isinstance(exc, (aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError, TimeoutError)):
        which = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "read"
        limit = opts.connect_timeout if which == "connect" else opts.read_timeout
        return Outcome("failed", "timeout", f"{which} timeout ({limit:g} s)", transient=True)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Outcome("failed", "dns", f"host not found: {exc}")
    if isinstance(exc, (aiohttp.ClientConnectionError, ConnectionError)):
        return Outcome("failed", "connection", f"{type(exc).__name__}: {exc}", transient=True)
    if isinstance(exc, aiohttp.ClientError):
        return Outcome("failed", "client_error", f"{type(exc).__name__}: {exc}", transient=True)
    return Outcome("failed", "error", f"{type(exc).__name__}: {exc}")


def status_row(row: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The media row ``row`` updated with ``outcome`` (the whole row: writes are upserts by key)."""
    meta = {}
    if row.get("meta"):
        with contextlib.suppress(ValueError, TypeError):
            meta = json.loads(row["meta"])
    if not isinstance(meta, dict):
        meta = {"previous": meta}
    meta.pop("download", None)
    if outcome.meta:
        meta["download"] = outcome.meta
    return {**row, "status": outcome.status, "http_status": outcome.http_status, "error": outcome.error,
            "attempts": (row.get("attempts") or 0) + outcome.attempts, "blob": outcome.blob,
            "sha256": outcome.sha256, "mime": outcome.mime, "bytes": outcome.bytes, "width": outcome.width,
            "height": outcome.height, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else None,
            "updated_at": datetime.now(timezone.utc)}
