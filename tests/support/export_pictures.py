"""What an export wrote of a sample's pictures, read back, and how a blurred copy differs from the stored one:
the faces' and the QR codes' export tests share these."""

from __future__ import annotations

import tarfile

import numpy as np


def _stored(store, pid: str) -> bytes:
    row = store.read("media", where=f"kind = 'image_norm' AND product_id = '{pid}'").to_pylist()[0]
    return (store.local_root() / row["blob"]).read_bytes()


def _exported(out, fmt: str) -> dict[str, bytes]:
    """``{product key: main image bytes}`` (and ``key/frameNNN``: frames) of a one-shard export."""
    if fmt == "webdataset":
        with tarfile.open(next(out.glob("train-*.tar"))) as tar:
            return {m.name.replace(".jpg", "").replace(".frame", "/frame"): tar.extractfile(m).read()
                    for m in tar.getmembers() if m.name.endswith(".jpg")}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(next(out.glob("data/*.parquet"))).to_pylist()
        found = {r["key"]: r["image"]["bytes"] for r in rows}
        found.update({f"{r['key']}/frame{i:03d}": f["bytes"] for r in rows for i, f in enumerate(r["frames"] or [])})
        return found
    return {p.stem.replace("astro", "shopa~3Aastro").replace("jd", "shopa~3Ajd"): p.read_bytes()
            for p in (out / "images").glob("*.jpg")}


def _pixels(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)


def _inside_and_outside(before: bytes, after: bytes, box) -> tuple[float, float]:
    """Mean absolute pixel change inside the box (shrunk a little) and well outside it."""
    a, b = _pixels(before), _pixels(after)
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = np.abs(a[y0 + 5:y1 - 5, x0 + 5:x1 - 5] - b[y0 + 5:y1 - 5, x0 + 5:x1 - 5]).mean()
    mask = np.ones(a.shape[:2], bool)
    mask[max(0, y0 - 30):y1 + 30, max(0, x0 - 30):x1 + 30] = False
    return inside, np.abs(a[mask] - b[mask]).mean()
