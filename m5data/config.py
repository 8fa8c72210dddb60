"""One settings object for every stage.

Values are layered, later layers winning:

1. defaults (the section dataclasses in :mod:`m5data.config_sections` and :mod:`m5data.config_curation`: the one
   place where defaults are documented),
2. a TOML file (``m5data.toml`` in the working directory, or ``--config FILE``),
3. environment variables ``M5DATA_<SECTION>_<KEY>`` (e.g. ``M5DATA_DOWNLOAD_CONCURRENCY=32``),
4. flags (``--store``, ``--set section.key=value``, and a stage command's own options).

``Settings.source(key)`` says which layer set a value; ``m5data config show`` prints both.
A key that moved to the section of the stage that reads it (``annotate.pool_k`` is now ``pools.k``,
``flows.export_format`` is ``export.format``), or to a shared section because two stages read it
(``crawl.user_agent`` is now ``http.user_agent``: :data:`SHARED`), still works in every layer
(:func:`moved_keys`, one table), with a warning in ``Settings.warnings`` naming the new key (an old and a
new shared key set to different values in one layer is a ConfigError); a key no code reads (:data:`RETIRED`) is ignored with one.
Every value is type-checked and range-checked by :func:`validate` (:mod:`m5data.config_checks`) before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .config_checks import ConfigError, coerce, validate
from .config_curation import (
    AnnotateSettings,
    CrowdSettings,
    DedupSettings,
    ExportSettings,
    FlowSettings,
    MatcherSettings,
    MatchLevelSettings,
    PoolsSettings,
    ReportSettings,
    SplitsSettings,
    TrainSettings,
)
from .config_sections import (
    AlignSettings,
    CrawlSettings,
    DownloadSettings,
    ExtractSettings,
    FacesSettings,
    HttpSettings,
    ReviewSettings,
    StoreSettings,
    TextSettings,
    VisionSettings,
)

__all__ = [
    "CONFIG_FILENAME", "ENV_OTHER", "ENV_PREFIX", "ConfigError", "Settings", "as_dict", "check_section", "env_name",
    "load", "parse_assignments", "sections", "validate",
    # the sections, re-exported (``cfg.CrawlSettings`` etc.)
    "AlignSettings", "AnnotateSettings", "CrawlSettings", "CrowdSettings", "DedupSettings", "DownloadSettings",
    "ExportSettings", "ExtractSettings", "FacesSettings", "FlowSettings", "HttpSettings", "MatchLevelSettings",
    "MatcherSettings", "PoolsSettings", "ReportSettings", "ReviewSettings", "SplitsSettings", "StoreSettings", "TextSettings", "TrainSettings",
    "VisionSettings",
]

CONFIG_FILENAME = "m5data.toml"
ENV_PREFIX = "M5DATA_"


@dataclass
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    # shared sections (SHARED_SECTIONS): what two stages must agree on
    http: HttpSettings = field(default_factory=HttpSettings)
    text: TextSettings = field(default_factory=TextSettings)
    faces: FacesSettings = field(default_factory=FacesSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    vision: VisionSettings = field(default_factory=VisionSettings)
    align: AlignSettings = field(default_factory=AlignSettings)
    annotate: AnnotateSettings = field(default_factory=AnnotateSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    match_level: MatchLevelSettings = field(default_factory=MatchLevelSettings)
    pools: PoolsSettings = field(default_factory=PoolsSettings)
    crowd: CrowdSettings = field(default_factory=CrowdSettings)
    matcher: MatcherSettings = field(default_factory=MatcherSettings)
    splits: SplitsSettings = field(default_factory=SplitsSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    flows: FlowSettings = field(default_factory=FlowSettings)
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list, repr=False, compare=False)  # e.g. a mistyped M5DATA_* variable
    # (layer, key) -> (the key as given, its value): a shared key given twice in one layer, old and new spelling
    given: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def source(self, key: str) -> str:
        """Where the value of ``section.key`` came from: default, a file path, env VAR, or flag."""
        return self.sources.get(key, "default")

    def items(self) -> list[tuple[str, Any]]:
        """Every ``(section.key, value)`` pair, in declaration order."""
        out = []
        for section in sections():
            obj = getattr(self, section)
            for f in fields(obj):
                out.append((f"{section}.{f.name}", getattr(obj, f.name)))
        return out

    def set(self, key: str, value: Any, source: str) -> None:
        """Set ``section.key`` from a raw value (str from env/flags, or a TOML value), type-checked. A key
        that moved (:func:`moved`) sets its new key, with a warning naming it."""
        given = key
        if new := moved(key):
            self.warnings.append(f"{key} is now {new} (set in {source}): the old key still works, for now")
            key = new
        elif key in RETIRED:
            self.warnings.append(f"{key} (set in {source}) is no longer read and is ignored: {RETIRED[key]}")
            return
        section, name = _split_key(key, source if source != "flag" else "")
        obj = getattr(self, section)
        typ = get_type_hints(type(obj))[name]
        value = coerce(key, value, typ)
        if key in SHARED.values():  # an old and a new spelling in one layer must agree (no silent winner)
            layer = "env" if source.startswith("env ") else source
            before = self.given.setdefault((layer, key), (given, value))
            if before[0] != given and before[1] != value:
                where = "the environment" if layer == "env" else "flags" if layer == "flag" else layer
                raise ConfigError(f"config {before[0]} = {before[1]!r} and {given} = {value!r} both set in {where}: "
                                  f"{', '.join(sorted(o for o, n in SHARED.items() if n == key))} is now {key}, "
                                  f"give {key} only")
        setattr(obj, name, value)
        self.sources[key] = source

    @property
    def store_path(self) -> Path | str:
        """The store folder, or its URL (``s3://bucket/prefix``) as text: a Path would fold its ``//``."""
        path = self.store.path
        if path.startswith("s3:/"):  # the CLI's --store is a Path option, which folds s3:// to s3:/
            from .storage.objects import StoreURL

            return StoreURL("s3://" + path[4:].lstrip("/"))
        return Path(path).expanduser()


def sections() -> list[str]:
    """The settings sections (``store``, ``crawl``, ...), in declaration order."""
    return [f.name for f in fields(Settings) if f.name not in ("sources", "warnings", "given")]


# sections no stage owns: the store's, and those holding a value two stages must agree on: [http] the
# User-Agent crawl and download send, [text] what a caption is (extract's and the pools' captions), [faces]
# the frames the faces table's detection looks at (extract's and export's), [review] where align's review
# file is (align writes it, the report shows it), [annotate] the curation stages' seed, brand property and
# matcher text model. A stage reads its own section and these (tests/contract/test_own_section.py)
SHARED_SECTIONS = ("store", "http", "text", "faces", "review", "annotate")


# keys that moved to the section of the stage that reads them (a stage reads its own section only); each
# still works, with a warning naming its new key. Keys of [annotate] moved to a curation stage's own section
# by prefix: annotate.dedup_phash_threshold is dedup.phash_threshold (matcher_ before match_: the longer
# prefix first); [flows] keys that duplicated a stage's setting, one by one
MOVED_PREFIXES = (("dedup_", "dedup"), ("matcher_", "matcher"), ("match_", "match_level"), ("pool_", "pools"),
                  ("crowd_", "crowd"))
# values two stages share, moved out of one stage's section into a shared one (SHARED_SECTIONS); the old key
# still works, an old and a new key set in one layer to different values is an error
SHARED = {"crawl.user_agent": "http.user_agent", "extract.jieba_user_dict": "text.jieba_user_dict",
          "extract.strip_brackets": "text.strip_brackets", "extract.max_caption_chars": "text.max_caption_chars",
          "extract.face_frames": "faces.frames", "matcher.text_model": "annotate.text_model",
          "dedup.brand_property": "annotate.brand_property", "align.review_file": "review.file"}
MOVED = {**SHARED, "flows.export_format": "export.format", "flows.export_split": "export.split",
         "flows.report_out": "report.out", "flows.kinds": "extract.kinds", "flows.mapping": "align.mapping",
         **{f"flows.train_{name}": f"train.{name}" for name in ("shards", "out", "config", "epochs", "max_steps")}}


# keys no longer read, with what replaced them: set, they are ignored with a warning
RETIRED = {"flows.annotate_jobs": "the curation jobs are stages of their own; name them in flows.stages "
                                  "(annotate is dedup,match_level,pools)",
           "train.seed": "training's seed is its model preset's ([train] seed of the preset TOML) or `m5data train --seed`",
           "run.seed": "no stage read it (each seeded stage has its own: splits.seed, annotate.seed)"}


def moved(key: str) -> str | None:
    """The key that replaced ``key`` (``annotate.pool_k`` -> ``pools.k``), or None when it did not move; a key
    that moved twice gives the last (``annotate.dedup_brand_property`` -> ``annotate.brand_property``)."""
    new = _moved_once(key)
    while new is not None and (further := _moved_once(new)) is not None:
        new = further
    return new


def _moved_once(key: str) -> str | None:
    if key in MOVED:
        return MOVED[key]
    section, _, name = key.partition(".")
    if section != "annotate":
        return None
    for prefix, new in MOVED_PREFIXES:
        if name.startswith(prefix):
            return f"{new}.{name[len(prefix):]}"
    return None


def moved_keys() -> dict[str, str]:
    """Every old key that still works, with its new key: the one table of moved keys."""
    table = {**{f"annotate.{prefix}{f.name}": f"{section}.{f.name}" for prefix, section in MOVED_PREFIXES
                for f in fields(getattr(Settings(), section))}, **MOVED}
    for old, new in SHARED.items():  # annotate.dedup_brand_property was dedup.brand_property's old key
        section, _, name = old.partition(".")
        table.update({f"annotate.{prefix}{name}": new for prefix, sec in MOVED_PREFIXES if sec == section})
    return table


def check_section(name: str) -> str:
    """``name`` when it is a settings section; else a ConfigError that names the sections."""
    if name not in sections():
        raise ConfigError(f"unknown config section {name!r}{_did_you_mean(name, sections())} "
                          f"(the sections: {', '.join(sections())})")
    return name


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _split_key(key: str, origin: str = "") -> tuple[str, str]:
    section, _, name = key.partition(".")
    where = f" in {origin}" if origin else ""
    if section not in sections():
        raise ConfigError(f"unknown config section [{section}] in {key!r}{where}{_did_you_mean(section, sections())} "
                          f"(known sections: {', '.join(sections())})")
    names = [f.name for f in fields(getattr(Settings(), section))]
    if name not in names:
        raise ConfigError(f"unknown config key {key!r}: no key {name!r} in section [{section}]{where}"
                          f"{_did_you_mean(name, names)} (known in [{section}]: {', '.join(names)})")
    return section, name


ENV_OTHER: set[str] = {"M5DATA_WARM"}  # M5DATA_* variables that are not settings (m5data.warm's switch): never warned about


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
        pairs = [(f"{section}.{name}", value) for section, table in data.items() for name, value in table.items()]
        for key, value in _old_first(pairs):
            settings.set(key, value, str(path))
    known = {env_name(key): key for key, _ in settings.items()}
    old = {env_name(key): key for key in [*moved_keys(), *RETIRED]}
    for var in sorted(set(old) & set(environ)):  # before the new keys' variables, which win
        settings.set(old[var], environ[var], f"env {var}")
    for key, _ in settings.items():
        var = env_name(key)
        if var in environ:
            settings.set(key, environ[var], f"env {var}")
    for var in sorted(environ):
        if var.startswith(ENV_PREFIX) and var not in known and var not in old and var not in ENV_OTHER:
            close = difflib.get_close_matches(var, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]} ({known[close[0]]})?" if close else ""
            settings.warnings.append(f"environment variable {var} is not an m5data setting and is ignored{hint}")
    for key, value in _old_first((overrides or {}).items()):
        if value is not None:
            settings.set(key, value, "flag")
    return validate(settings)


def _old_first(pairs) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs of one layer with the moved keys first: the new key wins within a layer."""
    return sorted(pairs, key=lambda kv: moved(kv[0]) is None)


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Turn ``["download.concurrency=32", ...]`` (from ``--set``) into an overrides dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        if key.strip() not in RETIRED:
            _split_key(moved(key.strip()) or key.strip())
        out[key.strip()] = value.strip()
    return out


def as_dict(settings: Settings) -> dict[str, Any]:
    """Plain nested dict (for the runs table and for subprocesses)."""
    return {s: dataclasses.asdict(getattr(settings, s)) for s in sections()}
