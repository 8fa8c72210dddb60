"""QR codes and barcodes in a picture: their boxes and what they say (OpenCV: ``QRCodeDetector`` and its
ArUco-based twin for QR codes, ``barcode.BarcodeDetector`` for EAN/UPC barcodes; no model file).

A QR code is a contact (a shop's WeChat, a phone number, a URL): the export blurs every one it finds
(``export.blur_codes``, on by default) as it blurs faces, and the ``image_codes`` table records each
picture scanned (one row per picture, like ``faces``). A QR code found but not decoded is blurred
too: another reader may decode what OpenCV's does not. Barcodes are recorded and kept (a product's
EAN is not personal data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

QR, BARCODE = "qr", "barcode"


def scanner() -> str:
    """What scanned (kept in each row): the readers and OpenCV's version."""
    import cv2

    return f"opencv {cv2.__version__} QRCodeDetector + QRCodeDetectorAruco + BarcodeDetector"


@dataclass(frozen=True)
class Code:
    kind: str  # qr or barcode
    value: str | None  # what it says; None when found but not decoded
    x0: float
    y0: float
    x1: float
    y1: float


def _box(points) -> tuple[float, float, float, float]:
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a: tuple, b: tuple) -> bool:
    """Two boxes cover one code: over half of the smaller one lies in the other."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return small > 0 and w * h > 0.5 * small


def scan(bgr) -> list[Code]:
    """The QR codes (decoded where OpenCV can) and barcodes of a BGR picture."""
    import cv2

    found: list[Code] = []
    ok, values, points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(bgr)
    if ok and points is not None:
        for value, quad in zip(values, points):
            found.append(Code(QR, value or None, *_box(quad)))
    ok, points = cv2.QRCodeDetectorAruco().detectMulti(bgr)  # what the first found but could not decode, and more
    if ok and points is not None:
        for quad in points:
            box = _box(quad)
            if not any(c.kind == QR and _overlaps(box, (c.x0, c.y0, c.x1, c.y1)) for c in found):
                found.append(Code(QR, None, *box))
    ok, values, _, points = _barcodes(bgr)
    if ok and points is not None:
        for value, quad in zip(values, points):
            found.append(Code(BARCODE, value or None, *_box(quad)))
    return found


def _barcodes(bgr):
    import cv2

    out = cv2.barcode.BarcodeDetector().detectAndDecodeMulti(bgr)
    if len(out) == 4:  # (ok, values, types, points)
        return out
    ok, values, points = out  # OpenCV builds without the types
    return ok, values, None, points


def codes_row(blob: str, bgr, *, kind: str, media_id: str | None, product_id: str | None) -> dict:
    """The ``image_codes`` row of picture ``blob`` (its BGR pixels ``bgr``)."""
    codes = scan(bgr)
    h, w = bgr.shape[:2]
    return {"blob": blob, "media_id": media_id, "product_id": product_id, "kind": kind, "width": w, "height": h,
            "scanner": scanner(), "n_codes": len(codes), "qr_codes": sum(c.kind == QR for c in codes),
            "code_kind": [c.kind for c in codes], "value": [c.value for c in codes],
            "x0": [c.x0 for c in codes], "y0": [c.y0 for c in codes], "x1": [c.x1 for c in codes],
            "y1": [c.y1 for c in codes], "scanned_at": datetime.now(timezone.utc)}


def scan_file(blob: str, path, *, kind: str, media_id: str | None = None, product_id: str | None = None) -> dict | None:
    """:func:`codes_row` of a picture file; None when it does not decode (nothing recorded: scanned again)."""
    import cv2
    import numpy as np

    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        return None
    return codes_row(blob, bgr, kind=kind, media_id=media_id, product_id=product_id)


def qr_boxes(row: dict) -> list[tuple[float, float, float, float]]:
    """The boxes of a row's QR codes (what an export blurs), in its ``width`` x ``height`` pixels."""
    return [(x0, y0, x1, y1) for k, x0, y0, x1, y1 in zip(row["code_kind"] or [], row["x0"] or [], row["y0"] or [],
                                                       row["x1"] or [], row["y1"] or []) if k == QR]
