"""``m5data import m5product DIR``: read the M5Product layout (m5product.py) into a store.

What the layout carries becomes store rows: ``products`` (title, category path from the label
list), ``specs`` (from ``pv``), ``media`` (images, videos, audios as content-addressed blobs,
status ok) and, when the split lists are there, ``splits`` rows of one version. Product ids come
from ``m5data_items.json`` when the folder is an m5data export, else ``<platform>:<item id>``.
Run ``m5data extract`` afterwards for frames, MFCC and normalised images, and ``m5data align``
for unified labels.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import typer

from .m5product import CAPTIONS, ID_LABEL, ITEMS, LABEL_LIST, LIST_FILES, parse_pv

app = typer.Typer(help="Read a dataset in another layout into the store.", no_args_is_help=True)


class LayoutError(Exception):
    """A folder that is not in the expected layout; the message names the file."""


@dataclass
class ImportReport:
    stats: object  # StageStats
    products: int
    specs: int
    media: Counter
    splits: dict[str, int]
    split_version: str | None


def find_captions(folder: Path) -> Path:
    """The caption JSON: ``captions.json``, else the one top-level JSON object whose values have a ``title``."""
    if (folder / CAPTIONS).is_file():
        return folder / CAPTIONS
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and data and all(isinstance(v, dict) and "title" in v for v in list(data.values())[:20]):
            return path
    raise LayoutError(f"no caption JSON in {folder} (captions.json, or a JSON object of {{id: {{title, pv}}}})")


def _load(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LayoutError(f"{path} is not valid JSON: {exc}") from None


def _media_row(product_id: str, kind: str, role: str, rel: str, ref, mime: str, source: str | None = None,
               width: int | None = None, height: int | None = None, now=None) -> dict:
    media_id = hashlib.sha1(f"{product_id}|{kind}|import:{rel}".encode()).hexdigest()
    return {"media_id": media_id, "product_id": product_id, "kind": kind, "role": role, "position": 0, "url": None,
            "source_media_id": source, "blob": ref.path, "sha256": ref.sha256, "mime": mime, "bytes": ref.bytes,
            "width": width, "height": height, "status": "ok", "attempts": 0,
            "meta": json.dumps({"imported_from": rel}), "updated_at": now}


def _put(store, path: Path, ext: str):
    """Copy a file into the blob store without a per-blob fsync (one ``blobs.sync()`` before the rows)."""
    with store.blobs.writer(ext, sync=False) as w, open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            w.write(chunk)
        return w.commit()


def _image_size(path: Path) -> tuple[int | None, int | None, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.width, im.height, Image.MIME.get(im.format, "image/jpeg")
    except (UnidentifiedImageError, OSError):
        return None, None, "application/octet-stream"


def import_m5product(store, folder: str | Path, platform: str = "m5product", split_version: str = "imported",
                     progress=None) -> ImportReport:
    """Read an M5Product-layout folder into ``store``.

    Args:
        store: the target store (rows are upserted: importing twice changes nothing).
        folder: the layout's root (the caption JSON, images/, videos/, audios/, label files, lists).
        platform: platform name for item ids without an ``m5data_items.json`` entry.
        split_version: version name for the split lists found (train.txt, query.txt, ...).
        progress: called with (items done, items in all).
    """
    from ..storage.runs import StageStats, record_run

    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"no such folder {folder}")
    stats = StageStats("import")
    captions = _load(find_captions(folder), {})
    labels = _load(folder / LABEL_LIST, [])
    id_label = _load(folder / ID_LABEL, {})
    items = _load(folder / ITEMS, {}).get("items", {})
    now = datetime.now(timezone.utc)
    products, specs, media = [], [], []
    media_counts: Counter = Counter()
    pid_of: dict[str, str] = {}
    stats.n_in = len(captions)
    for n, (iid, rec) in enumerate(sorted(captions.items()), 1):
        iid = str(iid)
        if not isinstance(rec, dict):
            stats.fail("caption entry not an object")
            continue
        pid = (items.get(iid) or {}).get("product_id") or f"{platform}:{iid}"
        pid_of[iid] = pid
        plat, _, source = pid.partition(":")
        label = id_label.get(iid)
        path = labels[label].split(" > ") if isinstance(label, int) and 0 <= label < len(labels) else []
        pairs = parse_pv(rec.get("pv"))
        specs += [{"product_id": pid, "position": i, "property": p, "value": v} for i, (p, v) in enumerate(pairs)]
        found = {}
        image = folder / "images" / f"{iid}.jpg"
        if image.is_file():
            ref = _put(store, image, "jpg")
            w, h, mime = _image_size(image)
            found["image"] = _media_row(pid, "image", "main", f"images/{iid}.jpg", ref, mime, width=w, height=h, now=now)
        videos = sorted((folder / "videos").glob(f"{iid}.*")) if (folder / "videos").is_dir() else []
        if videos:
            ext = videos[0].suffix.lstrip(".").lower() or "mp4"
            ref = _put(store, videos[0], ext)
            found["video"] = _media_row(pid, "video", "video", f"videos/{videos[0].name}", ref, f"video/{ext}", now=now)
        audio = folder / "audios" / f"{iid}.mp3"
        if audio.is_file():
            ref = _put(store, audio, "mp3")
            source_id = found["video"]["media_id"] if "video" in found else None
            found["audio"] = _media_row(pid, "audio", "derived", f"audios/{iid}.mp3", ref, "audio/mpeg", source_id, now=now)
        for kind, row in found.items():
            media.append(row)
            media_counts[kind] += 1
        title = rec.get("title") or None
        products.append({
            "product_id": pid, "platform": plat if source else platform, "source_id": source or iid, "title": title,
            "category_path": path, "crawled_at": now,
            "content_hash": hashlib.sha256(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode()).hexdigest(),
            "has_image": "image" in found, "has_video": "video" in found, "has_caption": bool(title),
            "has_specs": bool(pairs), "run_id": stats.run_id,
        })
        if progress:
            progress(n, len(captions))
    splits = {}
    rows = []
    for split, name in LIST_FILES.items():
        path = folder / name
        if path.is_file():
            ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            rows += [{"product_id": pid_of.get(i, f"{platform}:{i}"), "split": split, "version": split_version} for i in ids]
            splits[split] = len(ids)
    store.blobs.sync()
    try:
        store.write("products", products)
        if specs:
            store.write("specs", specs)
        if media:
            store.write("media", media)
        if rows:
            store.write("splits", rows)
        stats.n_out = len(products)
        stats.bytes = sum(m["bytes"] or 0 for m in media)
        stats.finish("ok")
    except BaseException:
        stats.finish("failed")
        record_run(store, stats, {"folder": str(folder), "platform": platform})
        raise
    record_run(store, stats, {"folder": str(folder), "platform": platform, "split_version": split_version})
    return ImportReport(stats, len(products), len(specs), media_counts, splits, split_version if rows else None)


@app.command("m5product")
def m5product(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="The M5Product-layout folder (caption JSON, images/, videos/, audios/ ...)."),
    platform: str = typer.Option("m5product", "--platform", help="Platform name for product ids (<platform>:<item id>)."),
    split_version: str = typer.Option("imported", "--split-version", help="Split version for train.txt, query.txt ... lists."),
) -> None:
    """Read an M5Product-layout folder into the store (products, specs, media blobs, category paths, split lists)."""
    from ..console import Table

    from ..cli import open_store
    from ..console import console, fail, stage_summary

    store, _ = open_store(ctx, create=True)
    try:
        report = import_m5product(store, folder, platform=platform, split_version=split_version)
    except LayoutError as exc:
        fail(str(exc))
    console.print(stage_summary(report.stats))
    t = Table(title=f"imported {folder}")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("products", f"{report.products:,}")
    t.add_row("spec rows", f"{report.specs:,}")
    for kind, n in sorted(report.media.items()):
        t.add_row(f"media: {kind}", f"{n:,}")
    for split, n in report.splits.items():
        t.add_row(f"split {report.split_version}/{split}", f"{n:,}")
    console.print(t)
