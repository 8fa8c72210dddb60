"""A streamed JSON object writer: the bytes of ``json.dumps(obj, ensure_ascii=False, sort_keys=True,
indent=1)``, written key by key, so an object of millions of entries never exists as one Python dict.

::

    with atomic_text(path) as fh:
        top = ObjectWriter(fh)
        top.add("item_ids", "source_id")
        items = top.open("items")          # a nested object, streamed too
        for item_id, record in sorted_stream:
            items.add(item_id, record)     # keys must come in sorted order (checked)
        items.close()
        top.add("version", "v1")
        top.close()

Each value that is not streamed is written by :func:`encode`: ``json.dumps``'s layout, its
strings through json's own C function, anything unusual (floats, subclasses) by ``json.dumps``
itself, so leaves (quotes, backslashes, control characters, U+2028, floats) are json's bytes.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

_string = json.encoder.encode_basestring  # json.dumps's own string form with ensure_ascii=False (C when built)


def dumps(value) -> str:
    """The reference form every writer here reproduces."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1)


def encode(value, level: int = 0) -> str:
    """``dumps(value)`` with its lines shifted to depth ``level`` (its first line not indented).

    ``json.dumps`` with ``indent`` runs the pure-Python encoder and builds it anew at every call
    (about 30 us for a small record); this writes dicts of string keys, lists, strings, ints,
    booleans and None directly (strings through the same C function json uses) and hands
    anything else (floats, subclasses, other keys) to ``json.dumps`` itself.
    """
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is dict and all(type(k) is str for k in value):
        if not value:
            return "{}"
        inner = "\n" + " " * (level + 1)
        return "{" + inner + ("," + inner).join(_string(k) + ": " + encode(value[k], level + 1) for k in sorted(value)) \
            + "\n" + " " * level + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = "\n" + " " * (level + 1)
        return "[" + inner + ("," + inner).join(encode(v, level + 1) for v in value) + "\n" + " " * level + "]"
    text = dumps(value)
    # json.dumps never writes a raw newline inside a string ("\n" is escaped), so every newline
    # in ``text`` is a line break of its layout: shift those lines to this depth
    return text.replace("\n", "\n" + " " * level) if level and "\n" in text else text


class ObjectWriter:
    """Writes one JSON object at nesting depth ``level``, one ``add`` (or ``open``) per key, keys in
    strictly increasing order (``sort_keys``: a key out of order is a ValueError, never a silently
    different file). ``close`` ends it (``{}`` when nothing was added, as ``json.dumps`` writes)."""

    def __init__(self, fh: TextIO, level: int = 0):
        self.fh, self.level = fh, level
        self._last: str | None = None
        self._child: ObjectWriter | None = None
        self._closed = False

    def _key(self, key: str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        if self._closed or (self._child is not None and not self._child._closed):
            raise ValueError("object closed, or a nested object still open")
        if self._last is not None and key <= self._last:
            raise ValueError(f"keys out of order: {key!r} after {self._last!r}")
        # json.dumps with indent: "{" newline, entries joined by "," newline, each indented one more level
        self.fh.write(("{\n" if self._last is None else ",\n") + " " * (self.level + 1))
        self.fh.write(_string(key) + ": ")
        self._last = key

    def add(self, key: str, value) -> None:
        """Write ``key: value``; ``value`` is anything ``json.dumps`` takes."""
        self._key(key)
        self.fh.write(encode(value, self.level + 1))

    def open(self, key: str) -> ObjectWriter:
        """Start ``key: {...}`` as a nested streamed object; close it before the next key of this one."""
        self._key(key)
        self._child = ObjectWriter(self.fh, self.level + 1)
        return self._child

    def close(self) -> None:
        if self._child is not None and not self._child._closed:
            raise ValueError("a nested object is still open")
        self.fh.write("{}" if self._last is None else "\n" + " " * self.level + "}")
        self._closed = True


@contextmanager
def atomic_text(path: Path):
    """A text file (UTF-8) written to ``.tmp-<name>`` and renamed onto ``path`` when the block ends
    without an error (the temp file is removed when it fails): readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data, **dump) -> None:
    """Write JSON to ``path`` through a temp file and a rename (sorted keys: byte-stable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1, **dump) + "\n", encoding="utf-8")
    os.replace(tmp, path)
