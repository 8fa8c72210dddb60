"""Personal data masked in exported text (``export.mask_personal_data``, issue 57; the report counts it).

Phone numbers (Chinese mobiles ``1[3-9]x xxxx xxxx`` in 3-4-4 or 4-4-3 groups, with spaces, dashes,
``+86`` or a cue word such as ``Tel``/``V`` before them; landlines ``0xx-xxxxxxxx``; 400/800 service
numbers; international ``+CC ...`` numbers), e-mail addresses (also ``a(at)b.com``, ``a#qq.com``),
contact handles (``微信: abc123``, ``VX: abc123``, ``加我V``, ``QQ: 12345678``, ``企鹅``), 18-digit ID
card numbers (their check digit right) and street addresses (``...路88号``, ``3栋2单元501室``) become
``[PHONE]``, ``[EMAIL]``, ``[CONTACT]``, ``[ID]`` and ``[ADDRESS]``, in full-width and zero-width-spaced
forms too (the rules, matched on the NFKC form: m5data/masking_rules.py). The store keeps the
original text: only what an export writes is masked.

Product text is full of numbers that look like these: model numbers, EAN barcodes, weights
(``800g``), dates, prices and sizes. So a number counts only where it stands alone (no ASCII letter
or digit right before or after it, unless a cue word), a landline needs its separator
(``010-62345678``, ``(010)``) or its word, an international number its ``+`` and a valid length,
a Latin keyword a space or colon before its handle (``WX123456`` is a model), an ID number its
check digit. benchmarks/bench_masking_accuracy.py measures precision and recall on a labelled set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from .masking_rules import _CONTACT, _EDGE_R, _GAP, _KEYWORD, ADDRESS, CONTACT, EMAIL, IDCARD, PHONE, normalise, spans

__all__ = ["ADDRESS", "CANDIDATES_RE2", "CONTACT", "EMAIL", "FIELDS", "IDCARD", "PHONE", "mask_sample",
           "mask_samples", "mask_text", "mask_url", "_CONTACT", "_EDGE_R", "_GAP", "_KEYWORD"]

FIELDS = ("title", "caption", "specs")  # the masked fields the report counts (the export counts more)
_PROVENANCE = ("page_url", "license", "acquire_license_page", "copyright_notice", "image_web_statement",
               "image_rights")
_CLASSES = ("class_name", "sub_class_name", "subsub_class_name")

# a superset of the texts mask_text changes, in RE2 (DuckDB's regexp_matches) and Python's re alike:
# where a store-wide count (the report's) looks before masking; every rule needs one of these: 7 digits
# with separators between (phones, IDs), an @ or its stand-ins, a contact keyword, an address anchor
_DIGIT = "[0-9０-９]"
_SEP = "[-－ 　.\u00ad\u200b-\u200f\u2060\ufeff]{0,2}"  # the characters themselves: RE2 has no \\u
CANDIDATES_RE2 = ("(?i)(?:" + _DIGIT + _SEP + "){6}" + _DIGIT + "|[@＠#＃]|艾特|[ (\\[]at[ )\\]]"
                  "|[微薇威徽维VvＶｖ]信|加我?\\s*[VvＶｖ微薇]|[+＋]\\s*[VvＶｖ]|[VvＶｖWwＷｗ][XxＸｘ]|weixin|wechat|wei xin"
                  "|[QqＱｑ][QqＱｑ]|扣扣|企鹅|Q群"
                  "|[路街道巷弄同里段] ?[0-9０-９]|(?:[0-9０-９]|[A-ZＡ-Ｚa-zａ-ｚ]) ?(?:栋|幢|号楼|座)"
                  "|(?:小区|花园|公寓|大厦|新村|家园|苑) ?[0-9０-９]")


def mask_text(text: str | None) -> tuple[str | None, int]:
    """``text`` with its personal data replaced, and how many replacements."""
    if not text:
        return text, 0
    norm, starts = normalise(text)
    found = spans(norm)
    if not found:
        return text, 0
    out, pos = [], 0
    for start, end, label in found:
        if starts is not None:  # back onto the original text
            start, end = starts[start], starts[end - 1] + 1
        out += [text[pos:start], label]
        pos = end
    out.append(text[pos:])
    return "".join(out), len(found)


def mask_url(url: str | None) -> tuple[str | None, int]:
    """A page URL with personal data masked in its query string and fragment (the path is the shop's)."""
    if not url:
        return url, 0
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    rest, n = mask_text(url[cut:])
    return url[:cut] + (rest or ""), n


def mask_sample(sample):
    """``(sample, counts)``: the sample with every text that leaves masked (title, caption, spec
    properties and values, category names, the provenance's licence and copyright strings and its page
    URL's query string), and the replacements per field (only the fields that had any)."""
    counts: Counter = Counter()
    title, counts["title"] = mask_text(sample.title)
    caption, counts["caption"] = mask_text(sample.caption)
    specs = []
    for prop, value in sample.specs:
        prop, n = mask_text(prop)
        value, k = mask_text(value)
        counts["specs"] += n + k
        specs.append((prop, value))
    classes = {}
    for name in _CLASSES:
        classes[name], n = mask_text(getattr(sample, name, None))
        counts["categories"] += n
    provenance = dict(sample.provenance or {})
    for key in _PROVENANCE:
        if isinstance(provenance.get(key), str):
            provenance[key], n = (mask_url if key == "page_url" else mask_text)(provenance[key])
            counts["provenance"] += n
    counts = +counts
    if not counts:
        return sample, counts
    return replace(sample, title=title, caption=caption, specs=specs, provenance=provenance, **classes), counts


def mask_samples(samples: list) -> tuple[list, dict]:
    """The samples masked, and the replacements per field over them all (``{field: n}``, sorted)."""
    total: Counter = Counter()
    out = []
    for sample in samples:
        masked, counts = mask_sample(sample)
        total.update(counts)
        out.append(masked)
    return out, dict(sorted(total.items()))
