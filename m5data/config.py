"""One settings object for every stage.

Values are layered, later layers winning:

1. defaults (the dataclasses below: the one place where defaults are documented),
2. a TOML file (``m5data.toml`` in the working directory, or ``--config FILE``),
3. environment variables ``M5DATA_<SECTION>_<KEY>`` (e.g. ``M5DATA_DOWNLOAD_CONCURRENCY=32``),
4. flags (``--store``, ``--set section.key=value``, and a stage command's own options).

``Settings.source(key)`` says which layer set a value; ``m5data config show`` prints both.
Every value is type-checked and range-checked by :func:`validate` before any work starts.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

CONFIG_FILENAME = "m5data.toml"
ENV_PREFIX = "M5DATA_"


class ConfigError(ValueError):
    """A config value or file that cannot be used; the message names the key or file."""


@dataclass
class StoreSettings:
    path: str = "./m5data-store"  # the store folder: tables/, blobs/, derived/, catalog.duckdb
    part_rows: int = 1_000_000  # rows per Parquet part when compacting
    compression: str = "zstd"  # Parquet codec: zstd, snappy, gzip, none


@dataclass
class CrawlSettings:
    user_agent: str = "m5data/0.1 (+dataset builder; respects robots.txt)"
    obey_robots: bool = True
    concurrency: int = 16  # Scrapy CONCURRENT_REQUESTS
    per_domain: int = 8  # Scrapy CONCURRENT_REQUESTS_PER_DOMAIN
    download_delay: float = 0.0  # seconds between requests to one domain (AutoThrottle adapts above it)
    autothrottle: bool = True
    max_pages: int = 0  # stop after this many pages; 0 = no limit
    max_depth: int = 0  # Scrapy DEPTH_LIMIT; 0 = no limit
    timeout: float = 30.0  # seconds per page request
    batch_rows: int = 500  # items buffered before a store write


@dataclass
class DownloadSettings:
    concurrency: int = 64  # requests in flight, all hosts together
    per_host: int = 16  # requests in flight to one host
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds between two chunks
    request_deadline: float = 300.0  # seconds for one whole request, body included
    retries: int = 3  # extra attempts for 5xx / 429 / timeouts
    backoff: float = 0.5  # first backoff in seconds; doubles each attempt, with jitter
    max_redirects: int = 5
    max_image_bytes: int = 20_000_000
    max_video_bytes: int = 500_000_000
    allow_private: bool = False  # allow hosts on loopback / private / link-local addresses
    image_max_side: int = 0  # re-encode images to this max side on the way in; 0 = keep the original
    jpeg_quality: int = 90
    max_failure_rate: float = 0.2  # exit non-zero when more than this share of URLs failed
    stall_timeout: float = 120.0  # watchdog: end the run when nothing finished for this many seconds
    workers: int = 0  # processes that re-encode images (when image_max_side > 0); 0 = number of cores
    pool: str = "process"  # re-encode in a "process" pool, or a "thread" pool (Pillow releases the GIL: less CPU)


@dataclass
class ExtractSettings:
    workers: int = 0  # processes; 0 = number of cores
    frame_fps: float = 1.0  # frames sampled per second of video
    frame_max_side: int = 0  # resize frames inside the ffmpeg pass; 0 = keep
    jpeg_quality: int = 90
    max_duration: float = 600.0  # seconds of video processed at most
    max_frames: int = 600
    video_timeout: float = 300.0  # seconds for one video's ffmpeg pass
    sample_rate: int = 22050  # Hz for MFCC
    n_mfcc: int = 40
    n_fft: int = 1024  # MFCC frame size (M5Product)
    hop_length: int = 256  # MFCC hop (M5Product)
    image_max_side: int = 800
    max_image_pixels: int = 89_478_485  # Pillow's decompression-bomb limit
    strip_brackets: bool = False  # strip 【...】 marketing brackets from captions
    max_caption_chars: int = 512
    image_tier_high: int = 600  # quality tier 1 (high): original's shorter side >= this many pixels
    image_tier_medium: int = 300  # tier 2 (medium) >= this; tier 3 (low) below
    image_roles: str = "main"  # comma-separated media roles whose images are normalised ("main,gallery")
    mp3_bitrate: str = "128k"  # bitrate of the extracted mp3
    jieba_user_dict: str = ""  # jieba user dictionary file (brand names), "" = none


@dataclass
class AlignSettings:
    label_threshold: float = 0.50  # S_label >= this (MEP-3M)
    content_threshold: float = 0.75  # S_content > this (MEP-3M)
    content_chars: int = 22_000  # characters of concatenated titles per sub-class (MEP-3M)
    mapping: str = ""  # level-1 mapping file (TOML/YAML); required by `m5data align` unless --mapping
    engine: str = "bulk"  # S_content engine: bulk (sparse matrix) or simtext (the library, pair by pair)
    weighting: str = "binary"  # binary (simtext's Sim_Cosine) or counts (the paper's term frequencies)
    merge_empty_by_name: bool = False  # merge identically named sub-classes even when one has no titles
    workers: int = 1  # processes for jieba segmentation; 0 = number of cores
    review_file: str = ""  # review file written by align; "" = <store>/derived/align/review.csv


@dataclass
class RunSettings:
    seed: int = 0


@dataclass
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    align: AlignSettings = field(default_factory=AlignSettings)
    run: RunSettings = field(default_factory=RunSettings)
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def source(self, key: str) -> str:
        """Where the value of ``section.key`` came from: default, a file path, env VAR, or flag."""
        return self.sources.get(key, "default")

    def items(self) -> list[tuple[str, Any]]:
        """Every ``(section.key, value)`` pair, in declaration order."""
        out = []
        for section in _sections():
            obj = getattr(self, section)
            for f in fields(obj):
                out.append((f"{section}.{f.name}", getattr(obj, f.name)))
        return out

    def set(self, key: str, value: Any, source: str) -> None:
        """Set ``section.key`` from a raw value (str from env/flags, or a TOML value), type-checked."""
        section, name = _split_key(key)
        obj = getattr(self, section)
        typ = get_type_hints(type(obj))[name]
        setattr(obj, name, _coerce(key, value, typ))
        self.sources[key] = source

    @property
    def store_path(self) -> Path:
        return Path(self.store.path).expanduser()


def _sections() -> list[str]:
    return [f.name for f in fields(Settings) if f.name != "sources"]


def _split_key(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    if section not in _sections():
        raise ConfigError(f"unknown config section {section!r} in {key!r} (known: {', '.join(_sections())})")
    names = [f.name for f in fields(getattr(Settings(), section))]
    if name not in names:
        raise ConfigError(f"unknown config key {key!r} (known in [{section}]: {', '.join(names)})")
    return section, name


def _coerce(key: str, value: Any, typ: type) -> Any:
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
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config {key}: expected {typ.__name__}, got {value!r}") from None


_POSITIVE = {
    "crawl.concurrency", "crawl.per_domain", "crawl.timeout", "crawl.batch_rows",
    "download.concurrency", "download.per_host", "download.connect_timeout", "download.read_timeout",
    "download.request_deadline", "download.max_image_bytes", "download.max_video_bytes",
    "download.stall_timeout", "extract.frame_fps", "extract.max_duration", "extract.max_frames",
    "extract.video_timeout", "extract.sample_rate", "extract.n_mfcc", "extract.n_fft",
    "extract.hop_length", "extract.max_image_pixels", "extract.max_caption_chars",
    "align.content_chars", "store.part_rows",
}
_NON_NEGATIVE = {
    "crawl.download_delay", "crawl.max_pages", "crawl.max_depth", "download.retries",
    "download.backoff", "download.max_redirects", "download.image_max_side", "extract.workers",
    "extract.frame_max_side", "extract.image_max_side",
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
    if values["download.per_host"] > values["download.concurrency"]:
        raise ConfigError("config download.per_host cannot exceed download.concurrency")
    if values["crawl.per_domain"] > values["crawl.concurrency"]:
        raise ConfigError("config crawl.per_domain cannot exceed crawl.concurrency")
    if values["extract.hop_length"] > values["extract.n_fft"]:
        raise ConfigError("config extract.hop_length cannot exceed extract.n_fft")
    return settings


def env_name(key: str) -> str:
    """The environment variable that sets ``section.key``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def load(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build the effective settings: defaults < TOML file < M5DATA_* env < ``overrides`` (flags)."""
    settings = Settings()
    environ = os.environ if environ is None else environ
    path: Path | None
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
    else:
        candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
        path = candidate if candidate.is_file() else None
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"config file {path}: {section!r} must be a [section] table")
            for name, value in table.items():
                settings.set(f"{section}.{name}", value, str(path))
    for key, _ in settings.items():
        var = env_name(key)
        if var in environ:
            settings.set(key, environ[var], f"env {var}")
    for key, value in (overrides or {}).items():
        if value is not None:
            settings.set(key, value, "flag")
    return validate(settings)


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Turn ``["download.concurrency=32", ...]`` (from ``--set``) into an overrides dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        _split_key(key.strip())
        out[key.strip()] = value.strip()
    return out


def as_dict(settings: Settings) -> dict[str, Any]:
    """Plain nested dict (for the runs table and for subprocesses)."""
    return {s: dataclasses.asdict(getattr(settings, s)) for s in _sections()}
