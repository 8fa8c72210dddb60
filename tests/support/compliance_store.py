"""A synthetic store shaped like the demo's for the compliance section and the faces rows an export
loads (benchmarks/bench_compliance.py builds it at 10k-1M products; tests at a few thousand).

``build(root, n)`` writes, with the store's own write API, in batches of 100,000 products (the
generator holds one batch): ``n`` products on 20 source domains (a few large, many small), 1% of the
titles holding a phone number and every title a 6-digit model number (the masking prefilter passes
them, so Python looks at them); 4 spec rows a product (0.5% an e-mail); a caption each (0.5% a QQ id);
crawl errors (2% of ``n``), opt-outs (0.5%), licences (20%), takedowns (a domain and 100 products);
``faces`` rows, one per product's image and one more per tenth product's frames folder, 5% of them
with faces (1-3 boxes; a frames folder's over several frames).
"""

from __future__ import annotations

from pathlib import Path

BATCH = 100_000
DOMAINS = 20
WORDS = ["面霜", "口红", "奶粉", "手机", "耳机", "连衣裙", "运动鞋", "保温杯", "洗发水", "茶叶", "坚果", "台灯"]


def _ids(lo: int, m: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise("syn:", pc.cast(pa.array(np.arange(lo, lo + m)), pa.string()), "")


def _pick(rng, words: list[str], m: int):
    import pyarrow as pa

    return pa.array(words).take(pa.array(rng.integers(0, len(words), m)))


def build(root: Path, n: int):
    """The store of ``n`` products (the module docstring says what it holds)."""
    from datetime import datetime, timezone

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from m5data.storage import Store

    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    store = Store.init(root)
    rng = np.random.default_rng(0)
    hosts = [f"shop{k}.example.com" for k in range(DOMAINS)]
    weights = 1.0 / (np.arange(DOMAINS) + 1.0)
    weights /= weights.sum()
    words = pa.array(WORDS)
    with (store.writer("products") as products, store.writer("specs") as specs, store.writer("captions") as captions,
          store.writer("licenses") as licences, store.writer("faces") as faces):
        for lo in range(0, n, BATCH):
            m = min(BATCH, n - lo)
            ids = _ids(lo, m)
            host = pa.array(hosts).take(pa.array(rng.choice(DOMAINS, m, p=weights)))
            url = pc.binary_join_element_wise("https://", host, pc.binary_join_element_wise(
                "/p/", pc.cast(pa.array(np.arange(lo, lo + m)), pa.string()), ""), "")
            model = pc.cast(pa.array(rng.integers(100_000, 999_999, m)), pa.string())
            phone = pa.array(np.where(rng.random(m) < 0.01, " 客服13812345678", ""))
            title = pc.binary_join_element_wise(words.take(pa.array(rng.integers(0, len(WORDS), m))), " ", model, phone, "")
            products.write(pa.table({"product_id": ids, "platform": pa.array(["syn"] * m), "url": url, "title": title,
                                     "crawled_at": pa.array([now] * m, pa.timestamp("us", tz="UTC"))}))
            k = 4
            value = _pick(rng, WORDS, m * k)
            email = rng.random(m * k) < 0.005 / k
            value = pc.if_else(pa.array(email), pa.array(["联系 x.y@example.com"] * (m * k)), value)
            specs.write(pa.table({"product_id": pa.array(np.repeat(ids.to_numpy(zero_copy_only=False), k)),
                                  "position": pa.array(np.tile(np.arange(k, dtype=np.int32), m)),
                                  "property": _pick(rng, ["品牌", "型号", "颜色", "产地"], m * k), "value": value}))
            qq = pa.array(np.where(rng.random(m) < 0.005, " QQ: 12345678", ""))
            captions.write(pa.table({"product_id": ids, "text": pc.binary_join_element_wise(title, " 好物推荐", qq, ""),
                                     "status": pa.array(["ok"] * m), "lang": pa.array(["zh"] * m)}))
            lic = rng.random(m) < 0.2
            licences.write(pa.table({"product_id": ids.filter(pa.array(lic)), "url": url.filter(pa.array(lic)),
                                     "license": pa.array(["https://creativecommons.org/licenses/by/4.0/"] * int(lic.sum())),
                                     "source": pa.array(["schema.org"] * int(lic.sum()))}))
            faces.write(_faces(rng, lo, m, ids))
    m = max(1, n // 50)
    store.write("crawl_errors", pa.table({"url": pc.binary_join_element_wise(
        "https://", pa.array(hosts).take(pa.array(rng.integers(0, DOMAINS, m))),
        pc.binary_join_element_wise("/e/", pc.cast(pa.array(np.arange(m)), pa.string()), ""), ""),
        "platform": pa.array(["syn"] * m), "reason": pa.array(["no product data"] * m)}))
    m = max(1, n // 200)
    store.write("optouts", pa.table({"url": pc.binary_join_element_wise(
        "https://", pa.array(hosts).take(pa.array(rng.integers(0, DOMAINS, m))),
        pc.binary_join_element_wise("/o/", pc.cast(pa.array(np.arange(m)), pa.string()), ""), ""),
        "product_id": _ids(0, m), "scope": pa.array(["page"] * m), "source": pa.array(["x-robots-tag"] * m),
        "directive": pa.array(["noai"] * m)}))
    store.write("takedowns", [{"kind": "domain", "value": hosts[-1], "reason": "bench", "taken_at": now}]
                + [{"kind": "product_id", "value": f"syn:{i}", "reason": "bench", "taken_at": now}
                   for i in range(0, n, max(1, n // 100))])
    return store


def _faces(rng, lo: int, m: int, ids):
    """A batch's ``faces`` rows: one per product's image (``derived/images/<i>.jpg``), one more per tenth
    product's frames folder; 5% with 1-3 faces (a folder's spread over its first 30 frames)."""
    import numpy as np
    import pyarrow as pa

    frames = np.arange(lo, lo + m) % 10 == 0
    pick = np.concatenate([np.arange(m), np.flatnonzero(frames)])
    kind = np.array(["image_norm"] * m + ["frames"] * int(frames.sum()))
    blob = [f"derived/images/{lo + i}.jpg" for i in range(m)] + [f"derived/frames/{lo + i}" for i in np.flatnonzero(frames)]
    k = len(pick)
    n_faces = np.where(rng.random(k) < 0.05, rng.integers(1, 4, k), 0).astype(np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(n_faces)]).astype(np.int32))
    total = int(n_faces.sum())
    frame = np.where(np.repeat(kind == "frames", n_faces), rng.integers(0, 30, total), 0).astype(np.int32)
    x0, y0 = rng.uniform(0, 400, total).astype(np.float32), rng.uniform(0, 300, total).astype(np.float32)

    def boxes(values):
        return pa.ListArray.from_arrays(offsets, pa.array(values))

    return pa.table({"blob": pa.array(blob), "media_id": pa.array([f"m{lo + i}" for i in pick]),
                     "product_id": ids.take(pa.array(pick)), "kind": pa.array(kind),
                     "width": pa.array(np.full(k, 720, np.int32)), "height": pa.array(np.full(k, 405, np.int32)),
                     "model": pa.array(["centerface"] * k), "threshold": pa.array(np.full(k, 0.5)),
                     "n_faces": pa.array(n_faces), "frame": boxes(frame), "x0": boxes(x0), "y0": boxes(y0),
                     "x1": boxes(x0 + 80), "y1": boxes(y0 + 100), "score": boxes(np.full(total, 0.9, np.float32))})
