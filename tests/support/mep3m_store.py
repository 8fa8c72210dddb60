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


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    """A pairs file's ``(product a, product b, label)`` rows (record numbers become product ids)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [(product_id(r["a"]), product_id(r["b"]), int(r["label"])) for r in csv.DictReader(fh)
                if r.get("a") and r.get("b") and (r.get("label") or "").strip() in ("0", "1")]


def components(pairs: list[tuple[str, str, int]], titles: dict[str, str]) -> list[int]:
    """Each pair's group: the connected component of its records in the graph of the labelled pairs and
    of identical titles (so no record, and no title, sits on both sides of a fold split)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_title: dict[str, str] = {}
    for a, b, _ in pairs:
        for x in (a, b):
            first = by_title.setdefault(titles.get(x, x), x)
            parent[find(x)] = find(first)
        parent[find(a)] = find(b)
    roots: dict[str, int] = {}
    return [roots.setdefault(find(a), len(roots)) for a, _, _ in pairs]
