"""``generate_scale(out_dir, ScaleConfig(...))``: write a scale world chunk by chunk, in parallel.

Layout of ``out_dir``::

    site/       the served root: main images (and the videos) at their page URLs, shared clips
    truth/      ground truth in the demo's layout: products, specs, media, instances, alignment,
                level2_pairs, pages (.parquet), level1_mapping.toml, manifest.json
    chunks/     the per-product truth tables chunk by chunk (``chunks/products/chunk-00000.parquet``,
                what the store builder reads) and ``chunk-00000.json``, one completion marker per
                chunk (its counts): a re-run skips chunks that have one
    world.json  the world's config (a re-run with another config refuses to mix the two)

Memory is bounded by one chunk per worker; workers write their files and return only counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from ..generate import PhaseClock
from .workers import chunk_map
from .world import CLIP_FRAMES, SCALE_VERSION, ScaleConfig, build_chunk, scale_taxonomy

log = logging.getLogger(__name__)

PER_PRODUCT_TABLES = ("products", "specs", "media", "instances")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_parquet(rows: list[dict], schema, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    os.replace(tmp, path)


def truth_schema(name: str):
    """The demo truth schema of ``name``; the scale media table adds the main image's size facts."""
    from ..truth import _schema

    return _schema(name)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_chunk(cfg: ScaleConfig, out: str, index: int) -> dict:
    """Write chunk ``index``'s images, videos and truth files; return its counts (also its marker)."""
    from ..faults import expected_modalities
    from ..pages import page_charsets
    from ..truth import instance_row
    from .images import listing_jpeg

    root = Path(out)
    site = root / "site"
    chunk = build_chunk(cfg, index)
    st = scale_taxonomy(cfg)
    tax = st.tax
    rows: dict[str, list[dict]] = {t: [] for t in PER_PRODUCT_TABLES}
    per_category: Counter = Counter()
    per_sub: Counter = Counter()
    per_leaf: Counter = Counter()
    made: set[Path] = set()
    for p in chunk.products:
        cat, inst = p.category, p.instance
        per_category[(p.platform, cat.code)] += 1
        per_sub[(p.platform, inst.sub.sub_id)] += 1
        per_leaf[(inst.sub.sub_id, inst.subsub[0] if inst.subsub else 0)] += 1
        declared, actual = page_charsets(p)
        rows["products"].append({
            "product_id": p.product_id, "platform": p.platform, "source_id": p.source_id,
            "url": p.url, "title": p.title, "merchant_id": p.merchant_id, "shop_name": p.shop_name,
            "price": p.price, "instance_id": inst.instance_id, "category_path": list(cat.path),
            "listing_path": list(cat.path), "category_code": cat.code, "class_id": cat.class_id,
            "class_name": tax.classes[cat.class_id], "sub_class_id": cat.sub_id,
            "sub_class_name": inst.sub.name, "subsub_class_id": cat.subsub_id,
            "subsub_class_name": cat.subsub_name, "caption_mismatched": p.caption_mismatched,
            "caption_instance_id": p.caption_instance.instance_id if p.caption_instance else "",
            "page_fault": p.page_fault, "http_fault": p.http_fault, "page_charset": declared,
            "page_encoding": actual, "template": p.template, "reachable": True,
            "n_specs": len(p.specs), "n_images": len(p.images), "has_video": p.video is not None,
            **expected_modalities(p)})
        rows["specs"] += [{"product_id": p.product_id, "position": i, "property": k, "value": v}
                          for i, (k, v) in enumerate(p.specs)]
        for m in p.images:
            data = listing_jpeg(m.render["visual"], m.render["variant"], (m.width, m.height))
            path = site / m.url.lstrip("/")
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            _atomic_write(path, data)
            rows["media"].append(_media_row(p, m, len(data), hashlib.sha256(data).hexdigest()))
        if p.video is not None:
            clip = site / p.video.render["clip"].lstrip("/")
            _link_or_copy(clip, site / p.video.url.lstrip("/"))
            rows["media"].append(_media_row(p, p.video, clip.stat().st_size, _file_sha256(clip)))
    rows["instances"] += [instance_row(inst) for inst in chunk.instances]
    for name in PER_PRODUCT_TABLES:
        _write_parquet(rows[name], truth_schema(name), chunk_file(root, name, index))
    counts = {
        "index": index, "products": len(chunk.products), "instances": len(chunk.instances),
        "instances_listed_more_than_once": sum(len(i.listings) > 1 for i in chunk.instances),
        "images": sum(len(p.images) for p in chunk.products),
        "videos": sum(p.video is not None for p in chunk.products),
        "spec_rows": len(rows["specs"]),
        "caption_mismatched": sum(p.caption_mismatched for p in chunk.products),
        "missing_merchant": sum(not p.merchant_id for p in chunk.products),
        "per_category": sorted([list(k) + [n] for k, n in per_category.items()]),
        "per_sub": sorted([list(k) + [n] for k, n in per_sub.items()]),
        "per_leaf": sorted([list(k) + [n] for k, n in per_leaf.items()]),
    }
    marker = root / "chunks" / f"chunk-{index:05d}.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(marker, json.dumps(counts).encode())
    return counts


def chunk_file(world: Path, table: str, index: int) -> Path:
    """The truth file of one table's chunk."""
    return world / "chunks" / table / f"chunk-{index:05d}.parquet"


def merge_chunks(world: Path, cfg: ScaleConfig) -> None:
    """Stream each per-product table's chunks into one ``truth/<table>.parquet`` (the demo's layout)."""
    import pyarrow.parquet as pq

    (world / "truth").mkdir(parents=True, exist_ok=True)
    for name in PER_PRODUCT_TABLES:
        final = world / "truth" / f"{name}.parquet"
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        with pq.ParquetWriter(tmp, truth_schema(name), compression="zstd") as writer:
            for k in range(cfg.n_chunks()):
                writer.write_table(pq.read_table(chunk_file(world, name, k)))
        os.replace(tmp, final)


_clip_sha: dict[str, str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of a shared clip (computed once per process)."""
    key = str(path)
    if key not in _clip_sha:
        _clip_sha[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _clip_sha[key]


def _media_row(p, m, size: int, sha256: str) -> dict:
    return {"product_id": p.product_id, "kind": m.kind, "role": m.role, "position": m.position,
            "url": m.url, "format": m.url.rsplit(".", 1)[1], "fault": m.fault, "decodable": True,
            "has_audio": m.has_audio, "duration_s": m.duration_s, "fps": m.fps, "width": m.width,
            "height": m.height, "bytes": size, "sha256": sha256}


def render_clips(cfg: ScaleConfig, site: Path) -> list[str]:
    """Render the shared clips (one per platform and level-1 class) once; return their URLs."""
    from ..entities import VIDEO_FPS, VIDEO_SIZE
    from ..media import render_task
    from ..taxonomy import PLATFORMS
    from ..world import hsv_rgb

    if cfg.video_share <= 0:
        return []
    jobs = []
    for platform in PLATFORMS:
        for cid in sorted(scale_taxonomy(cfg).tax.classes):
            url = f"/clips/{platform}-class{cid:02d}.mp4"
            if (site / url.lstrip("/")).exists():
                continue
            visual = {"bg": hsv_rgb(cid * 25, 0.18, 0.96), "fg": hsv_rgb(cid * 47, 0.65, 0.75), "shape": cid % 8,
                      "stripes": cid % 4, "accent": hsv_rgb(cid * 91, 0.85, 0.9), "label": f"class {cid}",
                      "tone": 180 + cid * 37, "tone2": 300 + cid * 29, "tremolo": 2.0 + cid / 4}
            jobs.append({"site": str(site), "url": url, "fault": "none",
                         "render": {"type": "video", "visual": visual, "frames": CLIP_FRAMES, "fps": VIDEO_FPS,
                                    "size": VIDEO_SIZE[platform], "audio": True, "phase": cid}})
    if jobs:
        render_task(jobs)
    return [j["url"] for j in jobs]


def _prepare(out: Path, cfg: ScaleConfig) -> None:
    """Keep a world of the same config (resume); refuse a folder that holds anything else."""
    marker = out / "world.json"
    wanted = {"generator": "m5data.demo.scale", "version": SCALE_VERSION, "config": cfg.as_dict()}
    if marker.exists():
        if json.loads(marker.read_text()) != wanted:
            raise FileExistsError(f"{out} holds a scale world of another config; pick another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no scale world; pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted, indent=1) + "\n")


def generate_scale(out_dir: str | Path, cfg: ScaleConfig, *, workers: int | None = None,
                   timings: dict | None = None) -> dict:
    """Generate (or finish) a scale world in ``out_dir``; return its manifest.

    Args:
        out_dir: the world's folder (created; a world of the same config is resumed).
        cfg: the world's size, seed and rates.
        workers: chunk processes (default: CPU count).
        timings: if given, filled with seconds per phase (taxonomy, clips, chunks, truth).
    """
    cfg.validate()
    out = Path(out_dir)
    _prepare(out, cfg)
    clock = PhaseClock()
    scale_taxonomy(cfg)
    clock.lap("taxonomy")
    render_clips(cfg, out / "site")
    clock.lap("clips")
    todo = [k for k in range(cfg.n_chunks()) if not (out / "chunks" / f"chunk-{k:05d}.json").exists()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    for _ in chunk_map(write_chunk, [(cfg, str(out), k) for k in todo], workers=workers, per_worker=8):
        pass
    clock.lap("chunks")
    merge_chunks(out, cfg)
    man = write_global_truth(out, cfg)
    clock.lap("truth")
    log.info("scale world: %d products in %s (%s)", cfg.products, out, clock.spent)
    if timings is not None:
        timings.update(clock.spent)
    return man


def write_global_truth(out: Path, cfg: ScaleConfig) -> dict:
    """alignment, level2_pairs, pages, level1_mapping.toml and manifest.json, from the chunk markers."""
    from ..taxonomy import label_ratio
    from ..truth import level1_mapping_toml

    st = scale_taxonomy(cfg)
    tax = st.tax
    totals: Counter = Counter()
    per_category: Counter = Counter()
    per_sub: Counter = Counter()
    per_leaf: Counter = Counter()
    for k in range(cfg.n_chunks()):
        counts = json.loads((out / "chunks" / f"chunk-{k:05d}.json").read_text())
        for key in ("products", "instances", "instances_listed_more_than_once", "images", "videos",
                    "spec_rows", "caption_mismatched", "missing_merchant"):
            totals[key] += counts[key]
        for platform, code, n in counts["per_category"]:
            per_category[(platform, code)] += n
        for platform, sub_id, n in counts["per_sub"]:
            per_sub[(platform, sub_id)] += n
        for sub_id, subsub_id, n in counts["per_leaf"]:
            per_leaf[(sub_id, subsub_id)] += n
    alignment = []
    for leaf in st.leaves:
        for platform, cat in leaf.categories.items():
            n = per_category[(platform, cat.code)]
            if not n:
                continue
            alignment.append({
                "platform": platform, "level1_name": cat.path[0], "level2_name": cat.path[1],
                "level3_name": cat.path[2] if len(cat.path) == 3 else "", "category_code": cat.code,
                "class_id": cat.class_id, "class_name": tax.classes[cat.class_id],
                "sub_class_id": leaf.sub.sub_id, "sub_class_name": leaf.sub.name,
                "subsub_class_id": cat.subsub_id if len(cat.path) == 3 else 0,
                "subsub_class_name": cat.subsub_name if len(cat.path) == 3 else "",
                "pair_kind": leaf.sub.kind, "n_products": n})
    seen, unique = set(), []
    for r in alignment:  # a sub-class shown without its level-3 split is one category for all its leaves
        if (r["platform"], r["category_code"]) not in seen:
            seen.add((r["platform"], r["category_code"]))
            unique.append(r)
    unique.sort(key=lambda r: (r["platform"], r["class_id"], r["sub_class_id"], r["subsub_class_id"]))
    pairs = []
    for sub in sorted(tax.subs, key=lambda s: s.sub_id):
        if len(sub.presence) == 2 and (per_sub[("shopa", sub.sub_id)] or per_sub[("shopb", sub.sub_id)]):
            pairs.append({
                "class_id": sub.class_id, "sub_class_id": sub.sub_id, "sub_class_name": sub.name,
                "shopa_level2": sub.names["shopa"], "shopb_level2": sub.names["shopb"], "pair_kind": sub.kind,
                "label_ratio": round(label_ratio(sub.names["shopa"], sub.names["shopb"]), 4),
                "finer_platform": sub.finer or "", "shopa_products": per_sub[("shopa", sub.sub_id)],
                "shopb_products": per_sub[("shopb", sub.sub_id)]})
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    _write_parquet(unique, truth_schema("alignment"), truth / "alignment.parquet")
    _write_parquet(pairs, truth_schema("level2_pairs"), truth / "level2_pairs.parquet")
    _write_parquet([], truth_schema("pages"), truth / "pages.parquet")

    class _World:  # what level1_mapping_toml reads of a demo world
        taxonomy = tax

    (truth / "level1_mapping.toml").write_text(level1_mapping_toml(_World()), encoding="utf-8")
    leaf_codes = {r["category_code"] for r in unique}
    man = {
        "generator": "m5data.demo.scale", "generator_version": SCALE_VERSION, "seed": cfg.seed,
        "config": cfg.as_dict(),
        "counts": {
            **{k: totals[k] for k in sorted(totals)},
            "products_by_platform": {p: sum(n for (q, _), n in per_sub.items() if q == p) for p in ("shopa", "shopb")},
            "unified_sub_classes": len(tax.subs),
            "unified_leaf_categories": len(st.leaves),
            "leaf_categories_with_products": len(per_leaf),
            "products_per_leaf_top": max(per_leaf.values()),
            "leaves_with_at_most_5_products": sum(n <= 5 for n in per_leaf.values()),
            "categories_by_platform": dict(sorted(Counter(r["platform"] for r in unique).items())),
            "platform_categories": len(leaf_codes),
            "listing_pages": 0,
        },
        "tables": ["products", "specs", "media", "alignment", "level2_pairs", "instances", "pages"],
    }
    (truth / "manifest.json").write_text(json.dumps(man, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")
    return man
