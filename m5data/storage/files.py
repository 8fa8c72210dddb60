"""Atomic files outside the tables: write under a hidden temp name, then rename into place.

Readers never see a half-written file under the final name; a killed writer leaves only a
``.tmp-<pid>-*`` file, removed by the next stage start or ``m5data doctor --repair`` once its
process is dead (see ``temps.py``). Used for derived files and run logs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """A hidden temp folder inside ``folder`` whose files replace those of ``folder`` (same relative
    paths, each renamed into place) when the block ends well; a block that fails (a refused commit)
    leaves ``folder`` as it was. A killed run's temp folder is swept as any temp file (``temps.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / temp_name()
    local.mkdir()
    try:
        yield local
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            final = folder / path.relative_to(local)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
    finally:
        shutil.rmtree(local, ignore_errors=True)


class TextFiles:
    """``read_text`` / ``write_text`` of a store's small files (manifests) over its ``read_bytes`` /
    ``write_bytes``: a folder store writes atomically, a store on object storage with one PUT."""

    def read_text(self, rel: str) -> str | None:
        """The file ``rel`` of the store as text, or None when there is none."""
        data = self.read_bytes(rel)
        return None if data is None else data.decode("utf-8")

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))


class KeptFolder:
    """A folder of files a stage keeps between runs and reads again (``Store.kept``: pools' vectors,
    block markers and input state). ``path`` is a local folder to read and write them in; ``push(file)``
    makes one file of it durable in the store at once (a checkpoint marker that a killed run must
    leave behind). Files named by the ``lazy`` patterns of ``Store.kept`` (large ones) are read with
    ``fetch``, listed with ``names`` and removed with ``remove``: on object storage they are
    downloaded only when fetched. On a folder store ``path`` is the store's own folder, ``push`` has
    nothing to do and the others are plain file operations."""

    def __init__(self, path: Path, push: Callable[[Path], None] | None = None,
                 fetch: Callable[[str], None] | None = None, remote: Callable[[], list[str]] | None = None,
                 forget: Callable[[str], None] | None = None):
        self.path = path
        self._push, self._fetch, self._remote, self._forget = push, fetch, remote, forget

    def push(self, file: Path) -> None:
        if self._push is not None:
            self._push(file)

    def fetch(self, name: str) -> Path | None:
        """The kept file ``name`` as a local file (downloaded on first use on object storage); None when there is none."""
        path = self.path / name
        if not path.is_file() and self._fetch is not None:
            self._fetch(name)
        return path if path.is_file() else None

    def names(self, pattern: str) -> list[str]:
        """The kept files matching the glob ``pattern`` (those not fetched yet included)."""
        local = {p.relative_to(self.path).as_posix() for p in self.path.glob(pattern) if p.is_file()}
        remote = {n for n in (self._remote() if self._remote else []) if fnmatch.fnmatchcase(n, pattern)}
        return sorted(local | remote)

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)
        if self._forget is not None:
            self._forget(name)
