"""Face boxes as rows of the ``faces`` table, and the blur an export applies to its copy of a picture.

One row per detected file (an image, or a frames folder and its JPEGs): its boxes as parallel lists,
one entry per face (``frame``: 0 for an image, the frame's index in a folder), in pixels of the
picture detected (``width`` x ``height``). A row with no face records that the file was looked at,
so a re-export does not detect again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .detect import MODEL, THRESHOLD, Face, detect

GROW = 0.15  # a box is enlarged by this share of its side on each side before blurring (hair, chin, ears)
THUMB = 64  # frames are compared as greyscale thumbnails this many pixels on their longer side
CHANGE = 6  # grey levels (0-255) a thumbnail pixel may differ by for a frame to count as unchanged


def read_bgr(path: Path):
    """The picture at ``path`` as a BGR array (None when OpenCV cannot decode it)."""
    import cv2
    import numpy as np

    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)


def face_row(blob: str, per_frame: list[list[Face]], size: tuple[int, int], *, kind: str, media_id: str | None,
             product_id: str | None) -> dict:
    """The ``faces`` row of ``blob``: ``per_frame[i]`` holds the faces of frame ``i`` (one entry for an image)."""
    found = [(i, f) for i, faces in enumerate(per_frame) for f in faces]
    return {"blob": blob, "media_id": media_id, "product_id": product_id, "kind": kind,
            "width": size[0], "height": size[1], "model": MODEL, "threshold": THRESHOLD, "n_faces": len(found),
            "frame": [i for i, _ in found], "x0": [f.x0 for _, f in found], "y0": [f.y0 for _, f in found],
            "x1": [f.x1 for _, f in found], "y1": [f.y1 for _, f in found], "score": [f.score for _, f in found],
            "detected_at": datetime.now(timezone.utc)}


def thumbnail(bgr):
    """The greyscale picture of ``bgr`` at :data:`THUMB` pixels on its longer side, as int16 (for differences)."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    scale = THUMB / max(h, w)
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA).astype(np.int16)


def unchanged(thumb, checked) -> bool:
    """Whether two :func:`thumbnail` pictures are the same within :data:`CHANGE` at every pixel."""
    import numpy as np

    return thumb.shape == checked.shape and int(np.abs(thumb - checked).max()) <= CHANGE


def detect_pictures(paths: list[Path], frames: str = "all") -> tuple[list[list[Face]], tuple[int, int], int] | None:
    """``(faces per picture, size, pictures detected)`` of ``paths`` in order; None when one cannot be
    decoded. ``frames`` (``faces.frames``): ``all`` detects on every picture; ``changed`` skips
    a picture that is :func:`unchanged` from the last one detected, while the picture before it shows no
    face, and gives it that one's faces (docs/compliance.md, "Faces")."""
    per_frame, size, checked, done = [], (0, 0), None, 0
    for path in paths:
        bgr = read_bgr(path)
        if bgr is None:
            return None
        size = (bgr.shape[1], bgr.shape[0])
        thumb = thumbnail(bgr) if frames == "changed" else None
        if checked is not None and not per_frame[-1] and unchanged(thumb, checked[0]):
            per_frame.append(list(checked[1]))
            continue
        per_frame.append(detect(bgr))
        done += 1
        if thumb is not None:
            checked = (thumb, per_frame[-1])
    return per_frame, size, done


def detect_files(blob: str, paths: list[Path], *, kind: str, media_id: str | None = None,
                 product_id: str | None = None, frames: str = "all") -> dict | None:
    """The ``faces`` row of ``blob`` from its picture(s) ``paths`` (one image, or a folder's frames in
    order, detected as :func:`detect_pictures` with ``frames``); None when a picture cannot be decoded
    (nothing is recorded: it is looked at again)."""
    found = detect_pictures(paths, frames)
    if found is None:
        return None
    per_frame, size, _ = found
    return face_row(blob, per_frame, size, kind=kind, media_id=media_id, product_id=product_id)


def boxes_by_frame(row: dict) -> dict[int, list[tuple[float, float, float, float]]]:
    """``{frame: [(x0, y0, x1, y1) ...]}`` of a ``faces`` row, in its ``width`` x ``height`` pixels."""
    out: dict[int, list] = {}
    for i, x0, y0, x1, y1 in zip(row["frame"] or [], row["x0"] or [], row["y0"] or [], row["x1"] or [],
                                 row["y1"] or []):
        out.setdefault(int(i), []).append((x0, y0, x1, y1))
    return out


def blur_jpeg(data: bytes, boxes, size: tuple[int, int], quality: int = 90) -> tuple[bytes, int]:
    """``(JPEG bytes, faces blurred)``: ``data`` with each box (in pixels of a ``size`` picture, scaled to
    this one's) enlarged by :data:`GROW` and blurred beyond recognition; ``data`` itself when there is no
    box or it cannot be decoded."""
    import cv2
    import numpy as np

    if not boxes:
        return data, 0
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return data, 0
    h, w = img.shape[:2]
    blurred = 0
    sx, sy = w / (size[0] or w), h / (size[1] or h)
    for x0, y0, x1, y1 in boxes:
        gx, gy = (x1 - x0) * GROW, (y1 - y0) * GROW
        a, b = max(0, int((x0 - gx) * sx)), max(0, int((y0 - gy) * sy))
        c, d = min(w, int(np.ceil((x1 + gx) * sx))), min(h, int(np.ceil((y1 + gy) * sy)))
        if c - a < 2 or d - b < 2:
            continue
        roi = img[b:d, a:c]
        # pixelate to ~6 cells across, then smooth the cells' edges: no feature of the face is left
        cells = cv2.resize(roi, (max(1, (c - a) // max(1, (c - a) // 6)), max(1, (d - b) // max(1, (c - a) // 6))),
                           interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(cells, (c - a, d - b), interpolation=cv2.INTER_NEAREST)
        k = max(3, ((c - a) // 6) | 1)
        img[b:d, a:c] = cv2.GaussianBlur(coarse, (k, k), 0)
        blurred += 1
    if not blurred:
        return data, 0
    ok, out = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return (out.tobytes(), blurred) if ok else (data, 0)
