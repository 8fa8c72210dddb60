"""A seeded synthetic two-platform catalogue with known alignment, for align's tests and benchmark.

Words are real Chinese nouns and adjectives taken from jieba's own dictionary (so segmentation
behaves as on real titles), picked deterministically from the seed. Each unified sub-class has
its own product nouns; its class shares descriptive words; every title also carries marketing
words, a brand and a specification, e.g. ``【热卖】江华 时尚 茶杯 玻璃 加厚 500ml 包邮``.

How a unified sub-class shows on the platforms (``kind``): ``exact`` (same name on both),
``near`` (a prefix added on the second platform: S_label 0.5..0.99), ``different`` (an unrelated
name), ``finer`` (the second platform adds a level-3 breadcrumb per child) and ``single`` (one
platform only). Truth rows follow the demo shop's ``truth/alignment`` layout: one row per platform
leaf category with platform, level1_name, level2_name, level3_name, class_id, sub_class_id,
subsub_class_id and pair_kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

_MARKETING = "正品 包邮 新款 热卖 官方 限时 特惠 爆款 现货 促销 精选 优选 人气 新品 推荐".split()
_PREFIXES = ["【热卖】", "【包邮】", "【新品】", "【官方】", "【特惠】", ""]
_UNITS = ["ml", "g", "kg", "cm", "件装", "片", "个装", "L"]


def _dictionary_words(tag: str, min_freq: int) -> list[str]:
    import jieba

    path = Path(jieba.__file__).with_name("dict.txt")
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, freq, pos = line.split()
            if pos == tag and len(word) == 2 and int(freq) >= min_freq:
                out.append(word)
    return sorted(out)


@dataclass
class PlatformSub:
    """One platform's sub-class (a level-2 name, with level-3 children where it is the finer side)."""

    platform: str
    level1: str
    name: str
    class_id: int
    sub_id: int
    kind: str
    children: list[tuple[int, str]] = field(default_factory=list)  # (subsub id, name) shown as level 3
    titles: list[tuple[str, int]] = field(default_factory=list)  # (title, subsub id or 0)


@dataclass
class World:
    classes: dict[int, str]
    level1: dict[str, dict[int, str]]  # platform -> class id -> its level-1 name
    subs: list[PlatformSub]

    def mapping(self) -> dict:
        """The level-1 mapping as a dict (the structure of the TOML file)."""
        return {"classes": {str(c): n for c, n in self.classes.items()},
                "platforms": {p: {name: c for c, name in names.items()} for p, names in self.level1.items()}}

    def write_truth(self, path: str | Path) -> Path:
        """Write the truth rows as JSON lines (what ``m5data align --score-against`` reads)."""
        import json

        path = Path(path)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.truth()), encoding="utf-8")
        return path

    def write_mapping(self, path: str | Path) -> Path:
        """Write the level-1 mapping as TOML."""
        lines = ["[classes]"] + [f'{c} = "{n}"' for c, n in sorted(self.classes.items())]
        for platform, names in sorted(self.level1.items()):
            lines += ["", f"[platforms.{platform}]"] + [f'"{n}" = {c}' for c, n in sorted(names.items())]
        path = Path(path)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def products(self) -> list[dict]:
        """``products`` rows: product_id, platform, source_id, title, category_path."""
        rows = []
        for sub in self.subs:
            child = dict(sub.children)
            for n, (title, subsub) in enumerate(sub.titles):
                path = [sub.level1, sub.name] + ([child[subsub]] if subsub in child else [])
                source = f"{sub.sub_id}-{n}"
                rows.append({"product_id": f"{sub.platform}:{source}", "platform": sub.platform,
                             "source_id": source, "title": title, "category_path": path})
        return rows

    def truth(self) -> list[dict]:
        """One row per platform leaf category with the true unified ids and the pair kind."""
        rows = []
        for sub in self.subs:
            base = {"platform": sub.platform, "level1_name": sub.level1, "level2_name": sub.name,
                    "class_id": sub.class_id, "sub_class_id": sub.sub_id, "pair_kind": sub.kind}
            rows.append({**base, "level3_name": "", "subsub_class_id": 0})
            rows += [{**base, "level3_name": name, "subsub_class_id": cid} for cid, name in sub.children]
        return rows


def make_world(seed: int = 0, n_classes: int = 3, subs_per_class: int = 8, titles_per_sub: int = 40,
               platforms: tuple[str, str] = ("shopx", "shopy"),
               kinds: dict[str, float] | None = None, title_chars: int = 0) -> World:
    """Generate a world.

    Args:
        n_classes: unified level-1 classes.
        subs_per_class: unified sub-classes per class.
        titles_per_sub: titles per platform sub-class (ignored when ``title_chars`` is set).
        kinds: weights of exact / near / different / finer / single.
        title_chars: generate titles until each platform sub-class has this many characters.
    """
    rng = random.Random(seed)
    nouns = _dictionary_words("n", 100)
    adjectives = _dictionary_words("a", 100)
    rng.shuffle(nouns)
    kinds = kinds or {"exact": 0.45, "near": 0.2, "different": 0.1, "finer": 0.1, "single": 0.15}
    names = iter(nouns)  # level-1, level-2 and level-3 names: never reused
    p1, p2 = platforms
    classes = {c: f"{next(names)}{next(names)}" for c in range(1, n_classes + 1)}
    level1 = {p1: dict(classes), p2: {c: f"{n}/{next(names)}" for c, n in classes.items()}}
    subs: list[PlatformSub] = []
    sub_id = 0
    child_id = 100_000
    for cid in classes:
        class_words = rng.sample(adjectives, 40) + rng.sample(nouns, 20)
        brands = rng.sample(nouns, 30)
        long_tail = rng.sample(nouns, 150)
        for _ in range(subs_per_class):
            sub_id += 1
            name = next(names)
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
            own = [name] + rng.sample(nouns, 29)
            specs = [f"{rng.randint(1, 99) * 10}{rng.choice(_UNITS)}" for _ in range(6)]
            children = [(child_id + k, next(names)) for k in range(3)] if kind == "finer" else []
            child_id += len(children)
            other = {"near": rng.choice(["精品", "时尚", "家用"]) + name, "different": next(names)}.get(kind, name)
            shows = [(p1, name)] if kind == "single" and rng.random() < 0.5 else \
                [(p2, other)] if kind == "single" else [(p1, name), (p2, other)]
            vocab = _Vocab(own, class_words, brands, specs, long_tail)
            for platform, shown in shows:
                sub = PlatformSub(platform, level1[platform][cid], shown, cid, sub_id, kind,
                                  children if platform == p2 else [])
                size = 0
                n = 0
                while (size < title_chars) if title_chars else (n < titles_per_sub):
                    subsub = rng.choice(children)[0] if children else 0
                    title = vocab.title(rng, dict(children).get(subsub))
                    sub.titles.append((title, subsub))
                    size += len(title) + 1
                    n += 1
                subs.append(sub)
    return World(classes, level1, subs)


def _zipf(n: int) -> list[float]:
    """Cumulative Zipf weights 1, 1/2, 1/3, ... (for ``random.choices(cum_weights=...)``)."""
    out, total = [], 0.0
    for k in range(n):
        total += 1.0 / (k + 1)
        out.append(total)
    return out


@dataclass
class _Vocab:
    """The words one sub-class's titles draw from (Zipf-weighted: a few words are very common)."""

    own: list[str]
    class_words: list[str]
    brands: list[str]
    specs: list[str]
    noise: list[str]

    def __post_init__(self):
        self._cum = {id(w): _zipf(len(w)) for w in (self.own, self.class_words, self.brands)}

    def _pick(self, rng: random.Random, words: list[str], k: int = 1) -> list[str]:
        return rng.choices(words, cum_weights=self._cum[id(words)], k=k)

    def title(self, rng: random.Random, child: str | None) -> str:
        parts = [rng.choice(_PREFIXES) + self._pick(rng, self.brands)[0]]
        parts += self._pick(rng, self.class_words, rng.randint(1, 3))
        parts += self._pick(rng, self.own, rng.randint(2, 4))
        if child:
            parts.append(child)
        if rng.random() < 0.1:
            parts.append(rng.choice(self.noise))
        parts.append(rng.choice(self.specs))
        parts += rng.sample(_MARKETING, rng.randint(1, 2))
        return " ".join(parts) if rng.random() < 0.8 else "".join(parts)
