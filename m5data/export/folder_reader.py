"""An export folder read by the relative paths its index and stats files name, never outside it: on
this machine (:class:`LocalFolder`) or at a URL (``remote.RemoteFolder``, the same methods), following
paths into the sibling folders the export's plan says it inherits from (:func:`reader_of`); and the
sha256 of a file, as the layouts index it. ``check-shards`` (``check.py``) and the training loader
read exports through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .remote import OutsideFolder, RemoteFolder, is_remote, sibling_name

PLAN_FILE = "_export.json"  # the plan an export folder keeps (resume.py writes it)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def inside_folder(folder: Path, rel, siblings=()) -> Path | None:
    """``folder / rel`` when ``rel`` (a path read from an index or stats file) names something inside
    ``folder`` (or inside one of the ``siblings`` folders beside it, as ``../<name>/...``), else None:
    an absolute path, another ``..`` or a symlink out is never checked or trusted."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root = Path(folder).resolve()
    if (name := sibling_name(rel)) is not None and name in siblings:
        root = root.parent / name
        rel = rel.split("/", 2)[2]
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path != root else None


class LocalFolder:
    """An export folder on this machine, read by relative paths that must stay inside it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.siblings: set[str] = set()

    def has_sibling_file(self, name: str, rel: str) -> bool:
        return (self.folder.parent / name / rel).is_file()

    def names(self) -> dict:
        return {p.name: 0 for p in self.folder.iterdir()} if self.folder.is_dir() else {}

    def read_bytes(self, rel: str) -> bytes:
        return self._inside(rel).read_bytes()

    def open(self, rel: str):
        return open(self._inside(rel), "rb")

    def exists(self) -> bool:
        return self.folder.is_dir()

    def glob(self, pattern: str) -> list[str]:
        return [p.name for p in sorted(self.folder.glob(pattern))]

    def read_text(self, rel: str) -> str:
        return (self.folder / rel).read_text()

    def _inside(self, rel) -> Path:
        path = inside_folder(self.folder, rel, self.siblings)
        if path is None:
            raise OutsideFolder(rel)
        return path

    def size(self, rel: str) -> int | None:
        """The size of the file ``rel`` names; None when it is missing."""
        path = self._inside(rel)
        return path.stat().st_size if path.is_file() else None

    def sha256(self, rel: str) -> str:
        return file_sha256(self._inside(rel))


def reader_of(folder):
    """The reader of an export folder, or of a URL (``remote.RemoteFolder``: the same methods), that
    follows index paths into the sibling folders the export's plan says it inherits from."""
    reader = RemoteFolder(folder) if is_remote(folder) else LocalFolder(Path(folder))
    reader.siblings = inherited_folders(reader)
    return reader


def inherited_folders(reader) -> set[str]:
    """The folders beside this export whose shards its index may name: those its plan lists under
    ``inherits`` that hold an export plan themselves (a plain folder beside it is never read)."""
    try:
        if PLAN_FILE not in reader.names():
            return set()
        names = json.loads(reader.read_text(PLAN_FILE)).get("inherits") or []
    except (ValueError, OSError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and sibling_name(f"../{n}/x") == n
            and reader.has_sibling_file(n, PLAN_FILE)}
