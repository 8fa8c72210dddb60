"""The M5Product layout's format, as its writer (``m5product.py``) and the importer (``m5data import
m5product``) both read it: the names of its JSON files and split lists (:func:`list_file`, SCALE's
retrieval pairs), its spec-table string (``prop#:#value#;#...``: :func:`pv_string`, :func:`parse_pv`),
and an item id made from a product id where the platforms' ids cannot be used (:func:`key_item_id`).
See shared/papers/m5product-format.md.
"""

from __future__ import annotations

import hashlib

from .samples import safe_key

CAPTIONS = "captions.json"
ID_LABEL = "m5product_id_label.json"
LABEL_LIST = "m5product_label_list.json"
ITEMS = "m5data_items.json"
STATS = "_stats.json"
PV_PAIR, PV_KV = "#;#", "#:#"
# split -> list file; the retrieval pairs SCALE reads as (query.txt, train.txt = gallery)
LIST_FILES = {"train": "train.txt", "query-c": "query.txt", "gallery-c": "gallery.txt", "query-fg": "query_fg.txt",
              "gallery-fg": "gallery_fg.txt", "cls-train": "cls_train.txt", "cls-test": "cls_test.txt",
              "subset": "subset.txt"}
RETRIEVAL = {"coarse": ("query-c", "gallery-c"), "fine": ("query-fg", "gallery-fg")}
ITEM_ID_MAX = 120  # characters of an item id (a file name: images/<item_id>.jpg, .tmp-<pid>-<item_id>.mp4)


def list_file(split: str) -> str:
    return LIST_FILES.get(split, split.replace("-", "_") + ".txt")


def pv_string(specs: list[tuple[str, str]]) -> str:
    """The authors' table string; separators inside a property or value are cut to one '#'."""
    def clean(text: str) -> str:
        return text.replace(PV_PAIR, "#;").replace(PV_KV, "#:")

    return PV_PAIR.join(f"{clean(p)}{PV_KV}{clean(v)}" for p, v in specs)


def parse_pv(pv: str | None) -> list[tuple[str, str]]:
    """``prop#:#value#;#...`` -> [(prop, value)]; a string of length <= 1 means no table (the toolkit's rule)."""
    if not pv or len(pv) <= 1:
        return []
    out = []
    for pair in pv.split(PV_PAIR):
        if not pair:
            continue
        prop, sep, value = pair.partition(PV_KV)
        out.append((prop, value) if sep else ("", prop))
    return out


def key_item_id(product_id: str) -> str:
    """The item id of a product in ``key`` mode: its safe key, or for a key over ``ITEM_ID_MAX``
    characters the key cut to 100 + ``~~`` + 16 hex digits of the product id's sha256.

    Item ids are file names (``images/<item_id>.jpg``): a 300-character id would make the file
    system refuse the file (ENAMETOOLONG). ``~~`` never occurs in a safe key (``~`` is always
    followed by two hex digits), so a cut id cannot equal another product's full key;
    ``m5data_items.json`` maps every item id back to its product id (the importer reads it there).
    """
    key = safe_key(product_id)
    if len(key) <= ITEM_ID_MAX:
        return key
    return f"{key[:100]}~~{hashlib.sha256(product_id.encode('utf-8')).hexdigest()[:16]}"
