"""The checks of settings values: a raw value (TOML, env, flag) coerced to its key's type, and every value's
range and combination checked (:func:`validate`) before any work starts; the error both raise. Loading and
layering are :mod:`m5data.config`'s, which re-exports :class:`ConfigError` and :func:`validate`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .extract.decoding import DECODE_MODES  # the modes are the frame pass's: its list, not a copy

if TYPE_CHECKING:
    from .config import Settings


class ConfigError(UserError, ValueError):
    """A config value or file that cannot be used; the message names the key or file."""


def coerce(key: str, value: Any, typ: type) -> Any:
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):  # nan/inf would pass every range check (nan < 0 is False)
                raise ConfigError(f"config {key}: expected a finite number, got {value!r}")
            return number
        if isinstance(value, dict):  # a TOML table for a JSON-valued setting (crawl.headers)
            import json

            return json.dumps(value)
        return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"config {key}: expected {typ.__name__}, got {value!r}") from None


_POSITIVE = {
    "crawl.concurrency", "crawl.per_domain", "crawl.timeout", "crawl.batch_rows", "crawl.max_title_chars",
    "crawl.max_description_chars", "crawl.max_property_chars", "crawl.max_value_chars", "crawl.max_id_chars",
    "crawl.max_url_chars", "crawl.max_specs", "crawl.max_media", "crawl.max_crumbs", "crawl.max_page_bytes",
    "download.concurrency", "download.per_host", "download.connect_timeout", "download.read_timeout",
    "download.request_deadline", "download.max_image_bytes", "download.max_video_bytes",
    "download.stall_timeout", "extract.frame_fps", "extract.max_duration", "extract.max_frames",
    "extract.video_timeout", "extract.sample_rate", "extract.n_mfcc", "extract.n_fft",
    "extract.hop_length", "extract.max_image_pixels", "text.max_caption_chars",
    "align.content_chars", "store.part_rows",
    "vision.image_size", "vision.batch", "vision.max_bytes", "vision.max_pixels", "vision.write_rows",
}
_NON_NEGATIVE = {
    "crawl.download_delay", "crawl.max_pages", "crawl.max_depth", "download.retries",
    "download.backoff", "download.max_redirects", "download.image_max_side", "download.store_retry_seconds",
    "extract.workers",
    "crawl.max_retry_after", "crawl.max_crawl_delay",
    "extract.frame_max_side", "extract.image_max_side", "vision.threads",
}
_UNIT_INTERVAL = {"align.label_threshold", "align.content_threshold", "download.max_failure_rate"}


def validate(settings: Settings) -> Settings:
    """Reject out-of-range values and bad combinations before any work starts."""
    values = dict(settings.items())
    for key in _POSITIVE:
        if values[key] <= 0:
            raise ConfigError(f"config {key} must be > 0, got {values[key]!r} (from {settings.source(key)})")
    for key in _NON_NEGATIVE:
        if values[key] < 0:
            raise ConfigError(f"config {key} must be >= 0, got {values[key]!r} (from {settings.source(key)})")
    for key in _UNIT_INTERVAL:
        if not 0.0 <= values[key] <= 1.0:
            raise ConfigError(f"config {key} must be in [0, 1], got {values[key]!r} (from {settings.source(key)})")
    for key in ("download.jpeg_quality", "extract.jpeg_quality"):
        if not 1 <= values[key] <= 100:
            raise ConfigError(f"config {key} must be in 1..100, got {values[key]!r}")
    if values["store.compression"] not in {"zstd", "snappy", "gzip", "none"}:
        raise ConfigError(f"config store.compression must be zstd, snappy, gzip or none, got {values['store.compression']!r}")
    if values["extract.video_decode"] not in DECODE_MODES:
        raise ConfigError(f"config extract.video_decode must be one of {', '.join(DECODE_MODES)}, "
                          f"got {values['extract.video_decode']!r} (from {settings.source('extract.video_decode')})")
    if values["faces.frames"] not in {"all", "changed"}:
        raise ConfigError(f"config faces.frames must be all or changed, "
                          f"got {values['faces.frames']!r} (from {settings.source('faces.frames')})")
    if values["download.per_host"] > values["download.concurrency"]:
        raise ConfigError("config download.per_host cannot exceed download.concurrency")
    if values["crawl.per_domain"] > values["crawl.concurrency"]:
        raise ConfigError("config crawl.per_domain cannot exceed crawl.concurrency")
    if values["extract.hop_length"] > values["extract.n_fft"]:
        raise ConfigError("config extract.hop_length cannot exceed extract.n_fft")
    return settings
