"""The ER-Magellan product-matching benchmarks (../shared/realdata/matching/) as m5data stores.

Each side of a pair (``COL title VAL ... COL manufacturer VAL ...``) becomes a product: title (or
name), description as its caption text, manufacturer/brand as the brand spec, model number as a spec,
price, category. Identical records are one product (its id is a hash of the record), so a record that
appears in many pairs is compared as one product. The labels become ``a,b,label`` CSV files, the format
``m5data annotate matcher train --labels`` reads.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

BENCHMARKS = ("Amazon-Google", "Walmart-Amazon", "Abt-Buy")
SPLITS = ("train", "valid", "test")
BRAND_PROPERTY = "brand"
_COL = re.compile(r"COL (\w+) VAL ?")


def parse(side: str) -> dict[str, str]:
    """``COL k VAL v ...`` -> ``{k: v}``."""
    parts = _COL.split(side)
    return {k: v.strip() for k, v in zip(parts[1::2], parts[2::2])}


def read(folder: Path, limit: int | None = None) -> tuple[dict[str, dict], dict[str, list[tuple[str, str, int]]]]:
    """Records by product id, and each split's labelled pairs (the first ``limit`` of each split)."""
    records: dict[str, dict] = {}
    pairs: dict[str, list[tuple[str, str, int]]] = {}
    for split in SPLITS:
        rows = []
        with open(folder / f"{split}.txt", encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if limit is not None and n >= limit:
                    break
                left, right, label = line.rstrip("\n").split("\t")
                ids = []
                for side in (left, right):
                    pid = "er:" + hashlib.sha1(side.strip().encode("utf-8")).hexdigest()[:16]
                    records.setdefault(pid, parse(side))
                    ids.append(pid)
                rows.append((ids[0], ids[1], int(label)))
        pairs[split] = rows
    return records, pairs


def write_store(store, records: dict[str, dict]) -> None:
    """The records as products, specs (brand, model number) and captions (description) of ``store``."""
    products, specs, captions = [], [], []
    for pid, r in records.items():
        title = r.get("title") or r.get("name") or ""
        try:
            price = float(r["price"]) if r.get("price") else None
        except ValueError:
            price = None
        products.append({"product_id": pid, "platform": "er", "source_id": pid[3:], "url": f"http://127.0.0.1/{pid[3:]}",
                         "merchant_id": "er", "title": title, "price": price, "description": r.get("description") or None,
                         "category_path": [r["category"]] if r.get("category") else None,
                         "content_hash": pid[3:], "has_caption": bool(title), "has_specs": True})
        props = [(BRAND_PROPERTY, r.get("manufacturer") or r.get("brand") or ""), ("modelno", r.get("modelno") or "")]
        specs += [{"product_id": pid, "position": i, "property": k, "value": v} for i, (k, v) in enumerate(props) if v]
        if r.get("description"):
            captions.append({"product_id": pid, "text": r["description"], "status": "ok"})
    store.write("products", products)
    if specs:
        store.write("specs", specs)
    if captions:
        store.write("captions", captions)


def write_labels(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "label"])
        w.writerows(rows)
    return path
