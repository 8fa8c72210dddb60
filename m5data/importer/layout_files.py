"""Reading the M5Product layout's files (through :class:`~.layout_folder.LayoutFolder`): which JSON
holds the captions, the small JSON files read whole, the split lists' lines; every error a
:class:`~.layout_folder.LayoutError` naming the file."""

from __future__ import annotations

import json

from ..export.m5product_format import CAPTIONS
from . import limits
from .layout_folder import LayoutError, LayoutFolder
from .utf8 import NotUtf8, Utf8Reader

JSON_TYPES = {dict: "object", list: "array"}


def json_backends():
    """ijson's C backend (yajl2_c; else the best there is), then its Python one (exact, slow)."""
    import ijson

    try:
        fast = ijson.get_backend("yajl2_c")
    except ImportError:
        fast = ijson
    return fast, ijson.get_backend("python")


def open_file(folder: LayoutFolder, name: str):
    try:
        return folder.open(name)
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None


def not_utf8_error(folder: LayoutFolder, name: str, exc: NotUtf8) -> LayoutError:
    return LayoutError(f"{folder.root / name} is not UTF-8 text ({exc.reason} at byte {exc.start})")


def find_captions(folder: LayoutFolder) -> str:
    """The caption JSON's name: ``captions.json``, else the first top-level JSON file that is an object
    whose first (up to 20) values are objects with a ``title``: only their start is read."""
    import ijson

    if CAPTIONS in folder.names:
        return CAPTIONS
    for name in sorted(n for n, kind in folder.names.items() if kind == "file" and n.endswith(".json")):
        try:
            with folder.open(name) as fh:
                if _starts_like_captions(json_backends()[0].parse(Utf8Reader(fh), buf_size=limits.READ_BYTES)):
                    return name
        except (OSError, ValueError, ijson.JSONError, NotUtf8):  # UnicodeDecodeError is a ValueError
            continue
    raise LayoutError(f"no caption JSON in {folder.root} (captions.json, or a JSON object of {{id: {{title, pv}}}})")


def _starts_like_captions(events, look: int = 20) -> bool:
    """Whether ijson ``events`` start a non-empty object whose first ``look`` values are objects with a ``title``."""
    depth, seen, title = 0, 0, False
    for _prefix, event, value in events:
        if event in ("start_map", "start_array"):
            if depth <= 1 and event != "start_map":
                return False
            title = title and depth > 1
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 1:  # one value read
                if not title:
                    return False
                seen += 1
                if seen == look:
                    return True
            elif depth == 0:
                return seen > 0
        elif event == "map_key":
            title = title or (depth == 2 and value == "title")
        elif depth <= 1:  # a scalar at the top or as a value
            return False
    return False


def load_json(folder: LayoutFolder, name: str, default, kind: type):
    """The JSON value of the top-level file ``name`` (``default`` when absent), read whole: for the
    small files only (the label list); :class:`LayoutError` naming the file when it is no regular
    file, not UTF-8, not JSON, or not a JSON ``kind``."""
    if name not in folder.names:
        return default
    data = _read_text(folder, name)
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{folder.root / name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise LayoutError(f"{folder.root / name} is not a JSON {JSON_TYPES[kind]}")
    return value


def _read_text(folder: LayoutFolder, name: str) -> str:
    try:
        return folder.read_bytes(name).decode("utf-8")
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{folder.root / name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def lines(fh):
    """The lines of a binary file (cut at ``\\n`` and ``\\r``; the blank lines a ``\\r\\n`` makes are
    skipped by the reader anyway); a line longer than ``MAX_LINE`` after its leading spaces comes as None."""
    rest, overlong = b"", False
    while chunk := fh.read(limits.READ_BYTES):
        parts = (rest + chunk).replace(b"\r", b"\n").split(b"\n")
        rest = parts.pop()
        for i, line in enumerate(parts):
            yield None if (i == 0 and overlong) or len(line.lstrip()) > limits.MAX_LINE else line
        overlong = overlong and not parts
        rest = rest.lstrip()
        if len(rest) > limits.MAX_LINE:
            rest, overlong = b"", True
    if overlong:
        yield None
    elif rest:
        yield rest
