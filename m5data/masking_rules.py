"""The rules of personal-data masking (m5data/masking.py): where a text holds a phone number, an
e-mail address, a contact handle, an ID card number or a street address, as spans of the text.

A text is matched in its NFKC form (full-width ``１３８`` and ``＠`` become ``138`` and ``@``, an
ideographic space a space) with format characters (zero-width spaces, soft hyphens) dropped, and
each span found is mapped back onto the original text, which keeps every other character as it was.

Every pattern runs in time linear in the text's length: no two unbounded quantifiers can share a run
of characters (bounded ones, ``{1,5}``, only multiply by a constant), and the address rule extends a
short anchor (``路88号``) by a bounded walk (tests/masking/test_masking_linear.py, benchmarks/bench_masking.py).
"""

from __future__ import annotations

import re
import unicodedata
from array import array

PHONE, EMAIL, CONTACT, IDCARD, ADDRESS = "[PHONE]", "[EMAIL]", "[CONTACT]", "[ID]", "[ADDRESS]"
_F = re.ASCII | re.IGNORECASE  # matched on the NFKC form: ASCII digits and letters, either case

# nothing a number continues from (a model number, a barcode, a price), nor ``WX-`` or ``No.`` before it
_EDGE_L = r"(?<![0-9A-Za-z+])(?<![0-9A-Za-z][-/.])"
_EDGE_R = r"(?![0-9A-Za-z])"
# a Latin word a phone number may follow directly (``Tel13800138001``, ``加我V13800138002``); a word
# standing alone: ``SN13800138000`` (a serial number) and ``hotel1380...`` are not cues
_CUES = ("tel", "phone", "mobile", "mob", "cell", "call", "whatsapp", "v", "vx", "wx", "wechat", "weixin", "qq")
_CUE_L = "(?:" + "|".join(f"(?<=(?<![A-Za-z]){c})" for c in _CUES) + "|" + _EDGE_L + ")"
_S = r"[\s-]"  # one separator between digit groups (each pattern looks ahead at its first character:
# the cue lookbehinds tried at every position cost 10 times more)

# e-mail: ``a@b.cn``; ``a(at)b.cn``, ``a [at] b [dot] cn``, ``a艾特b点com``; ``a#qq.com`` and ``a at qq.com``
# only with a mail provider's domain (``look at example.com`` is prose)
_LOCAL = r"(?=[A-Za-z0-9])(?<![A-Za-z0-9_.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*"
_DOT = r"(?:\.|\s?[(\[]\s?dot\s?[)\]]\s?|\sdot\s|点)"
_PROVIDERS = r"(?:qq|163|126|139|189|yeah|sina|sohu|aliyun|foxmail|gmail|hotmail|outlook|live|yahoo|icloud)"
_EMAILS = [
    re.compile(_LOCAL + r"(?:@|\s?[(\[]\s?at\s?[)\]]\s?|艾特)[A-Za-z0-9-]+(?:" + _DOT + r"[A-Za-z0-9-]+)*" + _DOT
               + r"[A-Za-z]{2,}(?![A-Za-z0-9_-])", _F),
    re.compile(_LOCAL + r"(?:\s?#\s?|\sat\s)" + _PROVIDERS + _DOT + r"(?:com|cn|net)(?:\.cn)?(?![A-Za-z0-9_-])", _F),
]

_PHONES = [re.compile(p, _F) for p in (
    # a mainland mobile 1[3-9]x xxxx xxxx: 3-4-4 or 4-4-3 groups, or a separator between every digit,
    # after +86 / 0086 / 86 / (+86) or a cue word
    r"(?=[0-9(+])" + _CUE_L + r"(?:\(?(?:\+|00)?86\)?" + _S + r"?)?(?:1[3-9](?:\d(?:" + _S + r"?\d{4}){2}|\d{2}" + _S + r"?\d{4}"
    + _S + r"?\d{3})|1" + _S + r"[3-9](?:" + _S + r"\d){9})" + _EDGE_R,
    # a landline: (0xx) or 0xx, then a separator, then 7-8 digits (an extension after it); +86 10 ...
    r"(?=[0(+])" + _CUE_L + r"(?:\(0\d{2,3}\)\s?|0\d{2,3}[\s-]|(?:\+|00)86[\s-]?\(?0?[1-9]\d{1,2}\)?[\s-]?)\d{3,4}[\s-]?\d{4}"
    r"(?:-\d{1,5})?" + _EDGE_R,
    # a landline without separator, after its word: 电话02162345678
    r"(?=[号\s:0])(?:(?<=电话|座机|固话|热线|话:|机:)|(?<=tel))(?:号码?)?\s?:?\s?(0[1-9]\d{8,10})" + _EDGE_R,
    # 400 / 800 service numbers: 400-xxx-xxxx, 4008208820
    r"(?=[48])" + _CUE_L + r"[48]00[\s-]?\d{3}[\s-]?\d{4}" + _EDGE_R,
    # international: a + and a country code, then groups of digits (checked by _intl_ok)
    r"(?=\+)" + _CUE_L + r"\+(?!86)\d{1,3}(?:[\s-]?\(?\d{1,4}\)?){2,5}" + _EDGE_R,
)]

# a contact keyword and its handle. Chinese keywords (and QQ) may touch the handle (``微信abc123``,
# ``QQ12345678``); a Latin keyword needs a space or colon before it (``WX123456`` is a model number)
_KEYWORD = (r"(?:微信号?|威信|薇信|徽信|维信|[Vv]信|加我?\s*[Vv微薇]|\+\s*[Vv](?![A-Za-z])"
            r"|(?<![A-Za-z])(?:QQ|qq)(?![A-Za-z-])|(?:QQ|qq)群|扣扣|企鹅号?|Q群)")
# the gap between a keyword and its handle, ``\s* (号|号码|群)? \s* [:：]? \s*`` written so that each space
# has one place to go: the same texts, but three adjacent ``\s*`` tried every way to split a run of
# spaces (cubic: ``微信`` and 3,000 spaces took 90 s), where these try each end of it once (linear)
_GAP = r"\s*(?:(?:号码?|群)\s*)?(?:[:：]\s*)?"
_HANDLE = r"(?:[A-Za-z][-_A-Za-z0-9]{5,19}|\d{5,12})" + _EDGE_R
_CONTACT = re.compile(_KEYWORD + _GAP + _HANDLE)
_LATIN = re.compile(r"(?<![A-Za-z])(?:vx|wx|weixin|wechat|wei\sxin)(?:\s?id)?(?=[\s:])\s*(?::\s*)?" + _HANDLE, _F)

# an 18-digit ID card number (a birth date inside, its check digit right), spaced 6-8-4 or whole
_IDCARD = re.compile(r"(?=[0-9])(?<![0-9A-Za-z])\d{6}\s?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?\d{3}[0-9X]"
                     + _EDGE_R, _F)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

# a street address: an anchor (a road and its number ``建国路88号``, a building and room ``3栋2单元501``)
# extended left over the Chinese characters before it (``北京市朝阳区``, at most 24) and right over
# building, unit and room parts
_CJK = re.compile(r"[\u4e00-\u9fff]{1,24}$")
_ANCHORS = [re.compile(p, _F) for p in (
    r"(?:路|街|大道|道|巷|弄|胡同|里|段)\s?\d{1,5}(?:[-之]\d{1,5})?\s?(?:号|弄)",
    r"(?:\d{1,4}|[A-Z])\s?(?:栋|幢|号楼|座)\s?(?:\d{1,2}\s?单元\s?)?\d{2,5}\s?(?:室|房|号)?",
    r"(?:小区|花园|公寓|大厦|新村|家园|苑)\s?\d{1,3}-\d{1,2}-\d{3,4}" + _EDGE_R,
)]
_ROOM = re.compile(r"(?:\s?(?:院|(?:\d{1,5}|[A-Z])\s?(?:栋|幢|号楼|座|单元|层|楼|室|号|弄))){0,5}", _F)
_ADDRESS_CUE = re.compile(r"(?:地址|位于|寄到|寄至|发往|送到|住在|住址)")

_WIDE = re.compile(r"[^\x00-\x7f\u4e00-\u9fff]+")


def normalise(text: str) -> tuple[str, array | None]:
    """``text`` in NFKC with format characters dropped, and the original index of each of its
    characters (None where the text is its own form)."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _has_format(text)):
        return text, None
    parts, starts, pos = [], array("q"), 0
    for m in _WIDE.finditer(text):  # only characters outside ASCII and the CJK block can change
        a, b = m.span()
        parts.append(text[pos:a])
        starts.extend(range(pos, a))
        for i in range(a, b):
            c = text[i]
            n = "" if unicodedata.category(c) == "Cf" else unicodedata.normalize("NFKC", c)
            parts.append(n)
            starts.extend([i] * len(n))
        pos = b
    parts.append(text[pos:])
    starts.extend(range(pos, len(text)))
    return "".join(parts), starts


def _has_format(text: str) -> bool:
    return any(unicodedata.category(c) == "Cf" for m in _WIDE.finditer(text) for c in m.group(0))


def _intl_ok(s: str) -> bool:
    """An international number has 8 to 15 digits (E.164), 11 after +1 or +7 (``+199 299 399`` is a spec)."""
    n = sum(c.isdigit() for c in s)
    return n == 11 if s[1] in "17" else 8 <= n <= 15


def _id_ok(s: str) -> bool:
    d = [c for c in s if not c.isspace()]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(d, _ID_WEIGHTS)) % 11]
    return d[17].upper() == check


def _addresses(text: str):
    for pattern in _ANCHORS:
        for m in pattern.finditer(text):
            left = _CJK.search(text, max(0, m.start() - 24), m.start())
            if left is None or len(left.group(0)) < 2:
                continue
            start = left.start()
            for cue in _ADDRESS_CUE.finditer(text, start, m.start()):
                start = cue.end()
            if m.start() - start < 2:
                continue
            yield start, _ROOM.match(text, m.end()).end(), ADDRESS


def spans(text: str) -> list[tuple[int, int, str]]:
    """The personal data in ``text`` (already normalised): ``(start, end, placeholder)``, sorted, not
    overlapping (where two overlap, the one starting first wins, then the longer)."""
    found = [(m.start(), m.end(), EMAIL) for p in _EMAILS for m in p.finditer(text)]
    found += [(m.start(), m.end(), IDCARD) for m in _IDCARD.finditer(text) if _id_ok(m.group(0))]
    for i, pattern in enumerate(_PHONES):
        for m in pattern.finditer(text):
            if i == len(_PHONES) - 1 and not _intl_ok(m.group(0)):
                continue
            found.append((*m.span(m.lastindex or 0), PHONE))
    found += [(m.start(), m.end(), CONTACT) for p in (_CONTACT, _LATIN) for m in p.finditer(text)]
    found += _addresses(text)
    out: list[tuple[int, int, str]] = []
    for start, end, label in sorted(found, key=lambda s: (s[0], -s[1])):
        if out and start < out[-1][1]:
            if label == out[-1][2] == ADDRESS:  # one address read from two anchors
                out[-1] = (out[-1][0], max(end, out[-1][1]), label)
            continue
        out.append((start, end, label))
    return out
