"""The level-1 mapping file: unified classes (ids 1..K) and each platform's level-1 names.

TOML (or YAML, same structure)::

    [classes]                       # unified class id -> unified class name
    1 = "手机/运营商/数码"
    2 = "家用电器"

    [platforms.shopa]               # raw level-1 name on shopa -> unified class (id or name)
    "手机/运营商/数码" = 1
    "家用电器" = "家用电器"

    [platforms.shopb]
    "手机/数码" = 1

The platform tables may also sit at the top level (``[shopa]`` instead of ``[platforms.shopa]``),
as in the demo shop's ``truth/level1_mapping.toml``. Several raw names may map to one class; a raw name maps to exactly one class. Names are compared
after stripping surrounding whitespace. A raw level-1 name missing from the file is *unmapped*:
align reports it and writes its paths to ``label_map`` with ``method = 'unmapped'``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError


class MappingError(UserError, ValueError):
    """A mapping file that cannot be used; the message names the file and the entry."""


@dataclass
class Level1Mapping:
    """Unified classes and the platform level-1 names that map onto them."""

    classes: dict[int, str]
    platforms: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = ""

    def class_of(self, platform: str, level1: str) -> int | None:
        """The unified class id of a platform's level-1 name, or None when it is not mapped."""
        return self.platforms.get(platform, {}).get(level1.strip())

    @classmethod
    def load(cls, path: str | Path) -> Level1Mapping:
        """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) mapping file."""
        path = Path(path)
        if not path.is_file():
            raise MappingError(f"level-1 mapping file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in {".yaml", ".yml"}:
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = tomllib.loads(text)
        except Exception as exc:  # TOMLDecodeError, yaml.YAMLError: one line naming the file
            raise MappingError(f"level-1 mapping {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<mapping>") -> Level1Mapping:
        """Validate the parsed structure (see the module docstring)."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), dict) or not data["classes"]:
            raise MappingError(f"level-1 mapping {source}: needs a non-empty [classes] table (id = name)")
        classes: dict[int, str] = {}
        for key, name in data["classes"].items():
            try:
                cid = int(key)
            except (TypeError, ValueError):
                raise MappingError(f"level-1 mapping {source}: class id {key!r} is not an integer") from None
            if cid < 1:
                raise MappingError(f"level-1 mapping {source}: class id {cid} must be >= 1")
            if not isinstance(name, str) or not name.strip():
                raise MappingError(f"level-1 mapping {source}: class {cid} needs a name")
            classes[cid] = name.strip()
        names = {n: c for c, n in classes.items()}
        if len(names) != len(classes):
            raise MappingError(f"level-1 mapping {source}: two classes share a name")
        platforms: dict[str, dict[str, int]] = {}
        # [platforms.<name>] tables, or (the demo shop's layout) every other top-level table.
        raw_platforms = data.get("platforms") or {k: v for k, v in data.items() if k != "classes"}
        if not isinstance(raw_platforms, dict) or not raw_platforms:
            raise MappingError(f"level-1 mapping {source}: needs [platforms.<name>] tables (raw level-1 name = class)")
        for platform, table in raw_platforms.items():
            if not isinstance(table, dict):
                raise MappingError(f"level-1 mapping {source}: platforms.{platform} must be a table")
            out: dict[str, int] = {}
            for raw, target in table.items():
                if isinstance(target, bool):
                    target = None
                if isinstance(target, int) and target in classes:
                    cid = target
                elif isinstance(target, str) and target.strip() in names:
                    cid = names[target.strip()]
                elif isinstance(target, str) and target.strip().isdigit() and int(target) in classes:
                    cid = int(target)
                else:
                    raise MappingError(
                        f"level-1 mapping {source}: platforms.{platform}.{raw!r} = {target!r} is not a class id or name")
                out[str(raw).strip()] = cid
            platforms[str(platform)] = out
        return cls(classes, platforms, source)
