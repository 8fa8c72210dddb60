"""JavaScript object literals as Python values, and the payloads pages assign in their scripts.

Shop pages keep product data in script assignments (``var _DATA_Detail = {...};``,
``window.runParams = {data: {...}}``, ``var pageConfig = {product: {...}}``, ``TShop.Setup({...})``)
and in JSON or JavaScript responses (``mtopjsonp1({...})``, a ``.js`` file). These are often not
JSON: single-quoted strings, unquoted keys, trailing commas, comments, ``!0``, ``undefined``,
``new Date``, function values. :func:`parse_js` reads such a literal tolerantly: JSON parts go
through the C JSON decoder (fast), the rest through a small scanner; an expression it cannot read
(a function, ``+new Date``, ``a || b``) becomes None instead of failing the whole payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_DECODER = json.JSONDecoder(strict=False)
_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?(?:\*/|\Z)|<!--|-->)*", re.S)  # an unclosed /* runs to the end
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_NUMBER = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_LITERALS = {"true": True, "false": False, "null": None, "undefined": None, "NaN": None, "Infinity": None}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
# `var NAME = {`, `window.NAME = {`, `window["NAME"] = (`, `NAME.x = [`, and calls `TShop.Setup({`, `cb({`
_ASSIGN = re.compile(r"""(?:\b(?:var|let|const)\s+)?((?:window\s*\[\s*["'][\w$]+["']\s*\]|[A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*))"""
                     r"""\s*(?:=(?![=>])\s*\(?|\(\s*)\s*(?=[\[{])""")


class JSSyntaxError(ValueError):
    """A literal that cannot be read at all (not an object, array or value at ``pos``)."""


def parse_js(text: str, pos: int = 0):
    """The JavaScript value (object, array, string, number...) at ``text[pos:]``.

    Raises :class:`JSSyntaxError` when nothing readable starts there; unreadable members
    inside an object or array become None.
    """
    value, _ = _value(text, _skip(text, pos))
    return value


def read_js(text: str, pos: int = 0) -> tuple[object, int]:
    """(value, end position) of the JavaScript value at ``text[pos:]`` (see :func:`parse_js`)."""
    return _value(text, _skip(text, pos))


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _value(text: str, pos: int):
    if pos >= len(text):
        raise JSSyntaxError("end of text")
    ch = text[pos]
    if ch in "{[\"":
        try:  # JSON is the common case: the C decoder reads it in one go
            return _DECODER.raw_decode(text, pos)
        except ValueError:
            pass
        if ch == "{":
            return _object(text, pos + 1)
        if ch == "[":
            return _array(text, pos + 1)
    if ch in "'\"`":
        return _string(text, pos)
    if m := _NUMBER.match(text, pos):
        raw = m.group(0).lstrip("+")
        try:
            if raw.lstrip("-").lower().startswith("0x"):
                num = int(raw, 16)
            else:
                num = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            num = None
        return num, m.end()
    if text.startswith("!0", pos) or text.startswith("!1", pos):
        return text[pos + 1] == "0", pos + 2
    if text.startswith("JSON.parse(", pos):
        inner = _skip(text, pos + len("JSON.parse("))
        if inner < len(text) and text[inner] in "'\"`":
            raw, end = _string(text, inner)
            end = _skip(text, end)
            if end < len(text) and text[end] == ")":
                try:
                    return json.loads(raw), end + 1
                except ValueError:
                    pass
    if m := _IDENT.match(text, pos):
        word = m.group(0)
        if word in _LITERALS:
            end = _skip(text, m.end())
            if end >= len(text) or text[end] in ",}]);":
                return _LITERALS[word], m.end()
    end = _skip_expression(text, pos)
    if end == pos:
        raise JSSyntaxError(f"no value at {pos}")
    return None, end


def _next_member(text: str, pos: int, close: str) -> tuple[int, bool]:
    """Where the next member of an object or array (``close``: its bracket) starts, commas and
    comments skipped, and whether the literal ends there instead: at its bracket (consumed), at
    the end of the text, or at another closing bracket or ``;`` (kept: an unclosed literal ends
    there rather than loop)."""
    while True:
        pos = _skip(text, pos)
        if pos >= len(text):
            return pos, True
        ch = text[pos]
        if ch == close:
            return pos + 1, True
        if ch in ")]};":
            return pos, True
        if ch != ",":
            return pos, False
        pos += 1


def _member_end(text: str, pos: int, value, close: str):
    """(value, position) after a member's value: an expression such as ``a + b`` goes on past the
    value read, up to the next ``,`` or ``close``, and is dropped (None)."""
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] not in "," + close:
        return None, _skip_expression(text, pos)
    return value, pos


def _object(text: str, pos: int):
    out: dict = {}
    while True:
        pos, done = _next_member(text, pos, "}")
        if done:
            return out, pos
        ch = text[pos]
        if ch in "'\"`":
            key, pos = _string(text, pos)
        elif m := (_IDENT.match(text, pos) or _NUMBER.match(text, pos)):
            key, pos = m.group(0), m.end()
        elif ch == "[":  # computed key: skip the member
            pos = _skip_expression(text, pos)
            continue
        else:
            pos = _skip_expression(text, pos)
            continue
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ":":
            try:
                value, pos = _value(text, _skip(text, pos + 1))
            except JSSyntaxError:
                value = None
            value, pos = _member_end(text, pos, value, "}")
            out[str(key)] = value
        elif pos < len(text) and text[pos] == "(":  # a method `name() {...}`
            pos = _skip_expression(text, pos)
        elif pos < len(text) and text[pos] in ",}":  # shorthand `{name}`
            out[str(key)] = None
        else:
            pos = _skip_expression(text, pos)


def _array(text: str, pos: int):
    out: list = []
    while True:
        pos, done = _next_member(text, pos, "]")
        if done:
            return out, pos
        try:
            value, pos = _value(text, pos)
        except JSSyntaxError:
            value, pos = None, _skip_expression(text, pos)
        value, pos = _member_end(text, pos, value, "]")
        out.append(value)


_STRING_BODY = {q: re.compile(rf"[^{q}\\\n]*") for q in "'\""}


def _string(text: str, pos: int):
    quote = text[pos]
    pos += 1
    parts = []
    while pos < len(text):
        if quote != "`":
            m = _STRING_BODY[quote].match(text, pos)
            parts.append(m.group(0))
            pos = m.end()
            if pos >= len(text):
                break
        ch = text[pos]
        if ch == quote:
            return "".join(parts), pos + 1
        if ch == "\\" and pos + 1 < len(text):
            nxt = text[pos + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[pos + 2:pos + 6]):
                parts.append(chr(int(text[pos + 2:pos + 6], 16)))
                pos += 6
            elif nxt == "u" and text[pos + 2:pos + 3] == "{" and (end := text.find("}", pos)) != -1:
                try:
                    parts.append(chr(int(text[pos + 3:end], 16)))
                except ValueError:
                    pass
                pos = end + 1
            elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[pos + 2:pos + 4]):
                parts.append(chr(int(text[pos + 2:pos + 4], 16)))
                pos += 4
            elif nxt == "\n":  # line continuation
                pos += 2
            else:
                parts.append(_ESCAPES.get(nxt, nxt))
                pos += 2
            continue
        if ch == "\n" and quote != "`":  # an unterminated string: stop at the line end
            return "".join(parts), pos
        parts.append(ch)
        pos += 1
    return "".join(parts), pos


def _skip_expression(text: str, pos: int) -> int:
    """The end of the expression at ``pos``: the next ``,``, ``}``, ``]`` or ``)`` outside brackets and strings."""
    depth = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in "'\"`":
            _, pos = _string(text, pos)
            continue
        if ch == "/" and pos + 1 < n and text[pos + 1] in "/*":
            pos = max(_skip(text, pos), pos + 1)  # always advance, whatever the comment
            continue
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            if depth == 0:
                return pos
            depth -= 1
        elif ch in ",;" and depth == 0:
            return pos
        pos += 1
    return pos


def js_assignments(text: str, names: tuple[str, ...] | None = None) -> Iterator[tuple[str, object]]:
    """(name, value) of every object or array a script assigns or passes to a call.

    Finds ``var NAME = {...}``, ``window.NAME = {...}``, ``window["NAME"] = ({...})``,
    ``a.b = [...]`` and ``Call({...})`` (``TShop.Setup({...})``, JSONP ``cb({...})``), in page
    order. ``names``: keep only these (the last dotted part or the whole name matches).
    Values that cannot be read at all are skipped.
    """
    for m in _ASSIGN.finditer(text):
        name = re.sub(r"""^window\s*\[\s*["']([\w$]+)["']\s*\]$""", r"\1", re.sub(r"\s+", "", m.group(1)))
        short = name.rsplit(".", 1)[-1]
        if names is not None and name not in names and short not in names:
            continue
        try:
            value, _ = read_js(text, m.end())
        except (JSSyntaxError, RecursionError):
            continue
        yield name, value


def loads_lenient(text: str):
    """A JSON or JavaScript payload response: JSON, JSONP ``cb({...})``, or a script of assignments.

    Returns the value (JSON, the JSONP argument) or a dict of the script's assignments by name;
    None when the text holds no readable payload.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in "{[":
        try:
            return json.loads(stripped)
        except ValueError:
            try:
                return parse_js(stripped)
            except JSSyntaxError:
                return None
    found = {}
    for name, value in js_assignments(stripped[:5_000_000]):
        found.setdefault(name, value)
    if len(found) == 1 and re.match(r"[\w$.]+\s*\(", stripped):  # JSONP: the argument itself
        return next(iter(found.values()))
    return found or None
