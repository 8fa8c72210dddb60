"""Faces blurred in what an export writes (``export.blur_faces``): the boxes of the ``faces`` table, detected
first for the media an export would write that extract did not look at, then applied to each layout's
copy of a main image and of every frame. The store's own media are never changed."""

from __future__ import annotations

from .samples import Sample

DETECTED_KINDS = ("image_norm", "image", "frames")  # the media a sample's image and frames come from
BATCH = 200  # faces rows per write
# past this many parts the export that wrote one more compacts ``faces`` (as ``runs`` does): its writes of
# BATCH rows left 501 parts at 100k products, and every read of the table's view then took ~9 s
FACES_PARTS = 32

def detect_missing(store, con, members_sql: str, frames: str = "changed") -> int:
    """Detect the faces of the pictures of the samples ``members_sql`` names (their ``(split, product_id)``
    rows: the samples an export writes) that have no ``faces`` row yet, and write their rows; how many
    pictures were looked at. (Extract detects them as it makes them: here only what it did not, such as
    media extracted with ``extract.detect_faces`` off or before the table existed.) ``con``: the export's
    stream connection, with ``export_faces_known`` (:func:`load_boxes`); one query, no loop over samples.
    ``frames``: the frames of a folder looked at, ``faces.frames``: the one policy of the ``faces`` table,
    extract's too (rows of either stage are alike)."""
    from ..faces.boxes import detect_files
    from .media import file_of, frame_files, missing_sql, shard_blobs

    todo = con.execute(missing_sql(members_sql, DETECTED_KINDS, "export_faces_known")).fetchall()
    done = 0
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        holders = [Sample(pid, None, None, None, None, **{"frames" if kind == "frames" else "image": blob})
                   for blob, kind, _mid, pid in chunk]
        rows = []
        with shard_blobs(str(store.root), holders) as root:  # a store on object storage: a local copy
            for blob, kind, media_id, pid in chunk:
                paths = frame_files(root, blob) if kind == "frames" else [file_of(root, blob)]
                if paths and all(p is not None for p in paths):
                    row = detect_files(blob, paths, kind=kind, media_id=media_id, product_id=pid, frames=frames)
                    if row is not None:
                        rows.append(row)
        if rows:
            store.write("faces", rows)
            _add_boxes(con, [r for r in rows if r.get("n_faces")])
        done += len(rows)
    if done:
        _compact(store)
    return done


def _compact(store) -> None:
    """Compact ``faces`` when it holds over :data:`FACES_PARTS` parts and no other writer rewrites it (one
    that is: its compaction serves this one too; a compaction that cannot be made leaves the rows written)."""
    from ..storage import StoreError

    if store.parts_after_write("faces") > FACES_PARTS:
        try:
            store.compact("faces", wait=0)
        except StoreError:
            pass


def boxes_args(store, con, members_sql: str, stats, options: dict, make, frames: str = "changed"):
    """``make`` (the shard writes' arguments from ``(shard, samples)``) with the samples' boxes attached
    (``Sample.faces``), after detecting what extract did not look at in the samples to write (``members_sql``:
    their ``(split, product_id)``; ``stats.details["faces_detected"]``; ``frames``: ``faces.frames``); ``make`` itself when faces are not
    blurred or no shard is written (``con`` None).

    The boxes of the pictures with faces go into a table of ``con`` (the export's stream connection) once,
    and each shard reads its own from there."""
    from . import codes

    faces, qr = options.get("blur_faces"), options.get("blur_codes")
    if con is None or not (faces or qr):
        return make
    if faces:
        load_boxes(store, con)
        stats.details["faces_detected"] = detect_missing(store, con, members_sql, frames)
    if qr:  # export.blur_codes: the QR codes of the main images (codes.py)
        codes.load_codes(store, con)
        stats.details["codes_scanned"] = codes.scan_missing(store, con, members_sql)

    def with_boxes(sh, samples):
        if faces:
            samples = _attach(con, samples)
        return make(sh, codes.attach(con, samples) if qr else samples)

    return with_boxes


def written_sql(con, delta, members) -> str | None:
    """SQL of the ``(split, product_id)`` of the samples an export writes: an incremental export's new and
    changed ones (a table of ``con``), else every member; None without a connection (nothing written)."""
    if con is None:
        return None
    if delta is None:
        return members.sql()
    con.register("export_written", delta.digests.select(["split", "product_id"]))
    return "SELECT split, product_id FROM export_written"


_BOX_COLUMNS = ["blob", "width", "height", "frame", "x0", "y0", "x1", "y1"]


def load_boxes(store, con) -> None:
    """Tables of ``con``: ``export_faces``, the ``faces`` rows with faces (their boxes), which shards read, and
    ``export_faces_known``, every blob with a row. Read once with ``store.read`` (the newest row per key over
    the parts), not through the export's connection: its scan's memory stayed in it for the whole export
    (bench_scale at 100k: export-webdataset's peak 0.84 -> 1.25 GiB; docs/export.md)."""
    found = store.read("faces", columns=[*_BOX_COLUMNS, "n_faces"])
    con.register("export_faces_rows", found)
    try:
        con.execute("CREATE OR REPLACE TABLE export_faces_known AS SELECT DISTINCT blob FROM export_faces_rows")
        con.execute(f"CREATE OR REPLACE TABLE export_faces AS SELECT {', '.join(_BOX_COLUMNS)} FROM export_faces_rows "
                    "WHERE n_faces > 0")
    finally:
        con.unregister("export_faces_rows")


def _add_boxes(con, rows: list[dict]) -> None:
    """The boxes of pictures just detected, into ``export_faces``."""
    import pyarrow as pa

    if not rows:
        return
    con.register("export_faces_new", pa.Table.from_pylist([{c: r.get(c) for c in _BOX_COLUMNS} for r in rows]))
    try:
        con.execute("INSERT INTO export_faces SELECT * FROM export_faces_new")
    finally:
        con.unregister("export_faces_new")


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
    """``data`` (the sample's ``image``, or frame ``frame`` of its ``frames``) with its faces blurred, counted
    in ``sample.blurred``, and a main image's QR codes (``sample.codes``, codes.py), counted in
    ``sample.codes_blurred``; the very bytes where it has none."""
    from ..faces.boxes import blur_jpeg

    size, boxes = sample.faces.get(attr, (None, {}))
    out = data
    if boxes.get(frame):
        out, n = blur_jpeg(out, boxes[frame], size)
        sample.blurred += n
    if attr == "image" and sample.codes:
        (w, h), qr = sample.codes
        out, n = blur_jpeg(out, qr, (w, h))
        sample.codes_blurred += n
    return out
