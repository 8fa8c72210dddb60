"""``build_scale_store(world_dir, store_path)``: the store a crawl, download and extract of a scale
world would have written, built from its truth without crawling a page.

Tables written (through ``Store.writer``, streamed chunk by chunk, so memory stays bounded):

- ``products`` and ``specs`` as the crawl pipeline writes them (absolute URLs under ``base_url``,
  the crawl's content hash, ``has_*`` flags);
- ``media``: each main image ``ok`` with its blob (the world's JPEG hard-linked into
  ``blobs/<sha[:2]>/<sha>.jpg``, as download stores it), sha256, mime and bytes, plus what extract
  adds: original width/height, quality tier and pHash on the source row and an ``image_norm``
  derived row (made by extract's own ``normalise_image``); each video ``ok`` with its blob, duration,
  fps and audio flag (frames and MFCC are not derived: the videos are shared clips);
- ``captions`` by extract's own ``caption_row`` (jieba tokens, in the worker processes);
- ``runs``: one ``crawl``, ``download`` and ``extract`` row.

Workers (processes) build one chunk's rows each and link its blobs; the parent writes the rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from .generate import chunk_file
from .workers import chunk_map
from .world import ScaleConfig

STORE_TABLES = ("products", "specs", "media", "captions")


def load_config(world_dir: str | Path) -> ScaleConfig:
    """The config of a generated scale world (``world.json``)."""
    marker = Path(world_dir) / "world.json"
    if not marker.exists():
        raise FileNotFoundError(f"{world_dir} holds no scale world (no world.json); run "
                                "'m5data demo-shop generate --profile scale' first")
    return ScaleConfig(**json.loads(marker.read_text())["config"])


def _link(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` (a hard link; a copy across filesystems); an existing blob is kept."""
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def content_hash(title, price, currency, category_path, merchant_id, description, images, videos, specs) -> str:
    """The crawl's content hash of a page (``ProductItem.content_hash``)."""
    payload = [title, price, currency, category_path, merchant_id, description, images, videos,
               [list(p) for p in specs]]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def store_chunk(world_dir: str, store_root: str, index: int, base_url: str, run_ids: dict) -> dict:
    """Rows of chunk ``index`` for every store table (pyarrow tables) and its counts; blobs linked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ...config import ExtractSettings, TextSettings
    from ...extract.image import normalise_image
    from ...extract.text import caption_row
    from ...storage.media_ids import derived_id, media_id
    from ...storage.schema import TABLES

    ex, tx = ExtractSettings(), TextSettings()
    world, root = Path(world_dir), Path(store_root)
    products = pq.read_table(chunk_file(world, "products", index)).to_pylist()
    specs = pq.read_table(chunk_file(world, "specs", index)).to_pylist()
    media = pq.read_table(chunk_file(world, "media", index)).to_pylist()
    now = datetime.now(timezone.utc)
    by_product: dict[str, list[dict]] = {}
    for m in media:
        by_product.setdefault(m["product_id"], []).append(m)
    specs_of: dict[str, list[tuple[str, str]]] = {}
    for s in specs:
        specs_of.setdefault(s["product_id"], []).append((s["property"], s["value"]))
    rows: dict[str, list[dict]] = {t: [] for t in STORE_TABLES}
    nbytes = {"download": 0, "extract": 0}
    for p in products:
        pid = p["product_id"]
        images = [base_url + m["url"] for m in by_product.get(pid, []) if m["kind"] == "image"]
        videos = [base_url + m["url"] for m in by_product.get(pid, []) if m["kind"] == "video"]
        pspecs = specs_of.get(pid, [])
        rows["products"].append({
            "product_id": pid, "platform": p["platform"], "source_id": p["source_id"], "url": base_url + p["url"],
            "merchant_id": p["merchant_id"] or None, "title": p["title"], "price": p["price"], "currency": "CNY",
            "category_path": p["category_path"], "description": None, "crawled_at": now,
            "content_hash": content_hash(p["title"], p["price"], "CNY", p["category_path"], p["merchant_id"] or None,
                                         None, images, videos, pspecs),
            "has_image": bool(images), "has_video": bool(videos), "has_caption": bool(p["title"]),
            "has_specs": bool(pspecs), "run_id": run_ids["crawl"]})
        rows["specs"] += [{"product_id": pid, "position": i, "property": k, "value": v}
                          for i, (k, v) in enumerate(pspecs)]
        for m in by_product.get(pid, []):
            url = base_url + m["url"]
            ext = m["format"]
            sha = m["sha256"]
            rel = f"blobs/{sha[:2]}/{sha}.{ext}"
            _link(world / "site" / m["url"].lstrip("/"), root / rel)
            nbytes["download"] += m["bytes"]
            row = {"media_id": media_id(pid, m["kind"], url), "product_id": pid, "kind": m["kind"],
                   "role": m["role"], "position": m["position"], "url": url, "blob": rel, "sha256": sha,
                   "mime": "image/jpeg" if m["kind"] == "image" else "video/mp4", "bytes": m["bytes"],
                   "status": "ok", "http_status": 200, "attempts": 1, "updated_at": now}
            if m["kind"] == "video":
                row.update(width=m["width"], height=m["height"], duration=m["duration_s"], fps=float(m["fps"]),
                           has_audio=m["has_audio"], codec="h264", frame_count=round(m["duration_s"] * m["fps"]))
                rows["media"].append(row)
                continue
            norm_rel = f"derived/images/{sha[:2]}/{sha}.jpg"
            norm_path = root / norm_rel
            norm_path.parent.mkdir(parents=True, exist_ok=True)
            n = normalise_image(root / rel, norm_path, max_side=ex.image_max_side, quality=ex.jpeg_quality,
                                max_pixels=ex.max_image_pixels, tier_high=ex.image_tier_high,
                                tier_medium=ex.image_tier_medium)
            nbytes["extract"] += n.bytes
            row.update(width=n.orig_width, height=n.orig_height, quality_tier=n.tier, phash=n.phash)
            meta = {"source_blob": rel, "orig_width": n.orig_width, "orig_height": n.orig_height,
                    "orig_format": n.orig_format, "orig_mode": n.orig_mode, "orig_frames": n.frames,
                    "exif_orientation": n.orientation, "max_side": ex.image_max_side, "jpeg_quality": ex.jpeg_quality}
            rows["media"] += [row, {
                "media_id": derived_id(row["media_id"], "image_norm"), "product_id": pid, "kind": "image_norm",
                "role": "derived", "position": m["position"], "source_media_id": row["media_id"], "blob": norm_rel,
                "sha256": hashlib.sha256(norm_path.read_bytes()).hexdigest(), "mime": "image/jpeg",
                "bytes": n.bytes, "width": n.width, "height": n.height, "quality_tier": n.tier, "phash": n.phash,
                "status": "ok", "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True), "updated_at": now}]
        cap = caption_row(pid, p["title"], strip_brackets=tx.strip_brackets, max_chars=tx.max_caption_chars,
                          user_dict=tx.jieba_user_dict)
        cap["updated_at"] = now
        rows["captions"].append(cap)
    tables = {t: pa.Table.from_pylist(rows[t], schema=TABLES[t].schema) for t in STORE_TABLES}
    return {"index": index, "tables": tables, "bytes": nbytes,
            "counts": {t: len(rows[t]) for t in STORE_TABLES},
            "images": sum(m["kind"] == "image" for m in media), "videos": sum(m["kind"] == "video" for m in media)}


def build_scale_store(world_dir: str | Path, store_path: str | Path, *, workers: int | None = None,
                      base_url: str = "http://127.0.0.1:8000", progress=None) -> dict:
    """Write the crawl, download and extract tables of a scale world into a new store.

    Args:
        world_dir: a world written by ``generate_scale`` (every chunk complete).
        store_path: the store (created; it must hold no products yet).
        workers: processes building chunks (default: CPU count).
        base_url: the URL prefix the pages would have been crawled from (``m5data demo-shop serve``).
        progress: optional callable ``(chunks_done, chunks_total)``.

    Returns:
        counts per table, images, videos, chunks, seconds.
    """
    from ...stage_run import record
    from ...storage import Store
    from ...storage.runs import StageStats

    world = Path(world_dir)
    cfg = load_config(world)
    missing = [k for k in range(cfg.n_chunks()) if not (world / "chunks" / f"chunk-{k:05d}.json").exists()]
    if missing:
        raise ValueError(f"{world}: the world is incomplete ({len(missing)} of {cfg.n_chunks()} chunks missing, "
                         f"first chunk-{missing[0]:05d}); run generate again to finish it")
    store = Store.open(store_path, create=True)
    if store.parts("products"):
        raise FileExistsError(f"{store_path} already holds products; build a scale store into a new store")
    started = time.time()
    stats = {s: StageStats(s) for s in ("crawl", "download", "extract")}
    run_ids = {s: st.run_id for s, st in stats.items()}
    total = {t: 0 for t in STORE_TABLES} | {"images": 0, "videos": 0}
    nbytes = {"download": 0, "extract": 0}
    workers = max(1, min(workers or os.cpu_count() or 1, cfg.n_chunks()))
    args = [(str(world), str(store.root), k, base_url, run_ids) for k in range(cfg.n_chunks())]
    with store.writer("specs") as w_specs, store.writer("media") as w_media, \
            store.writer("captions") as w_captions, store.writer("products") as w_products:
        writers = {"products": w_products, "specs": w_specs, "media": w_media, "captions": w_captions}
        for done, result in enumerate(chunk_map(store_chunk, args, workers=workers, per_worker=16), 1):
            for t in STORE_TABLES:
                writers[t].write(result["tables"][t])
                total[t] += result["counts"][t]
            total["images"] += result["images"]
            total["videos"] += result["videos"]
            for k in nbytes:
                nbytes[k] += result["bytes"][k]
            if progress:
                progress(done, cfg.n_chunks())
    n = total["products"]
    for s, st in stats.items():
        st.started = started
        st.n_in = n if s == "crawl" else total["images"] + total["videos"] if s == "download" else n + total["images"]
        st.n_out = st.n_in
        st.bytes = nbytes.get(s, 0)
        record(store, st, {"scale_world": str(world), "built_by": "build_scale_store"}, "ok")
    store.refresh_catalog(quiet=True)
    return {**total, "chunks": cfg.n_chunks(), "seconds": round(time.time() - started, 3)}
