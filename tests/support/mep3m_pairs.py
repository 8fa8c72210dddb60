"""The hand-labelled MEP-3M Chinese product-matching pairs (benchmarks/data/mep3m_pairs/, GUIDE.md there).

``records()`` reads the 1,000 real titles of ../shared/realdata/mep3m/annotations-1k.json (record k has id
k + 1, the number in its img_path); ``pairs()`` reads the labels of pairs.csv: ``(a, b, label, hard)``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "benchmarks" / "data" / "mep3m_pairs"
SOURCE = ROOT.parent / "shared" / "realdata" / "mep3m" / "annotations-1k.json"
_NUMBER = re.compile(r"/(\d+)\.\w+$")


def records(path: Path = SOURCE) -> list[dict]:
    """The records of ``path`` as ``id``, ``title``, ``ocr`` (``ocr`` is "" where the file says FALSE) and
    ``category`` (class and sub-class names)."""
    out = []
    for k, r in enumerate(json.loads(Path(path).read_text(encoding="utf-8"))):
        m = _NUMBER.search(r["img_path"])
        if not m or int(m.group(1)) != k + 1:
            raise ValueError(f"{path}: record {k} has img_path {r['img_path']!r}, expected Images/<sub>/{k + 1}.<ext>")
        ocr = r.get("OCR") or ""
        out.append({"id": k + 1, "title": r["title"], "ocr": "" if ocr == "FALSE" else ocr,
                    "category": [r["class_name"], r["sub_class_name"]]})
    return out


def rows(path: Path = HERE / "pairs.csv") -> list[dict[str, str]]:
    """pairs.csv as read: ``a``, ``b``, ``label``, ``hard``, ``note``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pairs(path: Path = HERE / "pairs.csv") -> list[tuple[int, int, int, int]]:
    """``(a, b, label, hard)`` for every labelled pair, in candidate order."""
    return [(int(r["a"]), int(r["b"]), int(r["label"]), int(r["hard"])) for r in rows(path)]
