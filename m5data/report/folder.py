"""The report's output folder: written only when new, empty or the report's own, and replaced as a whole.

The report is built in a temp folder beside ``out`` and swapped in at the end, so a reader never sees
half a report and a failed run leaves ``out`` as it was. A marker file, ``.m5data-report.json``,
lists every file a run wrote; a later run replaces the folder only when it holds nothing else. A
folder the report did not write (a store, a home folder, ``--out .`` anywhere) is never deleted.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import uuid
from pathlib import Path

from ..errors import UserError

MARKER = ".m5data-report.json"


class FolderError(UserError, ValueError):
    """The output folder may not be written; the message says why and what to do."""


def check(out: Path, store_root: Path) -> Path:
    """The absolute output folder, or :class:`FolderError` when writing it could harm what is there."""
    out = Path(out).absolute()
    real, store = out.resolve(), Path(store_root).resolve()
    if out.exists() and not out.is_dir():
        raise FolderError(f"report folder {out} is a file")
    if real.is_relative_to(store):
        raise FolderError(f"report folder {out} is inside the store {store_root}: choose a folder outside it")
    if store.is_relative_to(real):
        raise FolderError(f"report folder {out} holds the store {store_root}: choose a new or empty folder")
    if Path.cwd().resolve().is_relative_to(real):
        raise FolderError(f"report folder {out} holds the current directory (the report replaces its folder "
                          "as a whole): give a new folder, e.g. --out m5data-report")
    if real.is_dir():
        foreign = _foreign(real)
        if foreign is None:
            raise FolderError(f"report folder {out} is not empty and was not written by m5data report: "
                              "choose a new or empty folder")
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise FolderError(f"report folder {out} holds files the report did not write ({shown}): "
                              "move them out or choose another folder")
    return real


def _foreign(folder: Path) -> list[str] | None:
    """Paths in ``folder`` that no report run wrote: [] when empty or all its own, None without a marker."""
    present = _files(folder)
    if not present:
        return []
    try:
        listed = set(json.loads((folder / MARKER).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sorted(present - listed - {MARKER})


def _files(folder: Path) -> set[str]:
    """Every file, link and folder under ``folder`` (relative, '/'-separated; folders end in '/')."""
    out = set()
    for dirpath, dirs, files in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        out.update(f"{(rel / d).as_posix()}/" for d in dirs)
        out.update((rel / f).as_posix() for f in files)
    return out


def staging(out: Path) -> Path:
    """A new, empty temp folder beside ``out`` to build the report in (:class:`FolderError` when
    ``out``'s parent cannot be made or written)."""
    tmp = out.parent / f".{out.name}.m5data-report-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise FolderError(f"report folder {out} cannot be written: {exc.strerror or exc} "
                          f"({exc.filename or out.parent})") from None
    return tmp


def publish(tmp: Path, out: Path) -> None:
    """Write the marker into ``tmp`` and swap it in for ``out`` (re-checked: new, empty or the report's own)."""
    (tmp / MARKER).write_text(json.dumps({"written_by": "m5data report", "files": sorted(_files(tmp))},
                                         ensure_ascii=False, indent=1), encoding="utf-8")
    if not out.exists():
        os.rename(tmp, out)
        return
    if _foreign(out) != []:  # something was written there while the report was drawn
        raise FolderError(f"report folder {out} changed during the run and holds files the report did not write")
    if _exchange(tmp, out):  # one atomic step: readers see the old report or the new one
        shutil.rmtree(tmp)
        return
    old = out.parent / f"{tmp.name}.old"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def discard(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where it is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0
