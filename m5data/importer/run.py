"""The import of an M5Product-layout folder into a store: every file checked, then the items in
batches (checked, media blobs synced, rows written), then the split lists; one ``runs`` row."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..export.m5product_format import ID_LABEL, ITEMS, LABEL_LIST, LIST_FILES, parse_pv
from ..storage.media_ids import imported_media_id
from . import limits
from .checks import check_item
from .layout_files import find_captions, load_json
from .layout_folder import ITEM_ID, PLATFORM, FolderMedia, ItemError, LayoutError, LayoutFolder, MediaFile
from .staging import Staging


@dataclass
class ImportReport:
    stats: object  # StageStats
    products: int
    specs: int
    media: Counter
    splits: dict[str, int]
    split_version: str | None
    failed: list[str] = field(default_factory=list)  # the first limits.MAX_FAILED lines naming a failed item or list
    failed_total: int = 0  # such lines in all


def _media_row(product_id: str, kind: str, role: str, rel: str, ref, mime: str, source: str | None = None,
               width: int | None = None, height: int | None = None, now=None) -> dict:
    return {"media_id": imported_media_id(product_id, kind, rel), "product_id": product_id, "kind": kind, "role": role, "position": 0, "url": None,
            "source_media_id": source, "blob": ref.path, "sha256": ref.sha256, "mime": mime, "bytes": ref.bytes,
            "width": width, "height": height, "status": "ok", "attempts": 0,
            "meta": json.dumps({"imported_from": rel}), "updated_at": now}


def _put(store, fh, ext: str, size: int):
    """Copy the first ``size`` bytes of an open file (its checked size: a file that grew since is cut
    there) into the blob store without a per-blob fsync (one ``blobs.sync()`` before the rows)."""
    fh.seek(0)
    left = size
    with store.blobs.writer(ext, sync=False) as w:
        while left > 0 and (chunk := fh.read(min(1 << 20, left))):
            w.write(chunk)
            left -= len(chunk)
        return w.commit()


def _image_size(store, rel: str) -> tuple[int | None, int | None]:
    """Width and height from the stored blob's header (a local file, or a streaming reader of the object)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with store.blobs.open(rel) as fh, Image.open(fh) as im:
            return im.width, im.height
    except (UnidentifiedImageError, OSError):
        return None, None


class _Failures:
    """Failure lines: the first ``limits.MAX_FAILED`` kept, all counted."""

    def __init__(self):
        self.lines: list[str] = []
        self.total = 0

    def add(self, line: str) -> None:
        self.total += 1
        if len(self.lines) < limits.MAX_FAILED:
            self.lines.append(line)


def import_m5product(store, folder: str | Path, platform: str = "m5product", split_version: str = "imported",
                     progress=None, max_bytes: dict[str, int] | None = None) -> ImportReport:
    """Read an M5Product-layout folder into ``store``.

    The folder is untrusted: only regular files inside it are read (:class:`LayoutFolder`), ids are
    checked (:func:`check_item_id`, :func:`check_product_id`), media are sniffed; a bad item is
    counted as failed with its reason and the run goes on; a file of the wrong shape is a
    :class:`LayoutError` raised before anything is written. Memory is bounded (``BATCH`` items at a
    time; the entries are staged in DuckDB); rows are written batch by batch, so a killed import
    leaves whole parts, and a re-run upserts the same rows.

    Args:
        store: the target store (rows are upserted: importing twice changes nothing).
        folder: the layout's root (the caption JSON, images/, videos/, audios/, label files, lists).
        platform: platform name for item ids without an ``m5data_items.json`` entry.
        split_version: version name for the split lists found (train.txt, query.txt, ...).
        progress: called with (items done, items in all).
        max_bytes: the largest media file of each kind imported (image, video, audio); None: the
            download stage's defaults (``download.max_image_bytes``, ``max_video_bytes`` for both others).
    """
    if not PLATFORM.match(platform):
        raise LayoutError(f"platform {platform!r} is not a platform name (letters, digits, '.', '_', '-')")
    with LayoutFolder(folder) as layout:
        return _import(store, layout, platform, split_version, progress, max_bytes or media_caps(None))


def media_caps(settings) -> dict[str, int]:
    """The import's cap per media kind: the download stage's (settings None: their defaults)."""
    from ..config import DownloadSettings

    dl = settings.download if settings is not None else DownloadSettings()
    return {"image": dl.max_image_bytes, "video": dl.max_video_bytes, "audio": dl.max_video_bytes}


def _import(store, folder: LayoutFolder, platform: str, split_version: str, progress,
            max_bytes: dict[str, int]) -> ImportReport:
    from ..stage_run import record
    from ..storage.runs import StageStats

    stats = StageStats("import")  # its runs row: record (no lock: as appends, beside any stage)
    captions_name = find_captions(folder)
    with Staging(store) as stage:
        # every file of the layout is read and checked before the first blob is written
        stage.json(folder, captions_name, "captions")
        labels = load_json(folder, LABEL_LIST, [], list)
        if not all(isinstance(name, str) for name in labels):
            raise LayoutError(f"{folder.root / LABEL_LIST} is not a JSON array of strings")
        if ID_LABEL in folder.names:
            stage.json(folder, ID_LABEL, "labels")
        if ITEMS in folder.names:
            stage.json(folder, ITEMS, "items", "items")
        bad_lines = stage.lines(folder)
        media_files = FolderMedia(folder, max_bytes)
        failed = _Failures()
        out = {"products": 0, "specs": 0, "bytes": 0, "media": Counter()}
        config = {"folder": str(folder.root), "platform": platform}
        try:
            total = stats.n_in = stage.count()
            done = 0
            for batch in _batches(stage.entries()):
                _import_batch(store, stage, batch, labels, platform, media_files, stats, failed, out)
                stats.n_out, stats.bytes = out["products"], out["bytes"]
                if progress:
                    for _ in batch:
                        done += 1
                        progress(done, total)
            splits = _import_splits(store, stage, bad_lines, platform, split_version, stats, failed)
            stats.finish("ok")
        except BaseException:
            record(store, stats, config, "failed")
            raise
    record(store, stats, {**config, "split_version": split_version})
    return ImportReport(stats, out["products"], out["specs"], out["media"], splits,
                        split_version if sum(splits.values()) else None, failed.lines, failed.total)


def _batches(entries):
    batch = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= limits.BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_batch(store, stage: Staging, batch: list[tuple], labels: list[str], platform: str,
                  media_files: FolderMedia, stats, failed: _Failures, out: dict) -> None:
    """Check, store the media of, and write the rows of one batch of items (in item id order)."""
    pids = []  # every product id this batch may claim (and some it cannot: those fail their checks)
    for iid, _rec, entry, _label in batch:
        pid = entry.get("product_id") if isinstance(entry, dict) else None
        pid = pid if isinstance(pid, str) else f"{platform}:{iid}"
        if pid.isprintable():  # a valid product id is
            pids.append(pid)
    item_of = stage.taken(pids)  # claimed by an earlier batch; then by this one, in order
    now = datetime.now(timezone.utc)
    products, specs, media, accepted = [], [], [], []
    for iid, rec, entry, label in batch:
        try:
            pid, path, opened = check_item(iid, rec, entry, label, labels, platform, item_of, media_files)
        except ItemError as exc:
            stats.fail(exc.reason)
            failed.add(exc.detail)
            continue
        accepted.append((pid, iid))
        plat, _, source = pid.partition(":")
        pairs = parse_pv(rec.get("pv"))
        specs += [{"product_id": pid, "position": i, "property": p, "value": v} for i, (p, v) in enumerate(pairs)]
        found = _store_media(store, pid, opened, now)
        for kind, row in found.items():
            media.append(row)
            out["media"][kind] += 1
            out["bytes"] += row["bytes"] or 0
        title = rec.get("title") or None
        products.append({
            "product_id": pid, "platform": plat, "source_id": source, "title": title,
            "category_path": path, "crawled_at": now,
            "content_hash": hashlib.sha256(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode()).hexdigest(),
            "has_image": "image" in found, "has_video": "video" in found, "has_caption": bool(title),
            "has_specs": bool(pairs), "run_id": stats.run_id,
        })
    store.blobs.sync()  # the batch's blobs are durable before any row names them
    for table, rows in (("products", products), ("specs", specs), ("media", media)):
        if rows:
            with store.writer(table) as w:
                w.write(rows)
    stage.accept(accepted)
    out["products"] += len(products)
    out["specs"] += len(specs)


def _import_splits(store, stage: Staging, bad_lines: dict[str, int], platform: str, split_version: str,
                   stats, failed: _Failures) -> dict[str, int]:
    """Write the split lists' ``splits`` rows (one write: the version's rows replace its earlier ones);
    rows per list. A failed item's lines go with it; an id with no caption entry becomes
    ``<platform>:<id>``; a line that is no item id (not UTF-8, or not the pattern) is counted."""
    names = list(LIST_FILES)
    splits = {split: 0 for split in bad_lines}
    bad = dict(bad_lines)
    rows = []
    with store.writer("splits") as w:
        for k, line, pid, known in stage.split_lines():
            split = names[k]
            if pid is None:
                if known:
                    continue  # a failed item, counted once as such
                iid = line.decode("utf-8")
                if not ITEM_ID.match(iid):
                    bad[split] += 1
                    continue
                pid = f"{platform}:{iid}"
            rows.append({"product_id": pid, "split": split, "version": split_version})
            splits[split] += 1
            if len(rows) >= limits.BATCH:
                w.write(rows)
                rows = []
        if rows:
            w.write(rows)
    for split, n in bad.items():
        if n:
            name = LIST_FILES[split]
            stats.fail(f"{name}: line not a valid item id", n)
            failed.add(f"{name}: {n} line(s) not an item id")
    return splits


def _store_media(store, pid: str, opened: list[MediaFile], now) -> dict[str, dict]:
    """Copy the item's checked files into the blob store; its ``media`` rows by kind."""
    found = {}
    try:
        for f in opened:
            ref = _put(store, f.fh, f.sniffed.ext, f.size)
            if f.kind == "image":
                w, h = _image_size(store, ref.path)
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
