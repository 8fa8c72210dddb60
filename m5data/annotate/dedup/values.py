"""Spec values as dedup and the matcher's cascade compare them: normalised (:func:`norm_value`),
ranges, dates and free text left out (:func:`noisy_value`), brands with their spellings
(:func:`brand_spellings`); :func:`spec_agreement` is the rule on one pair of pages' values (the
compiled one, ``spec_jit.spec_agreement``, does the same over arrays)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def norm_value(v: str | None) -> str:
    """A spec property or value as compared: NFKC, lower case, no whitespace."""
    return "".join(unicodedata.normalize("NFKC", v or "").lower().split())


# Shapes of spec values that differ between listings of one product on real tables. Matched on the
# NFKC, lower-cased value with its whitespace runs kept as one space.
_RANGE = re.compile(r"\d\s*(?:~|〜|–|—|至|到)\s*\d|以上|以下|以内"  # 136~174mhz, 3至6岁, 6岁以上
                    r"|^\d{1,4}(?:[.,]\d+)?\s*[^\d\s.,~-]*\s*-\s*\d{1,4}(?:[.,]\d+)?\s*[^\d\s.,~-]*$")  # 3km-5km, one dash
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(r"(?:19|20)\d\d\s*(?:年|[-/.]\s*\d{1,2}(?!\d))"  # 2019年春季, 2015-3, 2013/12/02
                   rf"|(?<![a-z]){_MONTH}\s+\d{{1,2}},?\s+(?:19|20)\d\d"  # december 2, 2013
                   rf"|\d{{1,2}}\s+{_MONTH}\s+(?:19|20)\d\d")  # 2 dec 2013
FREE_TEXT_WORDS, FREE_TEXT_CHARS = 5, 32


def noisy_value(value: str) -> bool:
    """A spec value that is a range, a date or free text (5+ words or 32+ characters): not compared."""
    v = " ".join(unicodedata.normalize("NFKC", value).lower().split())
    return (len(v.split()) >= FREE_TEXT_WORDS or len(v.replace(" ", "")) >= FREE_TEXT_CHARS
            or bool(_RANGE.search(v) or _DATE.search(v)))


def brand_spellings(value: str) -> set[str]:
    """A normalised brand and its parts: ``美的(midea)`` and ``midea/美的`` are also ``美的`` and ``midea``."""
    parts = {p for p in re.split(r"[()/]", value) if p}
    return {value, *parts}


@lru_cache(maxsize=65536)
def _spelled(values: frozenset[str]) -> frozenset[str]:
    return frozenset(s for v in values for s in brand_spellings(v))


def spec_agreement(a: dict[str, frozenset[str]], b: dict[str, frozenset[str]],
                   brand: str) -> tuple[bool | None, int, int]:
    """``(same brand or None when a side lacks it, properties both list besides the brand, agreeing ones)``.

    A property agrees when the two pages share one of its values (the sets intersect); brands agree
    when they share a spelling (:func:`brand_spellings`).
    """
    same_brand = bool(_spelled(a[brand]) & _spelled(b[brand])) if brand in a and brand in b else None
    shared = [k for k in a if k in b and k != brand]
    return same_brand, len(shared), sum(bool(a[k] & b[k]) for k in shared)
