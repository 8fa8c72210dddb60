"""The MEP-3M sample's 1,000 Chinese product records (../shared/realdata/mep3m/annotations-1k.json) as an
m5data store, and its labelled same-product pairs (benchmarks/data/mep3m_pairs/pairs.csv).

Record ``k`` of the JSON (its image ``Images/<class>/<k + 1>.jpg``) is product ``mep3m:<k + 1>``: its
title, its OCR text as the description, its sub-class as the category; no specs, no brand, no price.
A pairs file names records by that number (columns ``a,b,label``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT.parent / "shared" / "realdata" / "mep3m" / "annotations-1k.json"
PAIRS = ROOT / "benchmarks" / "data" / "mep3m_pairs" / "pairs.csv"
PLATFORM = "mep3m"


def records_path() -> Path:
    return RECORDS if RECORDS.is_file() else Path("/work/shared/realdata/mep3m/annotations-1k.json")


def read_records(path: Path | None = None) -> list[dict]:
    """The JSON's records in file order (record ``k`` is product ``mep3m:<k + 1>``)."""
    with open(path or records_path(), encoding="utf-8") as fh:
        return json.load(fh)


def product_id(n: int | str) -> str:
    return f"{PLATFORM}:{int(n)}"


def write_store(store, records: list[dict]) -> None:
    """The records as products of ``store`` (title; OCR text as description; sub-class as category)."""
    products = []
    for k, r in enumerate(records):
        pid = product_id(k + 1)
        products.append({"product_id": pid, "platform": PLATFORM, "source_id": str(k + 1),
                         "url": f"http://127.0.0.1/{PLATFORM}/{k + 1}", "merchant_id": PLATFORM,
                         "title": r.get("title") or "", "price": None, "description": (r.get("OCR") or "").strip() or None,
                         "category_path": [r["class_name"], r["sub_class_name"]] if r.get("sub_class_name") else None,
                         "content_hash": f"{PLATFORM}{k + 1}", "has_caption": False, "has_specs": False})
    store.write("products", products)


def read_pairs(path: Path) -> list[tuple[str, str, int, int]]:
    """A pairs file's ``(product a, product b, label, hard)`` rows (record numbers become product ids;
    ``hard`` 1: the two share a brand, titles differ)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [(product_id(r["a"]), product_id(r["b"]), int(r["label"]), int((r.get("hard") or "0").strip() or 0))
                for r in csv.DictReader(fh) if r.get("a") and r.get("b") and (r.get("label") or "").strip() in ("0", "1")]


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
