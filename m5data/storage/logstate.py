"""A commit log's entries and the table state they fold into: what an entry of ``commitlog.py`` may be
(checked before it is folded: a known kind, the next number, parts named by a plain ``part-*.parquet``
name, never a path outside its table), and :class:`TableState`, a table as of some entry (its live parts
and their ``_seq``, its lease, its fences, its last group rewrite), which a checkpoint holds with a
digest of itself. No I/O here: the log's objects, reads and commits are ``commitlog.py``.

Entry kinds: ``write`` (adds parts), ``compact`` and ``replace`` (remove the parts they read, add their
own), ``lease`` and ``release`` (a whole-table rewriter's or a stage's lease), ``fence`` (a stage run
whose lease was taken over is shut out of the table: s3fence.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field

from .errors import DamagedLog
from .schema import TABLES
from .temps import holder_dead

FROM_FILE = 0  # a part whose rows keep their own _seq (a compaction's): the view reads the column
KINDS = ("write", "compact", "replace", "lease", "release", "fence")
_PART_NAME = re.compile(r"part-[^/\\\x00-\x1f]{1,200}\.parquet")  # a file of its own table's folder, no path
_ENTRY_NAME = re.compile(r"(\d{20})\.json")


def checked_entry(uri: str, data: bytes, n: int) -> dict:
    """Log entry ``n`` parsed from ``data``, refused (DamagedLog naming ``uri``) unless it is one."""
    try:
        entry = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedLog(f"{uri}: not a log entry ({exc}); the log of this table is damaged") from None
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS or entry.get("n") != n:
        raise DamagedLog(f"{uri}: not log entry {n} (kind {entry.get('kind') if isinstance(entry, dict) else None!r}, "
                         f"n {entry.get('n') if isinstance(entry, dict) else None!r}); the log of this table is damaged")
    for field_name in ("add", "remove"):
        names = entry.get(field_name, [])
        if not isinstance(names, list):
            raise DamagedLog(f"{uri}: its {field_name!r} is not a list of parts; the log of this table is damaged")
        bad = next((x for x in names if not isinstance(x, str) or not _PART_NAME.fullmatch(x)), None)
        if bad is not None:
            raise DamagedLog(f"{uri}: names {str(bad)[:200]!r}, not a part of this table's folder; "
                             "the log of this table is damaged")
    if entry["kind"] == "lease" and not isinstance(entry.get("lease"), dict):
        raise DamagedLog(f"{uri}: a lease entry without a lease; the log of this table is damaged")
    fence = entry.get("fence")
    if entry["kind"] == "fence" and not (isinstance(fence, dict) and isinstance(fence.get("lease"), str)
                                         and isinstance(fence.get("epoch"), int)):
        raise DamagedLog(f"{uri}: a fence entry without its lease and epoch; the log of this table is damaged")
    if "group" in entry and (problem := _group_problem(entry["group"])):
        raise DamagedLog(f"{uri}: its group {problem}; the log of this table is damaged")
    return entry


def _group_problem(group) -> str | None:
    """What is wrong with a replace entry's ``group`` (the other tables it rewrites: s3groups.py), or None."""
    if not isinstance(group, dict) or not isinstance(group.get("tables"), dict):
        return "is not a group of tables"
    for table, change in group["tables"].items():
        if table not in TABLES or not isinstance(change, dict) or not isinstance(change.get("lease"), str):
            return f"names {str(table)[:100]!r} without its change"
        for field_name in ("add", "remove"):
            names = change.get(field_name)
            if not isinstance(names, list) or any(not isinstance(x, str) or not _PART_NAME.fullmatch(x) for x in names):
                return f"names a {field_name!r} of table {table} that is not a list of its parts"
    return None


def entry_number(rel: str) -> int | None:
    """The number of the log entry whose key is ``rel`` (None: not an entry's name)."""
    m = _ENTRY_NAME.fullmatch(rel.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


@dataclass
class TableState:
    """A table as of log entry ``n``: its live parts and their ``_seq``, its lease."""

    n: int = 0
    parts: dict[str, int] = field(default_factory=dict)  # part name -> _seq (FROM_FILE: the rows' own)
    compacted: bool = True  # the live parts are exactly those of the last compact/replace
    last_tag: str | None = None  # content tag of the newest entry when it is a write (a repeat is a no-op)
    lease: dict | None = None  # {"holder", "what", "host", "pid", "until"} of a rewrite in progress
    group: dict | None = None  # the tables rewritten with this one by its last replace (s3groups.py)
    # stage lease log -> the highest epoch fenced in this log: a run of that stage whose lease was taken
    # at a lower epoch commits nothing here any more (s3fence.py)
    fences: dict[str, int] = field(default_factory=dict)

    def copy(self) -> TableState:
        return TableState(self.n, dict(self.parts), self.compacted, self.last_tag,
                          dict(self.lease) if self.lease else None, self.group, dict(self.fences))

    def fold(self, entry: dict) -> None:
        """Apply one entry (the next one: ``entry["n"] == self.n + 1``)."""
        n, kind = int(entry["n"]), entry["kind"]
        for name in entry.get("remove", []):
            self.parts.pop(name, None)
        seq = FROM_FILE if kind == "compact" else n
        for name in entry.get("add", []):
            self.parts[name] = seq
        if kind == "write":
            self.compacted = self.compacted and not entry.get("add")
            self.last_tag = entry.get("tag")
        elif kind in ("compact", "replace"):
            self.compacted = set(self.parts) == set(entry.get("add", []))
            self.last_tag = None
        if kind == "replace":  # a compaction keeps it: the content is the same
            self.group = entry.get("group")
        if kind == "lease":
            self.lease = entry["lease"]
        elif kind == "fence":
            lease, epoch = entry["fence"]["lease"], entry["fence"]["epoch"]
            self.fences[lease] = max(epoch, self.fences.get(lease, 0))
        elif self.lease and entry.get("release") == self.lease.get("holder"):
            self.lease = None
        self.n = n

    def live_lease(self) -> dict | None:
        """The lease when it has not run out (a holder killed mid-rewrite frees it after ``until``) and
        its holder is not known dead (a process of this machine that no longer runs: see :func:`holder_dead`)."""
        lease = self.lease
        if not lease or float(lease.get("until", 0)) <= time.time() or holder_dead(lease):
            return None
        return lease

    def to_json(self) -> bytes:
        """The checkpoint's bytes: the state with a digest of itself (a checkpoint edited or cut is refused)."""
        body = {"n": self.n, "parts": self.parts, "compacted": self.compacted, "last_tag": self.last_tag,
                "lease": self.lease, **({"group": self.group} if self.group else {}),
                **({"fences": self.fences} if self.fences else {})}
        return json.dumps({**body, "digest": _digest(body)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, uri: str = "checkpoint") -> TableState:
        """The state a checkpoint holds; DamagedLog when it is not one or its digest does not hold."""
        try:
            d = json.loads(data)
            digest = d.pop("digest", None)
            if digest != _digest(d):
                raise DamagedLog(f"{uri}: {'no digest' if digest is None else 'its digest does not match its content'}"
                                 " (written by hand, cut, or by an m5data before the check)")
            state = cls(int(d["n"]), {str(k): int(v) for k, v in d["parts"].items()}, bool(d["compacted"]),
                        d.get("last_tag"), d.get("lease"), d.get("group"),
                        {str(k): int(v) for k, v in (d.get("fences") or {}).items()})
        except DamagedLog:
            raise
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise DamagedLog(f"{uri}: not a checkpoint ({type(exc).__name__}: {exc})") from None
        if bad := next((p for p in state.parts if not _PART_NAME.fullmatch(p)), None):
            raise DamagedLog(f"{uri}: names {bad[:200]!r}, not a part of this table's folder")
        return state

    def same(self, other: TableState) -> bool:
        """The same table: parts, their ``_seq`` and whether compacted (a lease aside)."""
        return (self.n, self.parts, self.compacted, self.fences) == (other.n, other.parts, other.compacted, other.fences)


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
