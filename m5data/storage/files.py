"""Atomic files outside the tables: write under a hidden temp name, then rename into place.

Readers never see a half-written file under the final name; a killed writer leaves only a
``.tmp-*`` file (the extract stage sweeps old ones). Used for derived files and run logs.
"""

from __future__ import annotations

import uuid
from pathlib import Path


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final`` with the same suffix, for a tool that writes to a path itself."""
    return final.with_name(f".tmp-{uuid.uuid4().hex}{final.suffix}")


def write_atomic(final: Path, data: bytes) -> int:
    """Write ``data`` to ``final`` atomically (parents created); returns the number of bytes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        tmp.write_bytes(data)
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)
