"""The charset of a page: what it declares (HTTP header, a ``<meta>`` anywhere in ``<head>``) and
what its bytes are.

Chinese shop pages are often GBK / GB18030 / Big5 with the ``<meta charset>`` far into a long
``<head>`` (past 150 KB of inline scripts on real pages, beyond the first 4 KB that w3lib scans)
and no charset in the HTTP header. A byte-level detector then sees mostly ASCII and guesses a
single-byte charset. So: a declared CJK charset that decodes the bytes strictly is kept (its
wider family is tried when the label is too narrow: gb2312 -> gbk -> gb18030, big5 -> big5hkscs,
as browsers do); without one, a CJK charset that decodes the bytes strictly *and* reads as
common CJK text beats charset-normalizer's single-byte guess.
"""

from __future__ import annotations

import codecs
import re

MULTIBYTE = {"gb2312", "gbk", "gb18030", "big5", "big5hkscs", "shift_jis", "cp932", "euc_jp", "euc_kr",
             "cp949", "iso2022_jp", "hz", "cp950"}
# a label's wider relatives, in the order browsers' decoders behave (WHATWG: gb2312 = gbk ~ gb18030)
_FAMILY = {"gb2312": ("gbk", "gb18030"), "gbk": ("gb18030",), "hz": ("gb18030",), "big5": ("big5hkscs", "cp950"),
           "cp950": ("big5hkscs",), "shift_jis": ("cp932",), "euc_kr": ("cp949",)}
_HEAD_END = re.compile(rb"</head\s*>|<body[\s>]", re.I)
_META = re.compile(rb"""<meta\s[^>]*?(?:charset\s*=\s*["']?\s*([\w.:+-]+)|content\s*=\s*["'][^"'>]*charset\s*=\s*([\w.:+-]+))""", re.I)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_HEAD_LIMIT = 4 * 2**20  # look no further than 4 MB for the end of <head>


def codec(name: str | None) -> str | None:
    """Python's codec name for a charset label (``GB2312`` -> ``gb2312``), None when unknown."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("'\"")).name
    except LookupError:
        return None


def meta_charset(body: bytes) -> str | None:
    """The charset of the first ``<meta charset>`` / ``http-equiv`` Content-Type inside ``<head>``,
    wherever it sits in the head (w3lib looks at the first 4 KB only)."""
    end = _HEAD_END.search(body, 0, _HEAD_LIMIT)
    head = body[: end.start() if end else min(len(body), _HEAD_LIMIT)]
    m = _META.search(head)
    if not m:
        return None
    return (m.group(1) or m.group(2)).decode("ascii", "replace")


def declared_encoding(content_type: str | None, body: bytes) -> str | None:
    """The charset a page declares: the HTTP header first, then a ``<meta>`` in its ``<head>``."""
    from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding

    return http_content_type_encoding(content_type) or html_body_declared_encoding(body) or meta_charset(body)


def _decodes(body: bytes, name: str) -> bool:
    try:
        body.decode(name)
        return True
    except (UnicodeDecodeError, LookupError):
        return False


def _common_cjk_share(text: str, charset: str) -> float:
    """Share of the non-ASCII characters that are common CJK text in ``charset``: GB2312 level-1
    hanzi and full-width punctuation for the GB family, Big5's frequent characters and symbols for
    Big5. Latin text decoded as GBK/Big5 by mistake lands in the rare areas or the GBK extension."""
    n = common = 0
    for ch in _NON_ASCII.findall(text):
        n += 1
        try:
            if charset.startswith("gb"):
                b = ch.encode("gb2312")
                common += len(b) == 2 and (0xB0 <= b[0] <= 0xD7 or 0xA1 <= b[0] <= 0xA3)
            else:
                b = ch.encode("big5")
                code = b[0] << 8 | b[1]
                common += len(b) == 2 and (0xA140 <= code <= 0xA3BF or 0xA440 <= code <= 0xC67E)
        except (UnicodeEncodeError, IndexError):
            pass
    return common / n if n else 0.0


def cjk_guess(body: bytes) -> str | None:
    """A CJK charset that decodes ``body`` strictly and reads as common CJK text (>= 80 % of its
    non-ASCII characters), else None. Tried: gbk, gb18030, big5 (big5hkscs); the best share wins."""
    best, best_share = None, 0.0
    for family in (("gbk", "gb18030"), ("big5", "big5hkscs")):
        for name in family:
            if _decodes(body, name):
                share = _common_cjk_share(body.decode(name), name)
                if share >= 0.8 and share > best_share:
                    best, best_share = name, share
                break
    return best


def detect_encoding(body: bytes, declared: str | None) -> str:
    """The encoding of an HTML body, trusting its bytes over a wrong declared charset.

    Order: a BOM; valid UTF-8 (non-ASCII UTF-8 that decodes strictly is almost never another
    charset); the declared charset (or its wider family) when the bytes decode strictly and it is
    a multi-byte CJK charset (which rejects most foreign bytes); charset-normalizer's guess when it
    is multi-byte; a CJK charset whose decoding reads as common CJK text
    (:func:`cjk_guess`) over a single-byte guess; else the declared single-byte charset, the
    guess, or cp1252.
    """
    from w3lib.encoding import read_bom

    bom, _ = read_bom(body)
    if bom:
        return codec(bom) or "utf-8"
    declared = codec(declared)
    if body.isascii():
        return declared or "utf-8"
    if _decodes(body, "utf-8"):
        return "utf-8"
    if declared and declared != "utf-8":
        for name in (declared, *_FAMILY.get(declared, ())):
            if _decodes(body, name):
                if name in MULTIBYTE:
                    return name
                break
        else:
            declared = None
        if declared in MULTIBYTE:  # a CJK label that none of its family decodes: the label is wrong
            declared = None
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    guess = codec(best.encoding) if best is not None else None
    if guess and (guess in MULTIBYTE or guess == "gb18030"):
        return guess
    if cjk := cjk_guess(body):
        return cjk
    return declared or guess or "cp1252"
