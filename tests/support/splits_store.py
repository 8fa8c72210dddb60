"""Synthetic labelled products for the split benchmark and tests: no media, written in streamed chunks.

``write_synthetic(store, n)`` appends ``n`` products (``syn:<number>``) spread over a long-tailed set
of 3-level categories (Zipf-like, as in Figure 3 of the paper) and the matching ``label_map`` rows,
so that ``build-splits`` sees M5Product's shape at any size without a crawl.
"""

from __future__ import annotations

import numpy as np


def categories(n_categories: int = 6232, n_classes: int = 14, seed: int = 0) -> list[tuple[int, int, int]]:
    """``(class_id, sub_class_id, subsub_class_id)`` of each synthetic category (subsub 0 = none)."""
    rng = np.random.default_rng(seed)
    out = []
    sub = 0
    while len(out) < n_categories:
        sub += 1
        class_id = int(rng.integers(1, n_classes + 1))
        for subsub in range(int(rng.integers(0, 4)) + 1):
            out.append((class_id, sub, subsub))
    return out[:n_categories]


def write_synthetic(store, n: int, *, start: int = 0, n_categories: int = 6232, seed: int = 0,
                    chunk: int = 1_000_000, platform: str = "syn") -> int:
    """Append products ``syn:<start>`` .. ``syn:<start + n - 1>`` and their label_map rows; returns n.

    Args:
        store: the store.
        n: products to write.
        start: first product number (a second call with ``start=n`` appends new products).
        n_categories: leaf categories, long-tailed (category k has weight 1 / (k + 10)).
        seed: the random stream (category draws use ``seed`` and ``start``, so appends are new draws).
        chunk: rows per streamed batch.
        platform: platform name of the products and label rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cats = categories(n_categories, seed=seed)
    names = []
    for c, s, ss in cats:
        names += [f"class {c}", f"sub {s}", f"subsub {s}.{ss}" if ss else None]
    levels = pa.array(names, pa.string())
    label_rows = [{"platform": platform, "raw_path": " > ".join(x for x in names[3 * k: 3 * k + 3] if x),
                   "raw_level1": names[3 * k], "raw_level2": names[3 * k + 1], "raw_level3": names[3 * k + 2],
                   "class_id": c, "sub_class_id": s, "subsub_class_id": ss, "method": "own"}
                  for k, (c, s, ss) in enumerate(cats)]
    weights = 1.0 / (np.arange(n_categories) + 10.0)
    weights /= weights.sum()
    rng = np.random.default_rng([seed, start])
    with store.writer("products") as out:
        for lo in range(start, start + n, chunk):
            m = min(chunk, start + n - lo)
            cat = rng.choice(n_categories, size=m, p=weights)
            depth = np.where(np.array([ss for _, _, ss in cats])[cat] > 0, 3, 2)
            offsets = np.concatenate([[0], np.cumsum(depth)]).astype(np.int32)
            idx = np.repeat(cat * 3, depth) + (np.arange(offsets[-1]) - np.repeat(offsets[:-1], depth))
            path = pa.ListArray.from_arrays(pa.array(offsets), pc.take(levels, pa.array(idx)))
            ids = pc.binary_join_element_wise(pa.scalar(f"{platform}:"), pc.cast(pa.array(np.arange(lo, lo + m)), pa.string()), "")
            out.write(pa.table({"product_id": ids, "platform": pa.array([platform] * m) if m < 10_000 else
                                pa.DictionaryArray.from_arrays(pa.array(np.zeros(m, np.int32)), [platform]).cast(pa.string()),
                                "category_path": path}))
    store.write("label_map", label_rows)
    return n
