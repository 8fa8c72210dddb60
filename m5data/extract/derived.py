"""The rows an extract job hands back: derived media rows (ids, file paths, meta, failures) and the
job's result with one outcome per item and kind (see jobs.py for the table of derived kinds)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..storage.blobs import BlobPathError, resolve_blob
from ..storage.media_ids import derived_id
from .ffmpeg import MediaError

__all__ = ["DERIVED_KINDS", "KINDS", "JobResult", "Outcome", "blob_sha", "crashed", "derived_dir", "derived_id",
           "derived_row", "failed_rows", "merge_meta", "now_utc", "source_file"]

KINDS = ("video", "audio", "image", "text")
DERIVED_KINDS = ("frames", "audio", "mfcc", "image_norm")


@dataclass
class Outcome:
    kind: str  # video, audio, image, text
    status: str  # ok, absent, corrupt, too_large, failed, empty
    reason: str = ""


@dataclass
class JobResult:
    """Rows to write and what happened, per kind."""

    media: list[dict] = field(default_factory=list)
    captions: list[dict] = field(default_factory=list)
    faces: list[dict] = field(default_factory=list)  # rows of the faces table (normalised images, frames)
    outcomes: list[Outcome] = field(default_factory=list)
    bytes: int = 0


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


_HASH = re.compile(r"[0-9a-fA-F]{16,128}")


def blob_sha(row: dict) -> str:
    """The source's content hash: the row's sha256, else the content-addressed blob name.

    It names derived files (``derived/frames/<sha[:2]>/<sha>``), so a value that is not a hex
    hash (a row's ``sha256`` of ``../../x``) is never used: the hash of the blob path stands in.
    """
    for candidate in (row.get("sha256"), Path(row["blob"]).name.split(".")[0]):
        if candidate and _HASH.fullmatch(candidate):
            return candidate
    return hashlib.sha256(str(row["blob"]).encode("utf-8", "surrogateescape")).hexdigest()


def source_file(root: Path, src: dict) -> tuple[Path | None, MediaError | None]:
    """The file of a source media row, inside the store's blob areas
    (:func:`~m5data.storage.blobs.resolve_blob`), or the error that fails its item: a path that
    leads outside the store (absolute, ``..``, a symlink out) or a file that is gone."""
    try:
        path = resolve_blob(root, src["blob"])
    except BlobPathError as exc:
        return None, MediaError("blob path outside the store", str(exc), status="failed")
    if not path.is_file():
        return None, MediaError("blob missing", f"{src['blob']} is not in the store", status="failed")
    return path, None


def merge_meta(meta: str | None, extra: dict) -> str:
    try:
        base = json.loads(meta) if meta else {}
    except ValueError:
        base = {"_unparsed": meta}
    if not isinstance(base, dict):
        base = {"_value": base}
    base.update(extra)
    return json.dumps(base, ensure_ascii=False, sort_keys=True)


def derived_row(src: dict, kind: str, now: datetime, **cols) -> dict:
    row = {"media_id": derived_id(src["media_id"], kind), "product_id": src["product_id"], "kind": kind,
           "role": "derived", "position": src.get("position"), "source_media_id": src["media_id"],
           "updated_at": now}
    meta = cols.pop("meta", {})
    row.update(cols)
    row["meta"] = json.dumps({"source_blob": src["blob"], **meta}, ensure_ascii=False, sort_keys=True)
    return row


def failed_rows(src: dict, kinds: list[str], exc: MediaError | str, now: datetime) -> list[dict]:
    error = str(exc)
    return [derived_row(src, k, now, status="failed", error=error) for k in kinds]


def derived_dir(kind_dir: str, sha: str) -> str:
    return f"derived/{kind_dir}/{sha[:2]}/{sha}"


def crashed(kind: str, payload, error: str) -> JobResult:
    """The result for a job whose worker raised or died: its derived rows become ``failed``."""
    now = now_utc()
    result = JobResult()
    if kind == "text":
        result.outcomes = [Outcome("text", "failed", "worker error") for _ in payload]
        return result
    row = payload["row"] if kind == "video" else payload
    if kind == "audio":
        derived, kinds = ["audio", "mfcc"], ["audio"]
    elif kind == "video":
        derived = (["frames"] if payload["frames"] else []) + (["audio", "mfcc"] if payload["audio"] else [])
        kinds = [k for k, on in (("video", payload["frames"]), ("audio", payload["audio"])) if on]
    else:
        derived, kinds = ["image_norm"], ["image"]
    result.media = failed_rows(row, derived, f"{row['blob']}: worker error: {error}", now)
    result.outcomes = [Outcome(k, "failed", "worker error") for k in kinds]
    return result
