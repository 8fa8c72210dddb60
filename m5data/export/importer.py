"""``m5data import m5product DIR``: read the M5Product layout (m5product.py) into a store.

What the layout carries becomes store rows: ``products`` (title, category path from the label
list), ``specs`` (from ``pv``), ``media`` (images, videos, audios as content-addressed blobs,
status ok) and, when the split lists are there, ``splits`` rows of one version. Product ids come
from ``m5data_items.json`` when the folder is an m5data export, else ``<platform>:<item id>``.
Run ``m5data extract`` afterwards for frames, MFCC and normalised images, and ``m5data align``
for unified labels.

The folder is untrusted (a downloaded dataset): it is read through :class:`.layout_folder.LayoutFolder`
(listed once, regular files inside it only, no path or glob built from an id), item and product ids
are checked, media are sniffed like downloads (:func:`m5data.crawler.download.sniff.sniff`). A bad
item fails alone, with its reason, before any of its blobs is written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import typer

from .layout_folder import (ITEM_ID, PLATFORM, FolderMedia, ItemError, LayoutError, LayoutFolder, MediaFile,
                            check_item_id, check_product_id)
from .m5product import CAPTIONS, ID_LABEL, ITEMS, LABEL_LIST, LIST_FILES, parse_pv

app = typer.Typer(help="Read a dataset in another layout into the store.", no_args_is_help=True)


@dataclass
class ImportReport:
    stats: object  # StageStats
    products: int
    specs: int
    media: Counter
    splits: dict[str, int]
    split_version: str | None
    failed: list[str] = field(default_factory=list)  # one line per failed item or list line, naming it


JSON_TYPES = {dict: "object", list: "array"}
SHOW_FAILED = 20  # failed items named in the CLI's output (all are counted in the runs row)


def find_captions(folder: LayoutFolder) -> str:
    """The caption JSON's name: ``captions.json``, else the one top-level JSON object whose values have a ``title``."""
    if CAPTIONS in folder.names:
        return CAPTIONS
    for name in sorted(n for n, kind in folder.names.items() if kind == "file" and n.endswith(".json")):
        try:
            data = json.loads(folder.read_bytes(name).decode("utf-8"))
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        if isinstance(data, dict) and data and all(isinstance(v, dict) and "title" in v for v in list(data.values())[:20]):
            return name
    raise LayoutError(f"no caption JSON in {folder.root} (captions.json, or a JSON object of {{id: {{title, pv}}}})")


def _load(folder: LayoutFolder, name: str, default, kind: type):
    """The JSON value of the top-level file ``name`` (``default`` when absent); :class:`LayoutError`
    naming the file when it is no regular file, not UTF-8, not JSON, or not a JSON ``kind``."""
    if name not in folder.names:
        return default
    data = _read_text(folder, name)
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{folder.root / name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise LayoutError(f"{folder.root / name} is not a JSON {JSON_TYPES[kind]}")
    return value


def _read_text(folder: LayoutFolder, name: str) -> str:
    try:
        return folder.read_bytes(name).decode("utf-8")
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{folder.root / name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _media_row(product_id: str, kind: str, role: str, rel: str, ref, mime: str, source: str | None = None,
               width: int | None = None, height: int | None = None, now=None) -> dict:
    media_id = hashlib.sha1(f"{product_id}|{kind}|import:{rel}".encode()).hexdigest()
    return {"media_id": media_id, "product_id": product_id, "kind": kind, "role": role, "position": 0, "url": None,
            "source_media_id": source, "blob": ref.path, "sha256": ref.sha256, "mime": mime, "bytes": ref.bytes,
            "width": width, "height": height, "status": "ok", "attempts": 0,
            "meta": json.dumps({"imported_from": rel}), "updated_at": now}


def _put(store, fh, ext: str):
    """Copy an open file into the blob store without a per-blob fsync (one ``blobs.sync()`` before the rows)."""
    fh.seek(0)
    with store.blobs.writer(ext, sync=False) as w:
        while chunk := fh.read(1 << 20):
            w.write(chunk)
        return w.commit()


def _image_size(path: Path) -> tuple[int | None, int | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.width, im.height
    except (UnidentifiedImageError, OSError):
        return None, None


def _check_caption(iid: str, rec) -> None:
    """:class:`ItemError` unless the caption entry is an object with text (or no) title and pv."""
    if not isinstance(rec, dict):
        raise ItemError("caption entry not an object", f"item {iid!r}: caption entry is not an object")
    if not all(isinstance(rec.get(k), (str, type(None))) for k in ("title", "pv")):
        raise ItemError("caption entry: title or pv not text", f"item {iid!r}: title or pv is not a string")
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): valid JSON, no valid text
        raise ItemError("caption entry not valid Unicode", f"item {iid!r}: caption holds a lone surrogate") from None


def _category_path(iid: str, label, labels: list[str]) -> list[str]:
    if label is None:
        return []
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(labels):
        raise ItemError("label not an index into the label list",
                        f"item {iid!r}: label {label!r} is not an index into {LABEL_LIST} ({len(labels)} labels)")
    return labels[label].split(" > ")


def _split_rows(data: bytes, pid_of: dict[str, str], captions: dict, platform: str) -> tuple[list[str], int]:
    """The product ids of a split list's lines, and how many lines were no item id (not UTF-8, or not
    the pattern). A failed item's lines go with it; an id with no caption entry becomes
    ``<platform>:<id>``."""
    pids, bad = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            iid = line.strip().decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
            continue
        if iid in pid_of:
            pids.append(pid_of[iid])
        elif iid in captions:
            continue  # a failed item, counted once as such
        elif ITEM_ID.match(iid):
            pids.append(f"{platform}:{iid}")
        else:
            bad += 1
    return pids, bad


def import_m5product(store, folder: str | Path, platform: str = "m5product", split_version: str = "imported",
                     progress=None) -> ImportReport:
    """Read an M5Product-layout folder into ``store``.

    The folder is untrusted: only regular files inside it are read (:class:`LayoutFolder`), ids are
    checked (:func:`check_item_id`, :func:`check_product_id`), media are sniffed; a bad item is
    counted as failed with its reason and the run goes on; a file of the wrong shape is a
    :class:`LayoutError` raised before anything is written.

    Args:
        store: the target store (rows are upserted: importing twice changes nothing).
        folder: the layout's root (the caption JSON, images/, videos/, audios/, label files, lists).
        platform: platform name for item ids without an ``m5data_items.json`` entry.
        split_version: version name for the split lists found (train.txt, query.txt, ...).
        progress: called with (items done, items in all).
    """
    if not PLATFORM.match(platform):
        raise LayoutError(f"platform {platform!r} is not a platform name (letters, digits, '.', '_', '-')")
    with LayoutFolder(folder) as layout:
        return _import(store, layout, platform, split_version, progress)


def _import(store, folder: LayoutFolder, platform: str, split_version: str, progress) -> ImportReport:
    from ..storage.runs import StageStats, record_run

    stats = StageStats("import")
    # every file of the layout is read and checked before the first blob is written
    captions = _load(folder, find_captions(folder), {}, dict)
    labels = _load(folder, LABEL_LIST, [], list)
    if not all(isinstance(name, str) for name in labels):
        raise LayoutError(f"{folder.root / LABEL_LIST} is not a JSON array of strings")
    id_label = _load(folder, ID_LABEL, {}, dict)
    items = _load(folder, ITEMS, {}, dict).get("items", {})
    if not isinstance(items, dict):
        raise LayoutError(f"{folder.root / ITEMS}: 'items' is not a JSON object")
    lists = {split: _split_bytes(folder, name) for split, name in LIST_FILES.items() if name in folder.names}
    media_files = FolderMedia(folder)
    now = datetime.now(timezone.utc)
    products, specs, media, failed = [], [], [], []
    media_counts: Counter = Counter()
    pid_of: dict[str, str] = {}
    item_of: dict[str, str] = {}
    stats.n_in = len(captions)
    for n, (iid, rec) in enumerate(sorted(captions.items()), 1):
        try:
            pid, path, opened = _check_item(iid, rec, items, id_label, labels, platform, item_of, media_files)
        except ItemError as exc:
            stats.fail(exc.reason)
            failed.append(exc.detail)
        else:
            pid_of[iid] = pid
            plat, _, source = pid.partition(":")
            pairs = parse_pv(rec.get("pv"))
            specs += [{"product_id": pid, "position": i, "property": p, "value": v} for i, (p, v) in enumerate(pairs)]
            found = _store_media(store, pid, opened, now)
            for kind, row in found.items():
                media.append(row)
                media_counts[kind] += 1
            title = rec.get("title") or None
            products.append({
                "product_id": pid, "platform": plat, "source_id": source, "title": title,
                "category_path": path, "crawled_at": now,
                "content_hash": hashlib.sha256(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode()).hexdigest(),
                "has_image": "image" in found, "has_video": "video" in found, "has_caption": bool(title),
                "has_specs": bool(pairs), "run_id": stats.run_id,
            })
        if progress:
            progress(n, len(captions))
    splits = {}
    rows = []
    for split, data in lists.items():
        name = LIST_FILES[split]
        kept, bad = _split_rows(data, pid_of, captions, platform)
        if bad:
            stats.fail(f"{name}: line not a valid item id", bad)
            failed.append(f"{name}: {bad} line(s) not an item id")
        rows += [{"product_id": pid, "split": split, "version": split_version} for pid in kept]
        splits[split] = len(kept)
    store.blobs.sync()
    config = {"folder": str(folder.root), "platform": platform}
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
        record_run(store, stats, config)
        raise
    record_run(store, stats, {**config, "split_version": split_version})
    return ImportReport(stats, len(products), len(specs), media_counts, splits, split_version if rows else None, failed)


def _split_bytes(folder: LayoutFolder, name: str) -> bytes:
    try:
        return folder.read_bytes(name)
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None


def _check_item(iid: str, rec, items: dict, id_label: dict, labels: list[str], platform: str,
                item_of: dict[str, str], media_files: FolderMedia) -> tuple[str, list[str], list[MediaFile]]:
    """Everything about one item that can be wrong, checked before anything is stored:
    its product id, category path and open, sniffed media files (:class:`ItemError` if one is bad)."""
    check_item_id(iid)
    _check_caption(iid, rec)
    pid = check_product_id(iid, items.get(iid), platform)
    if pid in item_of:
        raise ItemError("product id taken by another item", f"item {iid!r}: {pid!r} is item {item_of[pid]!r}'s product id")
    path = _category_path(iid, id_label.get(iid), labels)
    opened = media_files.open(iid)
    item_of[pid] = iid
    return pid, path, opened


def _store_media(store, pid: str, opened: list[MediaFile], now) -> dict[str, dict]:
    """Copy the item's checked files into the blob store; its ``media`` rows by kind."""
    found = {}
    try:
        for f in opened:
            ref = _put(store, f.fh, f.sniffed.ext)
            if f.kind == "image":
                w, h = _image_size(store.blobs.path(ref.path))
                found["image"] = _media_row(pid, "image", "main", f.rel, ref, f.sniffed.mime, width=w, height=h, now=now)
            elif f.kind == "video":
                found["video"] = _media_row(pid, "video", "video", f.rel, ref, f.sniffed.mime, now=now)
            else:
                source_id = found["video"]["media_id"] if "video" in found else None
                found["audio"] = _media_row(pid, "audio", "derived", f.rel, ref, f.sniffed.mime, source_id, now=now)
    finally:
        for f in opened:
            f.fh.close()
    return found


@app.command("m5product")
def m5product(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="The M5Product-layout folder (caption JSON, images/, videos/, audios/ ...)."),
    platform: str = typer.Option("m5product", "--platform", help="Platform name for product ids (<platform>:<item id>)."),
    split_version: str = typer.Option("imported", "--split-version", help="Split version for train.txt, query.txt ... lists."),
) -> None:
    """Read an M5Product-layout folder into the store (products, specs, media blobs, category paths, split lists)."""
    from rich.markup import escape
    from ..console import Table

    from ..cli import open_store
    from ..console import console, fail, stage_summary

    store, _ = open_store(ctx, create=True)
    try:
        report = import_m5product(store, folder, platform=platform, split_version=split_version)
    except LayoutError as exc:
        fail(str(exc))
    console.print(stage_summary(report.stats))
    for line in report.failed[:SHOW_FAILED]:
        console.print(f"[yellow]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if len(report.failed) > SHOW_FAILED:
        console.print(f"[yellow]failed:[/] ... and {len(report.failed) - SHOW_FAILED:,} more", highlight=False)
    t = Table(title=f"imported {escape(str(folder))}")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("products", f"{report.products:,}")
    t.add_row("spec rows", f"{report.specs:,}")
    for kind, n in sorted(report.media.items()):
        t.add_row(f"media: {kind}", f"{n:,}")
    for split, n in report.splits.items():
        t.add_row(f"split {report.split_version}/{split}", f"{n:,}")
    console.print(t)
