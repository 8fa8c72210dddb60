"""Synthetic WebDataset shards in the export's sample layout, with a learnable structure (tests, benchmarks).

Each product belongs to a category; its image colour, caption characters, spec entities, frames and
MFCC blocks all depend on the category (plus noise), so a model that aligns modalities can learn
it. Some products lack video/audio/table, as ~20% of the papers' data does.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

SPLITS = {"train": 96, "query-c": 12, "gallery-c": 48, "query-fg": 8, "gallery-fg": 24, "cls-train": 40, "cls-test": 20}
WORDS = ["面霜", "口红", "手机", "耳机", "奶粉", "纸巾", "茶叶", "跑鞋"]


def _jpg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def sample(rng: np.random.Generator, split: str, k: int, categories: int) -> dict:
    cat = int(rng.integers(categories))
    inst = f"{cat}-{int(rng.integers(4))}"
    base = np.array([(cat * 67) % 256, (cat * 131) % 256, (cat * 29) % 256], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
    pid = f"syn:{split}-{k:04d}"
    word = WORDS[cat % len(WORDS)]
    out = {"__key__": pid.replace(":", "_").replace("-", "_"), "jpg": _jpg(img),
           "txt": f"{word}{'新款' if rng.random() < 0.5 else '正品'}{word}{int(rng.integers(100))}".encode()}
    specs = [["品类", word], ["编号", str(cat)], ["颜色", str(int(rng.integers(3)))]] if rng.random() > 0.1 else []
    meta = {"product_id": pid, "title": out["txt"].decode(), "specs": specs, "class_id": cat, "sub_class_id": cat,
            "group_id": inst, "split": split}
    out["json"] = json.dumps(meta, ensure_ascii=False).encode()
    if rng.random() > 0.2:
        for f in range(int(rng.integers(2, 6))):
            frame = np.clip(base[::-1] + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            out[f"frame{f:03d}.jpg"] = _jpg(frame)
        if rng.random() > 0.15:
            mfcc = (rng.normal(0, 20, (3, 40, 87)) + cat * 10).astype(np.float32)
            buf = io.BytesIO()
            np.save(buf, mfcc)
            out["mfcc.npy"] = buf.getvalue()
    return out


def write_shards(folder: Path, seed: int = 0, categories: int = 4, per_shard: int = 32, sizes: dict | None = None) -> Path:
    """Write ``<split>-000000.tar`` ... for every split into ``folder``; returns the folder."""
    import webdataset as wds

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (sizes or SPLITS).items():
        samples = [sample(rng, split, k, categories) for k in range(n)]
        for s in range(0, n, per_shard):
            with wds.TarWriter(str(folder / f"{split}-{s // per_shard:06d}.tar"), mtime=0) as tar:
                for item in samples[s: s + per_shard]:
                    tar.write(item)
    return folder
