"""Personal data masked in exported text (``export.mask_personal_data``, issue 57; the report counts it).

Phone numbers (Chinese mobiles ``1[3-9]x xxxx xxxx`` with spaces, dashes or ``+86``; landlines
``0xx-xxxxxxxx``; 400/800 service numbers; international ``+CC ...`` numbers), e-mail addresses and
contact handles (``微信: abc123``, ``VX``, ``加V``, ``QQ: 12345678``, ``QQ群``) in a sample's title,
caption and spec values become ``[PHONE]``, ``[EMAIL]`` and ``[CONTACT]``. The store keeps the
original text: only what an export writes is masked.

Product text is full of numbers that look like these: model numbers, EAN barcodes, weights
(``800g``), dates, prices and sizes. So a number counts only where it stands alone (no ASCII letter
or digit right before or after it), a landline needs its separator (``010-62345678``, ``(010)``), an
international number its ``+``, and a handle its keyword.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

PHONE, EMAIL, CONTACT = "[PHONE]", "[EMAIL]", "[CONTACT]"
FIELDS = ("title", "caption", "specs")  # the masked fields, as the export's stats count them

_EDGE_L = r"(?<![0-9A-Za-z+])"  # nothing a number continues from (a model number, a barcode, a price)
_EDGE_R = r"(?![0-9A-Za-z])"
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_PHONES = [re.compile(_EDGE_L + p + _EDGE_R) for p in (
    # a mainland mobile: 1[3-9]x xxxx xxxx, with +86 / 0086 / (+86) and spaces or dashes
    r"(?:(?:\(?(?:\+|00)86\)?)[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}",
    # a landline: (0xx) or 0xx, then a separator, then 7-8 digits (an extension after it)
    r"(?:\(0\d{2,3}\)\s?|0\d{2,3}[\s-])\d{3,4}[\s-]?\d{4}(?:-\d{1,5})?",
    # 400 / 800 service numbers: 400-xxx-xxxx, 4008208820
    r"[48]00[\s-]?\d{3}[\s-]?\d{4}",
    # international: a + and a country code, then groups of digits (8 to 15 digits in all)
    r"\+(?!86)\d{1,3}(?:[\s-]?\(?\d{1,4}\)?){2,5}",
)]
# a Latin keyword stands alone: no letter before it, no letter or dash after it (WXR-2797 is a model)
_KEYWORD = (r"(?:微信号?|威信|薇信|V信|加\s*[Vv微]|\+\s*[Vv](?![A-Za-z])"
            r"|(?<![A-Za-z])(?:[Vv][Xx]|[Ww][Xx]|weixin|wechat|WeChat|QQ|qq)(?![A-Za-z-])|(?:QQ|qq)群|扣扣|Q群)")
# the gap between a keyword and its handle, ``\s* (号|号码|群)? \s* [:：]? \s*`` written so that each space
# has one place to go: the same texts, but three adjacent ``\s*`` tried every way to split a run of
# spaces (cubic: ``微信`` and 3,000 spaces took 90 s), where these try each end of it once (linear)
_GAP = r"\s*(?:(?:号码?|群)\s*)?(?:[:：]\s*)?"
_CONTACT = re.compile(_KEYWORD + _GAP + r"(?:[A-Za-z][-_A-Za-z0-9]{5,19}|\d{5,12})" + _EDGE_R)


# a superset of the texts mask_text changes, in RE2 (DuckDB's regexp_matches): where a store-wide count
# (the report's) looks before masking; every pattern above needs one of these
CANDIDATES_RE2 = (r"[0-9]{3}[ -]?[0-9]{3}|@|微信|威信|薇信|V信|加 *[Vv微]|\+ *[Vv]|[Vv][Xx]|[Ww][Xx]|weixin|wechat|WeChat"
                  r"|QQ|qq|扣扣|Q群")


def _digits_ok(match: re.Match) -> bool:
    """An international number has 8 to 15 digits (E.164); fewer is a size or a count with a +."""
    n = sum(c.isdigit() for c in match.group(0))
    return not match.group(0).startswith("+") or 8 <= n <= 15


def mask_text(text: str | None) -> tuple[str | None, int]:
    """``text`` with its phone numbers, e-mail addresses and contact handles replaced, and how many."""
    if not text:
        return text, 0
    text, n = _EMAIL.subn(EMAIL, text)
    for pattern in _PHONES:
        found = 0

        def sub(m: re.Match) -> str:
            nonlocal found
            if not _digits_ok(m):
                return m.group(0)
            found += 1
            return PHONE

        text = pattern.sub(sub, text)
        n += found
    text, k = _CONTACT.subn(CONTACT, text)
    return text, n + k


def mask_sample(sample):
    """``(sample, counts)``: the sample with its title, caption and spec values masked, and the
    replacements per field (only the fields that had any)."""
    counts: Counter = Counter()
    title, counts["title"] = mask_text(sample.title)
    caption, counts["caption"] = mask_text(sample.caption)
    specs = []
    for prop, value in sample.specs:
        value, n = mask_text(value)
        counts["specs"] += n
        specs.append((prop, value))
    counts = +counts
    if not counts:
        return sample, counts
    return replace(sample, title=title, caption=caption, specs=specs), counts


def mask_samples(samples: list) -> tuple[list, dict]:
    """The samples masked, and the replacements per field over them all (``{field: n}``, sorted)."""
    total: Counter = Counter()
    out = []
    for sample in samples:
        masked, counts = mask_sample(sample)
        total.update(counts)
        out.append(masked)
    return out, dict(sorted(total.items()))
