"""The MEP-3M sample's 1,000 Chinese product records (../shared/realdata/mep3m/annotations-1k.json, read by
:mod:`.mep3m_pairs`) as an m5data store, its labelled same-product pairs as product ids, and their folds.

Record ``k`` of the JSON (its image ``Images/<class>/<k + 1>.jpg``) is product ``mep3m:<k + 1>``: its
title, its OCR text as the description, its sub-class as the category; no specs, no brand, no price.
A pairs file names records by that number (columns ``a,b,label``).
"""

from __future__ import annotations

from pathlib import Path

from . import mep3m_pairs

PAIRS = mep3m_pairs.HERE / "pairs.csv"
PLATFORM = "mep3m"


def product_id(n: int | str) -> str:
    return f"{PLATFORM}:{int(n)}"


def write_store(store, records: list[dict]) -> None:
    """:func:`.mep3m_pairs.records` as products of ``store`` (title; OCR text as description; its category)."""
    products = [{"product_id": product_id(r["id"]), "platform": PLATFORM, "source_id": str(r["id"]),
                 "url": f"http://127.0.0.1/{PLATFORM}/{r['id']}", "merchant_id": PLATFORM, "title": r["title"] or "",
                 "price": None, "description": r["ocr"].strip() or None, "category_path": r["category"],
                 "content_hash": f"{PLATFORM}{r['id']}", "has_caption": False, "has_specs": False} for r in records]
    store.write("products", products)


def read_pairs(path: Path = PAIRS) -> list[tuple[str, str, int, int]]:
    """A pairs file's ``(product a, product b, label, hard)`` rows (:func:`.mep3m_pairs.pairs`, record ids
    as product ids; ``hard`` 1: the two share a brand, titles differ)."""
    return [(product_id(a), product_id(b), label, hard) for a, b, label, hard in mep3m_pairs.pairs(path)]


def folds(pairs: list[tuple], titles: dict[str, str], n: int = 5, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``n`` folds of the pairs with no record on both sides: ``(training pairs, held-out pairs)`` each.

    Records are grouped by the pairs of one brand (a match, or ``hard``) and by identical titles, the
    groups dealt to the folds (largest first, to the fold holding the fewest pairs); a fold holds out the
    pairs whose two records are both its own and trains on the pairs that touch none of its records. A
    pair of two brands dealt to two folds (an easy negative) is held out by neither: every pair's records
    sharing a component would make one component of nearly all (the pairs chain the brands together)."""
    import random

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_title: dict[str, str] = {}
    for a, b, label, hard, *_ in pairs:
        for x in (a, b):
            parent[find(x)] = find(by_title.setdefault(titles.get(x, x), x))
        if label or hard:
            parent[find(a)] = find(b)
    size: dict[str, int] = {}
    for a, *_ in pairs:
        size[find(a)] = size.get(find(a), 0) + 1
    roots = sorted({find(x) for p in pairs for x in p[:2]})
    random.Random(seed).shuffle(roots)
    fold_of, load = {}, [0] * n
    for r in sorted(roots, key=lambda r: -size.get(r, 0)):  # stable: the shuffle breaks ties
        fold_of[r] = k = load.index(min(load))
        load[k] += size.get(r, 0)
    side = [(fold_of[find(a)], fold_of[find(b)]) for a, b, *_ in pairs]
    return [([i for i, (fa, fb) in enumerate(side) if k not in (fa, fb)], [i for i, (fa, fb) in enumerate(side) if fa == fb == k])
            for k in range(n)]
