"""Strict UTF-8 under a streaming JSON parser: a layout file read through Python's own decoder, so a
bad byte is reported where a whole-file decode would report it, and the escapes that only the exact
(Python) ijson backend reads as ``json.loads`` does are noticed before the fast one misreads them."""

from __future__ import annotations

import codecs
import re

from . import limits


class NotUtf8(Exception):
    """Not UTF-8: ``reason`` and the byte offset ``start`` a whole-file decode names."""

    def __init__(self, reason: str, start: int):
        super().__init__(reason)
        self.reason, self.start = reason, start


class NeedsExact(Exception):
    """The fast backend cannot read this file as ``json.loads`` does: parse it with ijson's Python backend."""


# JSON escapes of UTF-16 surrogates: a high one not followed by a low one, a low one not after a high
# one, or one after a backslash (an escaped backslash and text, or an escape after one: not told apart)
_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(  # a literal start (a backslash): the search skips ahead to each one
    rb"\\(?:\\u[dD][89a-fA-F]|u[dD](?:[89abAB][0-9a-fA-F]{2}(?!%s)|(?<!%s\\u[dD])[c-fC-F][0-9a-fA-F]{2}))" % (_LOW, _HIGH))


class Utf8Reader:
    """A layout file read through Python's strict UTF-8 decoder: :class:`NotUtf8` at the byte a
    whole-file decode names. With ``watch``, :class:`NeedsExact` before the first JSON escape of a lone
    surrogate is handed on: yajl reads ``"\\ud800"`` as ``"?"``, where ``json.loads`` keeps it (and
    the item then fails as not valid Unicode)."""

    def __init__(self, fh, watch: bool = False):
        self.fh, self.watch = fh, watch
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.pos = 0  # bytes read so far
        self.tail = b""  # the last bytes read: an escape may be cut by a read
        self.judged = 0  # escapes that start before this byte are judged

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson asks once whether the file gives bytes
            return b""
        chunk = self.fh.read(n)
        pending = len(self.decoder.getstate()[0])  # an incomplete sequence left by the last read
        try:
            self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise NotUtf8(exc.reason, self.pos - pending + exc.start) from None
        if self.watch:
            buf, base = self.tail + chunk, self.pos - len(self.tail)
            m = _LONE_SURROGATE.search(buf, max(0, self.judged - base - 1))  # from the backslash before
            if m and (not chunk or m.start() < len(buf) - 12):  # the last 12 bytes wait for what follows
                raise NeedsExact
            self.judged = max(self.judged, base + len(buf) - 12)
            self.tail = buf[-18:]  # and the 6 before them, to see a high surrogate before a low one
        self.pos += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read the rest: a UTF-8 error anywhere in the file is reported before a JSON error."""
        self.watch = False
        while self.read(limits.READ_BYTES):
            pass
