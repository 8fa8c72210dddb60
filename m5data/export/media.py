"""A sample's media in the store: reading its blobs (a missing one drops its modality, counted), clearing
paths that lead outside the store, a frames folder's files in time order, and the folder a shard's
writer reads the media from (a local copy for a store on object storage)."""

from __future__ import annotations

import json
from pathlib import Path

from ..storage.blobs import BlobPathError, resolve_blob
from .samples import Sample


def read_blob(store_root: Path, sample: Sample, attr: str, what: str, failures) -> bytes | None:
    """The bytes of the sample's ``attr`` blob; a file missing from the store is counted in
    ``failures`` (``missing <what> blob``) and cleared from ``sample``, so its modality goes."""
    rel = getattr(sample, attr)
    if not rel:
        return None
    try:
        return resolve_blob(store_root, rel).read_bytes()
    except BlobPathError:
        failures[f"{what} blob path outside the store"] += 1
        setattr(sample, attr, None)
        return None
    except OSError:
        failures[f"missing {what} blob"] += 1
        setattr(sample, attr, None)
        return None


MEDIA_ATTRS = ("image", "frames", "mfcc", "mp3", "video")  # the Sample fields that hold blob paths


def drop_outside_blobs(store_root: Path, sample: Sample, failures) -> None:
    """Clear each media path of ``sample`` that leads outside the store's blob areas (absolute,
    ``..``, a symlink out: :func:`~m5data.storage.blobs.resolve_blob`), counting ``<field> blob
    path outside the store``: no layout ever reads or names a file the store does not hold."""
    for attr in MEDIA_ATTRS:
        rel = getattr(sample, attr)
        if not rel:
            continue
        try:
            resolve_blob(store_root, rel)
        except BlobPathError:
            failures[f"{attr} blob path outside the store"] += 1
            setattr(sample, attr, None)


def frame_files(store_root: Path, frames_blob: str, failures=None) -> list[Path]:
    """The JPEG frames of a frames folder, in time order (``000001.jpg`` ...); [] when the folder is gone.

    A file the folder's ``frames.json`` names outside the folder, or a frame that is a symlink
    leading out of it, is left out (counted in ``failures`` as ``frame file outside its frames folder``).
    """
    try:
        folder = resolve_blob(store_root, frames_blob)
    except BlobPathError:
        return []
    if not folder.is_dir():
        return []
    paths = None
    listing = folder / "frames.json"
    if listing.is_file():
        try:
            names = json.loads(listing.read_text()).get("files")
            if names:
                paths = [folder / str(n) for n in names]
        except (ValueError, AttributeError, OSError):
            pass
    if paths is None:
        paths = sorted(folder.glob("*.jpg"))
    inside = []
    for path in paths:
        # folder is resolved: a name with a slash or '..', an absolute one or a symlink out is not in it
        # (one lstat a frame; only a symlink is resolved)
        if (path.parent == folder and path.name not in (".", "..")
                and (not path.is_symlink() or path.resolve().parent == folder)):
            inside.append(path)
        elif failures is not None:
            failures["frame file outside its frames folder"] += 1
    return inside


def frame_field(index: int, total: int) -> str:
    """WebDataset field of frame ``index`` (0-based, aligned with ``mfcc[index]``): ``frame000.jpg``."""
    return f"frame{index:0{max(3, len(str(total - 1)))}d}.jpg"


def shard_blobs(store_root: str, samples: list[Sample]):
    """The store folder a shard's writer reads its samples' media from: the store's own folder, or,
    for a store on object storage, a temp folder under TMPDIR holding just those media (removed after)."""
    from ..storage.location import blob_folder

    return blob_folder(store_root, [getattr(s, a) for s in samples for a in MEDIA_ATTRS])


def file_of(root: Path, blob: str) -> Path | None:
    """The file of picture ``blob`` under ``root``; None when it is missing or its path leads outside the store."""
    try:
        path = resolve_blob(root, blob)
    except BlobPathError:
        return None
    return path if path.is_file() else None


# the written samples' pictures without a faces row: a normalised image, a JPEG original where a product
# has no normalised image (the sample's image then), a frames folder; ``export_faces_known`` holds every blob
# with a faces row (read once with the boxes: the faces view's newest-row window cost 20 s at 100k products)
_MISSING_SQL = """
WITH m AS (SELECT DISTINCT product_id FROM ({members})),
mm AS (SELECT media.* FROM media JOIN m USING (product_id) WHERE {media_filter})
SELECT blob, min(kind) AS kind, min(media_id) AS media_id, min(product_id) AS product_id
FROM mm
WHERE kind IN ({kinds})
  AND (kind <> 'image' OR product_id NOT IN (SELECT product_id FROM mm WHERE kind = 'image_norm'))
  AND blob NOT IN (SELECT blob FROM {known})
GROUP BY blob ORDER BY blob
"""  # {kinds}, {known}: export/codes.py asks the same of its own table, for still pictures only


def missing_sql(members_sql: str, kinds: tuple[str, ...], known: str) -> str:
    """SQL of the written samples' pictures of ``kinds`` whose blob is not in table ``known``."""
    from .members import MEDIA_FILTER

    return _MISSING_SQL.format(members=members_sql, media_filter=MEDIA_FILTER,
                               kinds=", ".join(f"'{k}'" for k in kinds), known=known)
