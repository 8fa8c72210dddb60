"""The report's sample gallery: a few products per large category, their main image and video frames
copied beside the page. Blob paths are opened only through :func:`~m5data.storage.blobs.resolve_blob`;
each refused one counts as a ``BAD_BLOB`` failure."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..egress import gate
from ..storage import StageStats
from ..storage.blobs import BlobPathError, resolve_blob
from . import gallery_data
from .page import Html, empty, html, join, table

__all__ = ["BAD_BLOB", "gallery"]

BAD_BLOB = "blob path outside the store"  # the failure reason counted for each refused blob path
CATEGORIES = 6  # the top categories shown (by products with a downloaded image)
RESERVE = 6  # the next ones, whose picks and samples are kept for a later run (not shown)


def gallery(con, large, store, assets: Path, per_category: int, stats: StageStats, kept: dict | None = None,
            touched: set[str] | None = None, after=None, previous: Path | None = None) -> tuple[Html, bool, dict]:
    """The gallery section, and what lets the next run skip its reads (the picks and their samples).

    ``con``: the report's connection (the facts); ``large``: the store's views (:class:`~.build.Large`;
    ``large.of(con, ids)``, a connection with those of only the parts holding the products ``ids``: only
    when a pick is read).
    ``kept``: the last complete run's; ``touched``: the products whose rows were written since (None:
    unknown); ``after``: their flags now. The picks are moved from the kept ones by the touched products
    where they can be (:func:`.gallery_data.moved_picks`), else ranked from the flags; those of the next
    :data:`RESERVE` categories are kept too (not shown). A product picked again (in the same category) and not
    touched takes its sample from ``kept``; only the others are read (none: media and specs are not read);
    the cards are made anew. ``previous``: the last run's assets folder as it left it; a picture whose
    gate key (:func:`~m5data.egress.gate.picture_key`) is the one ``kept`` names for it is linked from there,
    not decoded and gated again.
    """
    if not per_category:
        return *empty_gallery(), {}
    # a taken-down product (storage/takedowns.py, the rule of the store's views) is never picked: one the
    # last run picked counts as touched and without an image now, so its category is moved or ranked again
    gone = gate.withheld_ids(store)  # the egress gate's: taken down or opted out since stored
    if gone and touched is not None:
        touched = touched | gone
        after = None if after is None else after.filter(pc.invert(pc.is_in(after.column("product_id"), pa.array(sorted(gone)))))
    kept_picks = ([(s["product_id"], s["category"]) for s in kept.get("samples", [])]
                  if kept and kept.get("per_category") == per_category else None)
    known = {}
    if kept_picks is not None and touched is not None:
        known = {(s["product_id"], s["category"]): gallery_data.Sample(**{**s, "specs": [tuple(kv) for kv in s["specs"]]})
                 for s in kept.get("samples", []) if s["product_id"] not in touched}
    top = gallery_data.top_categories(con, CATEGORIES + RESERVE)
    shown, spare = top[:CATEGORIES], top[CATEGORIES:]
    moved = (gallery_data.moved_picks(top, per_category, kept_picks, touched, after)
             if kept_picks is not None and touched is not None and after is not None else {})
    # the spare categories (the next ones by size) are kept with their samples, so one that enters the top
    # ones later is moved, not ranked and read (the 100k bench's night brought one in: 0.12 of its 0.63 CPU s).
    # A spare category is ranked and read only along with a read the shown ones need (a read's cost is per
    # part read, not per product); else only those whose samples are all known are kept.
    unmoved = [c for c in shown if c not in moved]
    reading = bool(unmoved) or any((pid, c) not in known for c in shown if c in moved for pid in moved[c])
    picks_of = moved | gallery_data.rank_picks(con, unmoved + ([c for c in spare if c not in moved] if reading else []),
                                       per_category, gone)
    picks = [(pid, cat) for cat in shown for pid in picks_of.get(cat, []) if pid not in gone]
    if not picks:
        return *empty_gallery(), {}
    kept_spare = [(pid, cat) for cat in spare
                  if cat in picks_of and (reading or all((pid, cat) in known for pid in picks_of[cat]))
                  for pid in picks_of[cat]]
    missing = [p for p in picks + kept_spare if p not in known]
    read = ({(s.product_id, s.category): s for s in gallery_data.gallery(large.of(con, [p for p, _ in missing]), missing)}
            if missing else {})
    samples = [known.get(p) or read[p] for p in picks]
    reuse = Reuse(previous, (kept or {}).get("assets") or {})
    memo = {"samples": [asdict(s) for s in samples + [known.get(p) or read[p] for p in kept_spare]],
            "per_category": per_category, "assets": reuse.keys}
    refused = stats.failures[BAD_BLOB]
    cards = []
    root = store.local_copy([r for s in samples for r in (s.image, s.frames)])  # on object storage: copies
    faces = gate.face_rows(store, [r for s in samples for r in (s.image, s.frames)])  # the gate blurs by them
    faces.update({("codes", b): r for b, r in gate.code_rows(store, [s.image for s in samples]).items()})  # and these
    for sample in samples:
        img = _asset(root, sample.image, assets, stats, faces, reuse)
        frames = [f for f in (_asset(root, fr, assets, stats, faces, reuse, folder, i)
                              for fr, folder, i in _frames(root, sample.frames, stats)) if f]
        specs = table(["property", "value"], [[p, v] for p, v in sample.specs]) if sample.specs else html('<p class="muted">no spec table</p>')
        cards.append(html(
            '<div class="card">{img}<div class="title">{title}</div><div class="cat">{pid} · {cat}</div>{frames}{specs}</div>',
            img=html('<img class="main" src="assets/{}" alt="main image of {}">', img, sample.product_id) if img else "",
            title=sample.title, pid=sample.product_id, cat=sample.category, specs=specs,
            frames=html('<div class="frames">{}</div>', join(html('<img src="assets/{}" alt="video frame">', f) for f in frames))
            if frames else ""))
    refused = stats.failures[BAD_BLOB] - refused
    note = html('<p class="muted">{} media paths outside the store were skipped.</p>', refused) if refused else ""
    return html('<p>{} products from the largest categories.</p>{}<div class="cards">{}</div>', len(samples), note,
                join(cards)), False, memo


def empty_gallery() -> tuple[Html, bool]:
    return empty("No products with a downloaded image yet.", "m5data download && m5data extract"), True


def _frames(root: Path, rel: str | None, stats: StageStats) -> list[tuple[str, str, int]]:
    """Up to four frame files (relative to the store) of a frames folder, evenly spaced."""
    if not rel:
        return []
    try:
        path = resolve_blob(root, rel)
    except BlobPathError:
        stats.fail(BAD_BLOB)
        return []
    files = sorted(path.glob("*.jpg")) if path.is_dir() else []
    step = max(1, len(files) // 4)
    # the listed names (not their link targets) go on to _asset, which checks each file again; with each, the
    # folder and the frame's index in it (its faces row's boxes are by index)
    return [(f"{rel.rstrip('/')}/{f.name}", rel, i) for i, f in list(enumerate(files))[::step][:4]]


@dataclass
class Reuse:
    """The last run's gallery pictures: its assets folder (None: not as it left it) and each picture's gate
    key then; ``keys`` collects this run's, for the next."""

    folder: Path | None
    last: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)

    def take(self, name: str, key: str, dst: Path) -> bool:
        """Link (or copy) the last run's ``name`` to ``dst`` when it was made with ``key``."""
        self.keys[name] = key
        src = self.folder / name if self.folder is not None and self.last.get(name) == key else None
        if src is None or not src.is_file() or src.is_symlink():
            return False
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return True


def _asset(root: Path, rel: str | None, assets: Path, stats: StageStats, faces: dict[str, dict], reuse: Reuse,
           folder: str | None = None, frame: int = 0) -> str | None:
    """Copy a store picture beside the page under a name derived from its path, as the egress gate lets it
    leave (its faces blurred; a video frame's boxes are those of its ``folder``'s row at index ``frame``),
    or link the last run's copy made from the same bytes, row and rules; None when it is missing or refused."""
    if not rel:
        return None
    try:
        src = resolve_blob(root, rel)
    except BlobPathError:
        stats.fail(BAD_BLOB)
        return None
    if not src.is_file():
        return None
    suffix = src.suffix.lower()
    # the name is ours: a hash and, only when it is a plain extension, the blob's (no quote or space can reach the page)
    name = hashlib.sha1(rel.encode()).hexdigest()[:16] + (suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else "")
    dst = assets / name
    if not dst.exists():
        data, row, still = src.read_bytes(), faces.get(folder or rel), folder is None  # a main image: its QR codes too
        codes = faces.get(("codes", rel)) if still else None
        if reuse.take(name, gate.picture_key(data, row, frame, codes, still), dst):
            return name
        data, _ = gate.picture(data, row, frame, codes, still)
        tmp = dst.with_name(dst.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dst)
    return name
