"""Atomic files outside the tables: write under a hidden temp name, then rename into place.

Readers never see a half-written file under the final name; a killed writer leaves only a
``.tmp-<pid>-*`` file, removed by the next stage start or ``m5data doctor --repair`` once its
process is dead (see ``temps.py``). Used for derived files and run logs.
"""

from __future__ import annotations

from pathlib import Path

from .temps import temp_name


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final`` with the same suffix, for a tool that writes to a path itself."""
    return final.with_name(temp_name(final.suffix))


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


class TextFiles:
    """``read_text`` / ``write_text`` of a store's small files (manifests) over its ``read_bytes`` /
    ``write_bytes``: a folder store writes atomically, a store on object storage with one PUT."""

    def read_text(self, rel: str) -> str | None:
        """The file ``rel`` of the store as text, or None when there is none."""
        data = self.read_bytes(rel)
        return None if data is None else data.decode("utf-8")

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))
