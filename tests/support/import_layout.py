"""A small m5product layout for the importer's tests (``m5data import m5product``) and the rows an import writes."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from m5data.storage import Store
from support.store_samples import query

# sorted: a1 a2 p1 | q1 q2 shop~3Ap1 | shop~3Aq1 shop~3Au1 u1 | v1 w1 (batches of 3)
IDS = ["a1", "a2", "p1", "q1", "q2", "shop~3Ap1", "shop~3Aq1", "shop~3Au1", "u1", "v1", "w1"]
CLAIMS = {  # m5data_items.json: two items claim shop:p1 across batches, two claim shop:u1 in one batch
    "p1": "shop:p1", "shop~3Ap1": "shop:p1",  # p1 comes first and wins
    "q1": "shop:q1", "shop~3Aq1": "shop:q1",  # q1 fails (bad label), so it claims nothing: shop~3Aq1 has it
    "shop~3Au1": "shop:u1", "u1": "shop:u1",  # shop~3Au1 sorts first and wins
}
COLOURS = {"a2": (200, 0, 0), "p1": (0, 200, 0), "shop~3Ap1": (0, 0, 200), "u1": (9, 99, 9), "w1": (90, 9, 9)}


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def make_layout(root: Path, ids=IDS, claims=CLAIMS) -> Path:
    """A layout of ``ids``: captions, labels (q1's out of range), product id claims, a few images, train.txt."""
    (root / "images").mkdir(parents=True)
    write_json(root / "captions.json", {iid: {"title": f"标题 {iid}", "pv": f"颜色#:#{iid}#;#尺码#:#L"} for iid in ids})
    write_json(root / "m5product_label_list.json", ["服装 > 上衣", "数码 > 耳机"])
    write_json(root / "m5product_id_label.json", {iid: 7 if iid == "q1" else n % 2 for n, iid in enumerate(ids)})
    write_json(root / "m5data_items.json", {"item_ids": "key", "items": {i: {"product_id": p} for i, p in claims.items()}})
    for iid, colour in COLOURS.items():
        if iid in ids:
            Image.new("RGB", (16, 12), colour).save(root / "images" / f"{iid}.jpg", quality=90)
    lines = ["a1", "", "q1", "zz9", "shop~3Ap1", "bad id!", "u1\r", "shop~3Au1", "  v1  "]
    (root / "train.txt").write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfeq2\n")
    (root / "query.txt").write_text("w1\nzz9\n", encoding="utf-8")
    return root


def rows(store: Store) -> dict[str, list]:
    """Every row the import writes, without its time and run id."""
    return {
        "products": query(store, "SELECT product_id, platform, source_id, title, category_path, content_hash, has_image, "
                                 "has_video, has_caption, has_specs FROM products ORDER BY ALL"),
        "specs": query(store, "SELECT * FROM specs ORDER BY ALL"),
        "media": query(store, "SELECT media_id, product_id, kind, role, blob, sha256, mime, bytes, width, height, status "
                              "FROM media ORDER BY ALL"),
        "splits": query(store, "SELECT * FROM splits ORDER BY ALL"),
    }
