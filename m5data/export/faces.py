"""Faces blurred in what an export writes (``export.blur_faces``): the boxes of the ``faces`` table, detected
first for the media an export would write that extract did not look at, then applied to each layout's
copy of a main image and of every frame. The store's own media are never changed."""

from __future__ import annotations

from pathlib import Path

from .samples import Sample

DETECTED_KINDS = ("image_norm", "image", "frames")  # the media a sample's image and frames come from
BATCH = 200  # faces rows per write

# the members' pictures without a faces row: a normalised image, a JPEG original where a product has no
# normalised image (the sample's image then), a frames folder
_MISSING_SQL = """
WITH m AS (SELECT DISTINCT product_id FROM ({members}))
SELECT blob, min(kind) AS kind, min(media_id) AS media_id, min(product_id) AS product_id
FROM media JOIN m USING (product_id)
WHERE {media_filter} AND kind IN ('image_norm', 'image', 'frames')
  AND (kind <> 'image' OR product_id NOT IN (SELECT product_id FROM media WHERE kind = 'image_norm' AND status = 'ok'))
  AND blob NOT IN (SELECT blob FROM faces)
GROUP BY blob ORDER BY blob
"""


def detect_missing(store, members) -> int:
    """Detect the faces of the members' pictures that have no ``faces`` row yet and write their rows;
    how many pictures were looked at. (Extract detects them as it makes them: here only what it did
    not, such as media extracted with ``extract.detect_faces`` off or before the table existed.)"""
    from ..faces.boxes import detect_files
    from .media import frame_files, shard_blobs
    from .members import MEDIA_FILTER, READS

    con = store.connect(only=("media", "faces") + READS, cursor=True)
    try:
        todo = con.execute(_MISSING_SQL.format(members=members.sql(), media_filter=MEDIA_FILTER)).fetchall()
    finally:
        con.close()
    done = 0
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        holders = [Sample(pid, None, None, None, None, **{"frames" if kind == "frames" else "image": blob})
                   for blob, kind, _mid, pid in chunk]
        rows = []
        with shard_blobs(str(store.root), holders) as root:  # a store on object storage: a local copy
            for blob, kind, media_id, pid in chunk:
                paths = frame_files(root, blob) if kind == "frames" else [_file(root, blob)]
                if paths and all(p is not None for p in paths):
                    row = detect_files(blob, paths, kind=kind, media_id=media_id, product_id=pid)
                    if row is not None:
                        rows.append(row)
        if rows:
            store.write("faces", rows)
        done += len(rows)
    return done


def _file(root: Path, blob: str) -> Path | None:
    from ..storage.blobs import BlobPathError, resolve_blob

    try:
        path = resolve_blob(root, blob)
    except BlobPathError:
        return None
    return path if path.is_file() else None


def boxes_args(store, con, members, stats, options: dict, make):
    """``make`` (the shard writes' arguments from ``(shard, samples)``) with the samples' boxes attached
    (``Sample.faces``), after detecting what extract did not look at (``stats.details["faces_detected"]``);
    ``make`` itself when faces are not blurred or no shard is written (``con`` None).

    The boxes of the pictures with faces go into a table of ``con`` (the export's stream connection) once,
    and each shard reads its own from there."""
    if con is None or not options.get("blur_faces"):
        return make
    stats.details["faces_detected"] = detect_missing(store, members)
    load_boxes(store, con)
    return lambda sh, samples: make(sh, _attach(con, samples))


def load_boxes(store, con) -> None:
    """Table ``export_faces`` of ``con``: the ``faces`` rows with faces (their boxes), which shards read.
    They are read on a connection of their own, closed after: read through the export's connection
    (the newest row per key of every part), the scan's memory stayed in it for the whole export
    (bench_scale at 100k: export-webdataset's peak 0.84 -> 1.25 GiB; docs/export.md)."""
    found = store.read("faces", columns=["blob", "width", "height", "frame", "x0", "y0", "x1", "y1"],
                       where="n_faces > 0")
    con.register("export_faces_rows", found)
    try:
        con.execute("CREATE OR REPLACE TABLE export_faces AS SELECT * FROM export_faces_rows")
    finally:
        con.unregister("export_faces_rows")


def _attach(con, samples: list[Sample]) -> list[Sample]:
    """``samples``, each with the boxes of its image and frames (``Sample.faces``) from ``export_faces``."""
    from ..faces.boxes import boxes_by_frame

    blobs = {b for s in samples for b in (s.image, s.frames) if b}
    if not blobs:
        return samples
    cur = con.execute("SELECT * FROM export_faces WHERE blob IN (SELECT unnest(?::VARCHAR[]))", [sorted(blobs)])
    cols = [d[0] for d in cur.description]
    found = {r["blob"]: r for r in (dict(zip(cols, row)) for row in cur.fetchall())}
    for s in samples:
        for attr in ("image", "frames"):
            if (row := found.get(getattr(s, attr))) is not None:
                s.faces[attr] = ((row["width"], row["height"]), boxes_by_frame(row))
    return samples


def blurred(sample: Sample, attr: str, data: bytes, frame: int = 0) -> bytes:
    """``data`` (the sample's ``image``, or frame ``frame`` of its ``frames``) with its faces blurred,
    counted in ``sample.blurred``; the very bytes where it has none."""
    from ..faces.boxes import blur_jpeg

    size, boxes = sample.faces.get(attr, (None, {}))
    if not boxes.get(frame):
        return data
    out, n = blur_jpeg(data, boxes[frame], size)
    sample.blurred += n
    return out
