"""The demo shop's taxonomy: one unified three-level tree and how each platform names it.

Platform ``shopa`` shows the MEP-3M names; ``shopb`` shows a derived tree in which a level-2 name
is kept (``exact``), slightly changed (``near``, difflib ratio 0.5-0.99), replaced (``different``),
or split into level-3 classes on one of the two platforms (``finer``). A sub-class listed on one
platform only is ``single``. Every choice comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass, field

from . import taxonomy_data, text, vocab

PLATFORMS = ("shopa", "shopb")

# Showcase sub-classes present in every world (if it is large enough), in order of priority, so
# that even a small test world has exact, near, different and finer pairs.
_SHOWCASE = [
    ("空调", "exact"), ("婴幼儿奶粉", "near"), ("笔记本", "different"), ("水果", "finer"),
    ("湿巾", "near"), ("孕妈奶粉", "exact"), ("移动电源", "different"), ("咖啡/奶茶", "near"),
    ("饰品", "finer"), ("儿童餐具", "exact"), ("饮料饮品", "near"), ("办公文仪", "near"),
    ("骑行装备", "exact"), ("洗澡用具", "exact"),
]
# Which platform is the finer one for the showcase level-3 splits (水果 vs 苹果/橙子, as in MEP-3M).
_SHOWCASE_FINER = {"水果": "shopb", "饰品": "shopa"}


@dataclass
class SubClass:
    """A unified level-2 class and how the platforms show it."""

    sub_id: int
    class_id: int
    name: str
    children: list[tuple[int, str]]
    synthetic: bool = False
    presence: tuple[str, ...] = PLATFORMS
    kind: str = "exact"
    names: dict[str, str] = field(default_factory=dict)
    finer: str | None = None
    nouns: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    class_words: list[str] = field(default_factory=list)
    marketing: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    child_nouns: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Category:
    """A leaf category of one platform: what its breadcrumb shows and what it truly is."""

    platform: str
    code: str
    path: tuple[str, ...]
    class_id: int
    sub_id: int
    subsub_id: int
    subsub_name: str


def _parse(block: str) -> dict[int, list[tuple[int, str]]]:
    """Parse the ``<id>|<id>:<name> ...`` blocks of ``taxonomy_data``."""
    out: dict[int, list[tuple[int, str]]] = {}
    for line in block.replace("\n    ", " ").strip().splitlines():
        head, items = line.split("|", 1)
        out[int(head)] = [(int(i), n) for i, n in (it.split(":", 1) for it in items.split())]
    return out


def mep3m_taxonomy() -> tuple[dict[int, str], dict[int, tuple[int, str]], dict[int, list[tuple[int, str]]]]:
    """The embedded MEP-3M taxonomy: classes, sub-classes (id -> (class_id, name)), level-3 children."""
    subs = {sid: (cid, name) for cid, items in _parse(taxonomy_data.SUB_CLASSES).items()
            for sid, name in items}
    return dict(taxonomy_data.CLASSES), subs, _parse(taxonomy_data.SUBSUB_CLASSES)


def label_ratio(a: str, b: str) -> float:
    """MEP-3M's S_label: difflib's 2*M/T over the characters of two names."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def nouns_of(name: str, class_id: int) -> list[str]:
    """Product nouns a title may use for a category name (咖啡/奶茶 -> 咖啡, 奶茶)."""
    if class_id == 5 and name in {"新疆", "北京", "山西", "内蒙古", "福建", "湖南", "四川", "云南", "东北"}:
        return [name + "特产"]
    plain = re.sub(r"[（(][^)）]*[)）]", "", name)
    parts = [p for p in re.split(r"[/、]", plain) if p]
    return parts or [name]


def _near_variant(rng: random.Random, name: str, class_id: int) -> str | None:
    """A slightly different name for the same sub-class, or None if none is near enough."""
    candidates = []
    if "/" in name:
        parts = name.split("/")
        candidates += [parts[0], parts[-1], "".join(parts), "、".join(parts)]
    candidates += [p + name for p in vocab.NEAR_PREFIXES[class_id]]
    candidates += [name + s for s in vocab.NEAR_SUFFIXES if not name.endswith(s)]
    good = [c for c in candidates if c != name and 0.5 <= label_ratio(name, c) < 0.99]
    return rng.choice(good) if good else None


def _brands(rng: random.Random, n: int) -> list[str]:
    """Fictional brand names such as 禾图(HETU) or 欧莱诗."""
    out: list[str] = []
    while len(out) < n:
        zh = rng.choice(vocab.BRAND_HEAD) + rng.choice(vocab.BRAND_TAIL)
        if rng.random() < 0.3:
            zh += rng.choice(vocab.BRAND_TAIL)
        if rng.random() < 0.4:
            zh += "(" + "".join(rng.choice(vocab.LATIN_SYLLABLES) for _ in range(2)).upper() + ")"
        if zh not in out:
            out.append(zh)
    return out


class Taxonomy:
    """The unified tree of one world plus both platforms' names and category codes."""

    def __init__(self, rng: random.Random, n_subclasses: int):
        self.classes, real, children = mep3m_taxonomy()
        self.level1 = {"shopa": dict(self.classes), "shopb": dict(vocab.SHOPB_LEVEL1)}
        by_name = {name: sid for sid, (_, name) in real.items()}
        chosen: list[tuple[int, str | None]] = []
        for name, kind in _SHOWCASE[: max(0, n_subclasses)]:
            chosen.append((by_name[name], kind))
        pool = sorted(sid for sid in real if sid not in vocab.EXCLUDED_SUB_IDS
                      and sid not in {s for s, _ in chosen})
        covered = {real[s][0] for s, _ in chosen}
        for cid in sorted(self.classes):  # every level-1 class gets at least one sub-class
            if len(chosen) >= n_subclasses:
                break
            if cid not in covered:
                sid = rng.choice([s for s in pool if real[s][0] == cid])
                chosen.append((sid, None))
                pool.remove(sid)
        rng.shuffle(pool)
        while len(chosen) < n_subclasses and pool:
            chosen.append((pool.pop(), None))
        self.subs: list[SubClass] = [
            SubClass(sid, real[sid][0], real[sid][1], list(children.get(sid, [])))
            for sid, _ in chosen
        ]
        forced = dict(chosen)
        self._add_synthetic(rng, n_subclasses)
        brand_pools = {cid: _brands(rng, 16) for cid in sorted(self.classes)}
        for sub in self.subs:
            self._name_on_platforms(rng, sub, forced.get(sub.sub_id))
            words = vocab.CLASS_STYLE[sub.class_id][1].split()
            sub.nouns = nouns_of(sub.name, sub.class_id)
            sub.signature = rng.sample(words, 4)
            sub.class_words = rng.sample([w for w in words if w not in sub.signature], 3)
            sub.marketing = [text.fill(w, rng) for w in rng.sample(vocab.MARKETING, 5)]
            sub.colors = rng.sample(vocab.PROPERTY_VALUES["颜色"], 4)
            sub.prefixes = rng.sample(vocab.PREFIXES, 3)  # one category runs the same few campaigns
            sub.brands = rng.sample(brand_pools[sub.class_id], rng.randint(2, 4))
            sub.child_nouns = {cid: nouns_of(cn, sub.class_id) for cid, cn in sub.children}
        self.by_id = {s.sub_id: s for s in self.subs}
        self._codes_rng = random.Random(rng.random())
        self._codes: dict[tuple, str] = {}
        self._used_codes: set[str] = set()

    def _add_synthetic(self, rng: random.Random, n_subclasses: int) -> None:
        """Derive extra sub-classes (空调配件, 咖啡礼盒 ...) when MEP-3M's 599 are not enough."""
        bases = list(self.subs)
        used = {s.name for s in self.subs}
        next_id = 1000
        while len(self.subs) < n_subclasses:
            base = rng.choice(bases)
            name = nouns_of(base.name, base.class_id)[0] + rng.choice(vocab.SYNTHETIC_SUFFIXES)
            if name in used:
                continue
            used.add(name)
            self.subs.append(SubClass(next_id, base.class_id, name, [], synthetic=True))
            next_id += 1

    def _name_on_platforms(self, rng: random.Random, sub: SubClass, forced: str | None) -> None:
        """Pick presence, pair kind and each platform's level-2 name for one sub-class."""
        r = rng.random()
        if forced is None and r >= 0.85:
            sub.presence = ("shopa",) if r < 0.925 else ("shopb",)
            sub.kind = "single"
            sub.names = {p: sub.name for p in sub.presence}
            return
        kind = forced
        if kind is None:
            if sub.children:
                kind = "finer"
            # Platforms share most category names (both follow common industry trees): renamed
            # sub-classes are the exception, as in MEP-3M where most pairs were identical.
            elif sub.name in vocab.DIFFERENT_NAMES and rng.random() < 0.2:
                kind = "different"
            else:
                kind = "exact" if rng.random() < 0.94 else "near"
        shopb = sub.name
        table3 = dict(vocab.TABLE3_PAIRS)
        if kind == "different":
            shopb = vocab.DIFFERENT_NAMES[sub.name]
        elif kind == "near":
            shopb = table3.get(sub.name) if table3.get(sub.name, sub.name) != sub.name \
                else _near_variant(rng, sub.name, sub.class_id)
            taken = {s.names.get("shopb") for s in self.subs} | {s.name for s in self.subs}
            if shopb is None or shopb in taken:
                kind, shopb = "exact", sub.name
        elif kind == "finer":
            sub.finer = _SHOWCASE_FINER.get(sub.name) or rng.choice(PLATFORMS)
        sub.kind = kind
        sub.names = {"shopa": sub.name, "shopb": shopb}

    def category(self, platform: str, sub: SubClass, subsub: tuple[int, str] | None) -> Category:
        """The leaf category a product of ``sub`` (and true level-3 class ``subsub``) sits in."""
        shown = subsub if (subsub and sub.finer == platform) else None
        path = (self.level1[platform][sub.class_id], sub.names[platform])
        if shown:
            path += (shown[1],)
        code = self.code(platform, sub.sub_id, shown[0] if shown else 0)
        return Category(platform, code, path, sub.class_id, sub.sub_id,
                        subsub[0] if subsub else 0, subsub[1] if subsub else "")

    def code(self, platform: str, sub_id: int, subsub_id: int = 0) -> str:
        """A platform-style category code: shopa ``50012345``, shopb ``1320,1583`` or ``1320,1583,1590``."""
        key = (platform, sub_id, subsub_id)
        while key not in self._codes:
            if platform == "shopa":
                code = str(self._codes_rng.randint(50_000_000, 50_999_999))
            elif subsub_id:
                code = f"{self.code(platform, sub_id)},{self._codes_rng.randint(1000, 19999)}"
            else:
                code = f"{1300 + 17 * self.by_id[sub_id].class_id},{self._codes_rng.randint(1000, 19999)}"
            if code not in self._used_codes:
                self._used_codes.add(code)
                self._codes[key] = code
        return self._codes[key]
