"""Temp files that name their owner: ``<prefix><pid>-<random>[suffix]``.

Every temp file the store and the stages write (parts being written, blobs being downloaded, mp3s
being encoded, derived files before their rename, a catalog being rebuilt) carries the id of the
process that writes it. A temp file whose process is dead belongs to a killed run and can go; one
whose process is alive is in use and is never touched, so a sweep is safe while other runs write.
Temp files from before this naming (no owner in the name) go once they are an hour old.

Local scratch folders under ``TMPDIR`` (a store on object storage: extract's mirror, downloaded blob
copies, staged folders, export's staging) are named the same way, with the PID namespace too
(``m5data-<kind>-<pidns>.<pid>-<random>``, :func:`scratch_dir`): a killed run's are removed by the next
stage that starts on that machine (:func:`sweep_scratch`); a folder of another PID namespace (another
container sharing the TMPDIR) is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

TMP_PREFIX = ".tmp-"
LEGACY_AGE = 3600.0  # seconds: an unowned temp file this old is from a dead run
_OWNER = re.compile(r"^(?:\.tmp-|\.old-)?(\d+)-[0-9a-f]{6,}")


def temp_name(suffix: str = "", prefix: str = TMP_PREFIX) -> str:
    """A fresh temp file name owned by this process, e.g. ``.tmp-4711-3f2a....parquet``."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def owner_pid(name: str) -> int | None:
    """The process id a temp name was made by, or None for a name without one."""
    m = _OWNER.match(name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, killed but not yet reaped, is dead: it writes nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


@dataclass(frozen=True)
class TempFile:
    path: Path
    pid: int | None  # owner, when the name says
    alive: bool  # the owner is running (or an unowned file is younger than LEGACY_AGE)
    bytes: int


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.lstat().st_size
    except OSError:
        return 0


def _candidates(root: Path):
    """Where temp files live: table folders, blobs/.tmp, derived/<kind>[/<xx>], logs, the root."""
    yield from root.glob(TMP_PREFIX + "*")  # catalog rebuilds
    yield from (root / "tables").glob(f"*/{TMP_PREFIX}*")
    tmp = root / "blobs" / ".tmp"
    if tmp.is_dir():
        yield from tmp.iterdir()
    derived = root / "derived"
    yield from derived.glob(f"*/{TMP_PREFIX}*")
    yield from derived.glob(f"*/*/{TMP_PREFIX}*")
    yield from (root / "logs").glob(f"*/*/{TMP_PREFIX}*")


def find_temps(root: Path, now: float | None = None) -> list[TempFile]:
    """Every temp file under a store, each with its owner and whether that owner still runs."""
    now = time.time() if now is None else now
    out = []
    for path in _candidates(Path(root)):
        pid = owner_pid(path.name)
        if pid is not None:
            alive = pid_alive(pid)
        else:
            try:
                alive = now - path.lstat().st_mtime < LEGACY_AGE
            except FileNotFoundError:
                continue
        out.append(TempFile(path, pid, alive, _size(path)))
    return out


def sweep_temps(root: Path) -> list[TempFile]:
    """Remove the temp files of dead runs under a store; returns what was removed."""
    removed = []
    for temp in find_temps(root):
        if temp.alive:
            continue
        try:
            if temp.path.is_dir() and not temp.path.is_symlink():
                shutil.rmtree(temp.path)
            else:
                temp.path.unlink()
        except FileNotFoundError:
            continue
        removed.append(temp)
    return removed


_SCRATCH = re.compile(r"^m5data-[a-z]+-(\d+)\.(\d+)-")


def pid_namespace() -> int:
    """This process's PID namespace (the inode of /proc/self/ns/pid), 0 where unknown."""
    try:
        return int(re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or 0)
    except OSError:
        return 0


def scratch_dir(kind: str) -> Path:
    """A new local temp folder under TMPDIR owned by this process: ``m5data-<kind>-<pidns>.<pid>-<random>``."""
    return Path(tempfile.mkdtemp(prefix=f"m5data-{kind}-{pid_namespace()}.{os.getpid()}-"))


def sweep_scratch(base: Path | None = None) -> list[Path]:
    """Remove the scratch folders (:func:`scratch_dir`) under ``base`` (default TMPDIR) whose process is
    dead: a killed run's. Only folders of this PID namespace are judged; returns what was removed."""
    base = Path(base or tempfile.gettempdir())
    ns, removed = pid_namespace(), []
    if not ns:
        return removed
    try:
        entries = list(base.glob("m5data-*"))
    except OSError:
        return removed
    for path in entries:
        m = _SCRATCH.match(path.name)
        if not m or int(m.group(1)) != ns or pid_alive(int(m.group(2))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
