"""QR codes blurred in what an export writes (``export.blur_codes``, on by default): a QR code on a product
picture is a contact (a shop's WeChat, a phone number). The boxes come from the ``image_codes`` table
(the vision stage scans the normalised images it sees; m5data/vision/codes.py); the images an export writes
that no row covers are scanned here first and their rows written, as ``faces.py`` detects faces. Only the
main image is scanned and blurred (video frames: not yet). Barcodes are recorded and kept. The store's own
media are never changed."""

from __future__ import annotations

import pyarrow as pa

from .samples import Sample

BATCH = 200  # image_codes rows per write
_SCHEMA = pa.schema([("blob", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                     ("boxes", pa.list_(pa.list_(pa.float32())))])  # a picture's QR boxes, in its pixels


def _boxes_row(row: dict) -> dict:
    """An ``image_codes`` row as ``export_codes`` holds it: the picture's size and its QR boxes."""
    from ..vision.codes import qr_boxes

    return {"blob": row["blob"], "width": row["width"], "height": row["height"], "boxes": [list(b) for b in qr_boxes(row)]}


def load_codes(store, con) -> None:
    """Tables of ``con``: ``export_codes`` (blob, width, height, QR boxes) of the pictures with a QR code and
    ``export_codes_known``, every blob with a row; read once with ``store.read``."""
    found = store.read("image_codes", columns=["blob", "width", "height", "code_kind", "x0", "y0", "x1", "y1"])
    rows = [_boxes_row(r) for r in found.to_pylist() if "qr" in (r["code_kind"] or [])]
    con.register("export_codes_known_rows", found.select(["blob"]))
    con.register("export_codes_rows", pa.Table.from_pylist(rows, schema=_SCHEMA))
    try:
        con.execute("CREATE OR REPLACE TABLE export_codes_known AS SELECT DISTINCT blob FROM export_codes_known_rows")
        con.execute("CREATE OR REPLACE TABLE export_codes AS SELECT * FROM export_codes_rows")
    finally:
        con.unregister("export_codes_known_rows")
        con.unregister("export_codes_rows")


def scan_missing(store, con, members_sql: str) -> int:
    """Scan the main pictures of the samples ``members_sql`` names that have no ``image_codes`` row, write
    their rows and add their QR boxes to ``export_codes``; how many were scanned."""
    from ..vision.codes import scan_file
    from .media import file_of, missing_sql, shard_blobs

    # the written samples' pictures without a row: a normalised image, or a JPEG original where a product has none
    todo = con.execute(missing_sql(members_sql, ("image_norm", "image"), "export_codes_known")).fetchall()
    done = 0
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        holders = [Sample(pid, None, None, None, None, image=blob) for blob, _kind, _mid, pid in chunk]
        rows = []
        with shard_blobs(str(store.root), holders) as root:  # a store on object storage: a local copy
            for blob, kind, media_id, pid in chunk:
                path = file_of(root, blob)
                row = scan_file(blob, path, kind=kind, media_id=media_id, product_id=pid) if path is not None else None
                if row is not None:
                    rows.append(row)
        if rows:
            store.write("image_codes", rows)
            found = [_boxes_row(r) for r in rows if r["qr_codes"]]
            if found:
                con.register("export_codes_new", pa.Table.from_pylist(found, schema=_SCHEMA))
                try:
                    con.execute("INSERT INTO export_codes SELECT * FROM export_codes_new")
                finally:
                    con.unregister("export_codes_new")
        done += len(rows)
    return done


def attach(con, samples: list[Sample]) -> list[Sample]:
    """``samples``, each with the QR boxes of its main image (``Sample.codes``) from ``export_codes``."""
    blobs = sorted({s.image for s in samples if s.image})
    if not blobs:
        return samples
    rows = con.execute("SELECT blob, width, height, boxes FROM export_codes WHERE blob IN (SELECT unnest(?::VARCHAR[]))",
                       [blobs]).fetchall()
    found = {blob: ((w, h), [tuple(b) for b in boxes]) for blob, w, h, boxes in rows}
    for s in samples:
        if s.image in found:
            s.codes = found[s.image]
    return samples


