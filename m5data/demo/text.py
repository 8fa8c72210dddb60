"""Text of the demo shop's products: titles, model codes, spec values and their page spellings."""

from __future__ import annotations

import random
import re
import unicodedata

from . import vocab

_RANGE = re.compile(r"\{(\d+)-(\d+)(?:/(\d+))?\}")
TITLE_MIN, TITLE_MAX = 20, 60


def fill(template: str, rng: random.Random) -> str:
    """Expand ``{a-b}`` / ``{a-b/s}`` placeholders of a value template with seeded numbers."""
    return _RANGE.sub(lambda m: str(rng.randrange(int(m[1]), int(m[2]) + 1, int(m[3] or 1))),
                      template)


def normalize(text: str) -> str:
    """What a careful crawler makes of page text: NFKC, whitespace runs collapsed, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def model_code(rng: random.Random) -> str:
    """An ASCII model number such as ``KF-35GW`` or ``X7 Pro``."""
    letters = "ABCDEFGHJKLMNPRSTVWXYZ"
    head = "".join(rng.choice(letters) for _ in range(rng.randint(1, 3)))
    body = str(rng.randint(10, 9999))
    tail = rng.choice(["", "", "S", "Pro", "Max", "Plus", "GW", "-A", "-II"])
    sep = rng.choice(["-", "", " "]) if tail else ""
    return f"{head}-{body}{sep}{tail}" if rng.random() < 0.6 else f"{head}{body}{tail}"


def instance_specs(rng: random.Random, class_id: int, brand: str, model: str,
                   color: str) -> list[tuple[str, str]]:
    """The full, canonical property/value list of one physical product (its listings show subsets)."""
    props = vocab.CLASS_STYLE[class_id][2].split() + vocab.COMMON_PROPERTIES
    specs = [("品牌", brand), ("型号", model)]
    for prop in props:
        if prop in {p for p, _ in specs}:
            continue
        value = color if prop == "颜色" else fill(rng.choice(vocab.PROPERTY_VALUES[prop]), rng)
        specs.append((prop, normalize(value)))
    return specs


def listing_specs(rng: random.Random, specs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The 5-20 pairs one listing shows: brand first, then a seeded subset in the instance's order."""
    n = rng.randint(5, min(20, len(specs)))
    rest = sorted(rng.sample(range(1, len(specs)), n - 1))
    return [specs[0]] + [specs[i] for i in rest]


def noisy_value(rng: random.Random, value: str) -> str:
    """A page spelling of a value that normalizes back to it (full-width digits, odd spaces)."""
    if rng.random() < 0.15:
        value = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in value)
    if rng.random() < 0.2:
        value = rng.choice(["\u00a0", " ", "\n  "]) + value + rng.choice(["", " ", "\u3000"])
    return value


def title(rng: random.Random, platform: str, inst) -> str:
    """A Chinese title of 20-60 characters for an instance: brand, product noun, attributes, marketing.

    The words come from the instance and its sub-class's own small pools (signature words, class
    words, marketing words), so that titles of one sub-class share vocabulary on both platforms.
    """
    sub = inst.sub
    brand_shown = inst.brand if rng.random() < 0.7 else inst.brand.split("(")[0]
    words = rng.sample(sub.signature, rng.randint(2, 4))
    extra = [rng.choice(sub.class_words)] if rng.random() < 0.5 else []
    marketing = rng.sample(sub.marketing, rng.randint(1, 3))
    core = [brand_shown] + words + [inst.noun]
    attrs = [inst.model] if rng.random() < 0.1 else []
    if rng.random() < 0.5:
        attrs.append(inst.color)
    parent = sub.nouns[0] if inst.subsub else None
    if parent and parent != inst.noun and rng.random() < 0.6:
        attrs.append(rng.choice(["新鲜", "精选", "优质", "时尚", ""]) + parent)
    if rng.random() < 0.75:
        attrs.append(inst.noun)  # real titles repeat the product noun for search ranking
    prefix = [rng.choice(sub.prefixes)] if rng.random() < 0.35 else []
    segments: list[str] = []
    for seg in prefix + core + extra + attrs + marketing:
        if seg and (seg not in segments or seg == inst.noun):
            segments.append(seg)
    sep = " " if platform == "shopb" and rng.random() < 0.8 else ""
    text = sep.join(segments)
    while len(text) > TITLE_MAX and len(segments) > len(prefix) + len(core):
        segments.pop()
        text = sep.join(segments)
    while len(text) < TITLE_MIN:
        unused = [w for w in sub.marketing + sub.class_words if w not in segments]
        segments.append(rng.choice(unused or [fill(w, rng) for w in vocab.MARKETING]))
        text = sep.join(segments)
    return text[:TITLE_MAX].strip()
