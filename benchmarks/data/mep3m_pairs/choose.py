"""Choose candidate pairs (not labels) of MEP-3M records for the Chinese product-matching dev set.

Reads ../shared/realdata/mep3m/annotations-1k.json (record k has id k + 1, the number in its img_path) and
writes candidates.csv (``a,b,stratum``, a < b) beside this file. Deterministic (seed 58). The labels are
written by a reader in pairs.csv; nothing here decides whether two records are the same product.

Strata:
  hard   same rough brand key, titles that differ beyond shop prefixes and pack counts: half of each
         brand's quota from its most similar title pairs (near misses: other weight, stage, series),
         half at random within the brand.
  copy   same rough brand key, titles equal once shop prefixes (【...】) and pack counts are dropped
         (the same listing in another pack, or a copy of it), a few fully identical titles among them.
  cross  different brand keys (or no key on one side): half at random, half with the same stated weight.

Usage: python benchmarks/data/mep3m_pairs/choose.py [--source PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import re
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests"))  # tests/support: the one reader of the records

from support.mep3m_pairs import SOURCE, records  # noqa: E402

SEED = 58
HARD, COPY, CROSS = 365, 90, 220
IDENTICAL_MAX = 8        # pairs of fully identical titles kept (the file repeats 137 titles)
PER_BRAND_MAX = 30       # hard pairs of one brand at most
PER_RECORD_MAX = 3       # hard pairs a record takes part in at most

# The rough brand key: the brand whose alias appears first in the title. Aliases are the Chinese brand
# names the file writes before （Latin）, in 【】 shop prefixes, the Latin names, and a few series names
# that only one brand uses (金领冠 is Yili's, 星蕴 Feihe's, 美优高 Ausnutria's).
BRANDS: dict[str, list[str]] = {
    "anmum": [r"安满(?!意)", "anmum"], "maxigenes": ["美可卓", "maxigenes"], "friso": ["美素", "friso"],
    "nestle": ["雀巢", "nestle", "能恩"], "kabrita": ["佳贝艾特", "kabrita"], "wondersun": ["完达山", "wondersun"],
    "biostime": ["合生元", "biostime"], "meadjohnson": ["美赞臣", "mead ?johnson", "enfamil", "enfamama"],
    "wyeth": ["惠氏", "wyeth"], "firmus": ["飞鹤", "firmus", "星蕴"], "junlebao": ["君乐宝", "junlebao"],
    "abbott": ["雅培", "abbott", "similac"], "moohko": ["麦蔻", "moohko"], "beingmate": ["贝因美", "beingmate"],
    "ausnutria": ["澳优", "ausnutria", "美优高"], "hipp": ["喜宝", "hipp"], "anchor": ["安佳", "anchor"],
    "ozfarm": ["澳美滋", "澳滋", "oz ?farm"], "herds": ["和氏", "herds"], "cowala": ["咔哇熊", "cowala"],
    "doraler": ["朵拉小羊", "doraler"], "yili": ["伊利", "金领冠", "yili"], "yashily": ["雅士利", "yashily"],
    "synutra": ["圣元", "优博", "synutra"], "mingyi": ["明一"], "a2": [r"(?<![a-z0-9])a2(?![0-9])"],
    "mengniu": ["蒙牛", "mengniu"], "naturtop": ["诺崔特", "natur ?top"], "devondale": ["德运", "devondale"],
    "camelait": ["卡漠", "camelait"], "soulful": ["首富", "soulful"], "regilait": ["瑞记", "regilait"],
    "twocows": ["双牛", "two ?cows"], "nalasichun": ["那拉丝醇"], "jialupu": ["佳禄普", "韵褓康"],
    "hipoknow": ["海普诺凯"], "mlove": ["美庐", r"m\.love"], "nactalia": ["爱达力", "nactalia"],
    "kocci": ["可淇", "kocci"], "yipin": ["宜品"], "meiling": ["美羚", "meiling"], "yangyang100": ["羊羊100"],
    "weiquan": ["味全"], "nutrilon": ["牛栏", "nutrilon"], "anniuxi": ["安纽希"], "karihome": ["卡洛塔妮", "karihome"],
    "kendamil": ["康多蜜儿", "kendamil"], "anbolac": ["安宝乐", "anbolac"], "easidairy": ["纽易", "easidairy"],
    "semper": ["森宝", "semper"], "oli6": ["oli6"], "yahui": ["雅慧"], "huanenbao": ["欢恩宝"],
    "ofmom": ["妈咪爱", "ofmom", "萌乖乖"], "nuibay": ["纽益倍", "nuibay"], "arla": ["阿拉", "arla"],
    "foodmanor": ["芙德玛娜", "foodmanor"], "maeil": ["maeil", "爱思诺"], "kaluoaite": ["卡洛艾特"],
    "ouenengduo": ["欧能多"], "goldmax": ["高培", "goldmax"], "karivita": ["卡瑞特兹", "karivita"],
}
_ALIASES = [(key, re.compile(a)) for key, aliases in BRANDS.items() for a in aliases]
_SHOP = re.compile(r"【[^】]*】|\[[^\]]*\]")
_PACK = re.compile(r"(?<![/\d.])\d{1,2}\s*(?:罐|盒|袋|听|桶|瓶)(?:装)?|[*x×]\s*\d{1,2}(?:罐|盒|袋|听)?(?![\dgG克])"
                   r"|[单一二两三四六八]\s*(?:罐|盒|袋)装?")
_WEIGHT = re.compile(r"(\d+(?:\.\d+)?)\s*(kg|g|克|千克|公斤)", re.I)


def brand_key(title: str) -> str | None:
    """The brand whose alias appears first in ``title``, or None."""
    low = title.lower()
    hits = [(m.start(), key) for key, rx in _ALIASES if (m := rx.search(low))]
    return min(hits)[1] if hits else None


def normal(title: str) -> str:
    """The title without shop prefixes, pack counts and spaces (for choosing only)."""
    return re.sub(r"\s+", "", _PACK.sub("", _SHOP.sub("", title.lower())))


def weight(title: str) -> int | None:
    """The first stated weight in grams (for choosing only)."""
    m = _WEIGHT.search(title)
    if not m:
        return None
    n = float(m.group(1))
    return int(n * 1000 if m.group(2).lower() in ("kg", "千克", "公斤") else n)


def bigrams(s: str) -> set[str]:
    return {s[i:i + 2] for i in range(len(s) - 1)}


def jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if x | y else 0.0


def choose(items: list[dict], seed: int = SEED) -> list[tuple[int, int, str]]:
    """``(a, b, stratum)`` candidates over ``items`` (``id``, ``title``), in a fixed order."""
    rng = random.Random(seed)
    by_id = {r["id"]: r for r in items}
    key = {r["id"]: brand_key(r["title"]) for r in items}
    norm = {r["id"]: normal(r["title"]) for r in items}
    grams = {i: bigrams(s) for i, s in norm.items()}
    brands: dict[str, list[int]] = defaultdict(list)
    for i, k in key.items():
        if k:
            brands[k].append(i)
    taken: set[tuple[int, int]] = set()
    out: list[tuple[int, int, str]] = []

    def take(a: int, b: int, stratum: str) -> bool:
        pair = (min(a, b), max(a, b))
        if a == b or pair in taken:
            return False
        taken.add(pair)
        out.append((*pair, stratum))
        return True

    # copy: same brand, equal titles up to shop prefixes and pack counts; at most two pairs per listing
    groups: dict[str, list[int]] = defaultdict(list)
    for i in sorted(by_id):
        if key[i]:
            groups[norm[i]].append(i)
    identical, near = [], []
    for ids in groups.values():
        pairs = list(combinations(ids, 2))
        rng.shuffle(pairs)
        for a, b in pairs[:2]:
            (identical if by_id[a]["title"] == by_id[b]["title"] else near).append((a, b))
    rng.shuffle(identical)
    rng.shuffle(near)
    copy = identical[:IDENTICAL_MAX] + near[:COPY - min(IDENTICAL_MAX, len(identical))]
    for a, b in sorted(copy):
        take(a, b, "copy")

    # hard: same brand, titles that differ; quota per brand grows with the square root of its size
    sizes = {k: len(v) for k, v in brands.items() if len(v) >= 2}
    scale = HARD / sum(math.sqrt(n) for n in sizes.values())
    uses: dict[int, int] = defaultdict(int)
    for k in sorted(sizes, key=lambda k: (-sizes[k], k)):
        ids = sorted(brands[k])
        pool = [(a, b) for a, b in combinations(ids, 2) if norm[a] != norm[b]]
        pool.sort(key=lambda p: (-jaccard(grams[p[0]], grams[p[1]]), p))
        quota = min(PER_BRAND_MAX, max(1, round(scale * math.sqrt(sizes[k]))), len(pool))
        similar = pool[:max(quota * 3, 1)]
        rng.shuffle(similar)
        rest = pool[:]
        rng.shuffle(rest)
        got = 0
        for source in (similar, rest):
            want = got + (quota + 1) // 2 if source is similar else quota
            for a, b in source:
                if got >= want:
                    break
                if uses[a] < PER_RECORD_MAX and uses[b] < PER_RECORD_MAX and take(a, b, "hard"):
                    uses[a] += 1
                    uses[b] += 1
                    got += 1

    # cross: different brands; half at random, half with the same stated weight
    branded = sorted(i for i in by_id if key[i])
    everyone = sorted(by_id)
    got = 0
    while got < CROSS:
        a = rng.choice(branded)
        if got % 2:
            same = [b for b in everyone if key[b] != key[a] and weight(by_id[b]["title"]) == weight(by_id[a]["title"])]
            b = rng.choice(same) if same and weight(by_id[a]["title"]) else rng.choice(everyone)
        else:
            b = rng.choice(everyone)
        if key[b] != key[a] and by_id[a]["title"] != by_id[b]["title"] and take(a, b, "cross"):
            got += 1
    rng.shuffle(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--out", type=Path, default=HERE / "candidates.csv")
    args = ap.parse_args()
    rows = choose(records(args.source))
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "stratum"])
        w.writerows(rows)
    counts = defaultdict(int)
    for *_, s in rows:
        counts[s] += 1
    print(f"{len(rows)} candidates -> {args.out}: {dict(counts)}")


if __name__ == "__main__":
    main()
