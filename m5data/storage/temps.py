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
import socket
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


# The last sweep of a store: when it started, when the last full one did, and the temp files it left
# (their owners alive). The stages sweep at each start; a full sweep lists every folder temp files
# are written in, derived/images/<xx> included (a million files at 1M products: 0.6 CPU s, 1.5 with a
# cold page cache, paid by every stage run). A folder whose mtime is older than the last sweep's start has had no entry made,
# removed or renamed since, so a temp file in it is one that sweep saw: a kept one, checked again.
SWEPT = "swept.json"  # under locks/
SWEPT_SLACK_NS = 2_000_000_000  # folders this much older than the last sweep are listed too (coarse mtimes)
FULL_SWEEP_EVERY_NS = 24 * 3600 * 1_000_000_000  # and every folder once a day (a store whose clock is not ours)


def _scan(folder: Path, every: bool = False) -> tuple[list[Path], list[Path]]:
    """A folder's temp files (``every``: all its entries) and its sub-folders; nothing when it is not one."""
    temps, folders = [], []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if every or e.name.startswith(TMP_PREFIX):
                    temps.append(Path(e.path))
                try:
                    if e.is_dir():
                        folders.append(Path(e.path))
                except OSError:
                    continue
    except OSError:
        pass
    return temps, folders


def _candidates(root: Path, since_ns: int | None = None):
    """Where temp files live: table folders, blobs/.tmp, derived/<kind>[/<xx>], logs/<a>/<b>, the root, locks.
    With ``since_ns``, those leaf folders (not the few above them) whose mtime is older are not listed."""
    def fresh(folder: Path) -> bool:
        try:
            return since_ns is None or folder.stat().st_mtime_ns >= since_ns
        except OSError:
            return False

    yield from _scan(root)[0]  # catalog rebuilds
    yield from _scan(root / "locks")[0]  # the sweep's own record
    for table in _scan(root / "tables")[1]:
        if fresh(table):
            yield from _scan(table)[0]
    tmp = root / "blobs" / ".tmp"
    if fresh(tmp):
        yield from _scan(tmp, every=True)[0]
    for kind in _scan(root / "derived")[1]:
        temps, subs = _scan(kind)
        yield from temps
        for sub in subs:
            if fresh(sub):
                yield from _scan(sub)[0]
    for a in _scan(root / "logs")[1]:
        for b in _scan(a)[1]:
            if fresh(b):
                yield from _scan(b)[0]


def find_temps(root: Path, now: float | None = None, since_ns: int | None = None,
               also: list[Path] = ()) -> list[TempFile]:
    """Every temp file under a store, each with its owner and whether that owner still runs.

    ``since_ns``: list only the folders changed since then (:func:`_candidates`), and look at the
    paths ``also`` (the temp files an earlier sweep left) wherever they are."""
    now = time.time() if now is None else now
    out = []
    seen = set()
    for path in [*_candidates(Path(root), since_ns), *also]:
        if path in seen:
            continue
        seen.add(path)
        try:
            mtime = path.lstat().st_mtime
        except FileNotFoundError:
            continue
        pid = owner_pid(path.name)
        alive = pid_alive(pid) if pid is not None else now - mtime < LEGACY_AGE
        out.append(TempFile(path, pid, alive, _size(path)))
    return out


def sweep_temps(root: Path) -> list[TempFile]:
    """Remove the temp files of dead runs under a store; returns what was removed.

    Folders unchanged since the last sweep (``locks/swept.json``) are not listed, and the temp files
    that sweep kept are looked at again; every folder is listed when there is no such record, or the
    last full sweep is a day old."""
    root = Path(root)
    started = time.time_ns()
    last = _last_sweep(root)
    since = also = None
    if last is not None and started - last["full_ns"] < FULL_SWEEP_EVERY_NS:
        since, also = last["started_ns"] - SWEPT_SLACK_NS, [root / p for p in last["kept"]]
    removed, kept = [], []
    for temp in find_temps(root, since_ns=since, also=also or []):
        if temp.alive:
            kept.append(temp)
            continue
        try:
            if temp.path.is_dir() and not temp.path.is_symlink():
                shutil.rmtree(temp.path)
            else:
                temp.path.unlink()
        except FileNotFoundError:
            continue
        removed.append(temp)
    _record_sweep(root, started, started if since is None else last["full_ns"],
                  [t.path.relative_to(root).as_posix() for t in kept])
    return removed


def _last_sweep(root: Path) -> dict | None:
    import json

    try:
        d = json.loads((root / "locks" / SWEPT).read_text(encoding="utf-8"))
        out = {"started_ns": int(d["started_ns"]), "full_ns": int(d["full_ns"]), "kept": [str(p) for p in d["kept"]]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # a kept path is a temp file's under the store (a sweep removes what it names once its owner is
    # dead): any other path and the record is not one a sweep wrote
    if not all(_temp_like(p) for p in out["kept"]):
        return None
    return out


def _temp_like(rel: str) -> bool:
    parts = rel.split("/")
    return (not rel.startswith("/") and ".." not in parts
            and (parts[-1].startswith(TMP_PREFIX) or parts[:-1] == ["blobs", ".tmp"]))


def _record_sweep(root: Path, started_ns: int, full_ns: int, kept: list[str]) -> None:
    """Write the sweep's record atomically (two sweeps at once: either record holds, each made from the
    one before); where it cannot be written, the next sweep goes by the older record (more folders listed)."""
    import json

    folder = root / "locks"
    tmp = folder / temp_name(".json")
    try:
        tmp.write_text(json.dumps({"started_ns": started_ns, "full_ns": full_ns, "kept": kept}), encoding="utf-8")
        os.replace(tmp, folder / SWEPT)
    except OSError:
        tmp.unlink(missing_ok=True)


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


def machine() -> dict:
    """Who holds a lease, as far as another process can check it: the host name and this process's PID
    namespace (two containers may share a host name, never a PID namespace)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace() or None}


def holder_dead(lease: dict) -> bool:
    """True when the lease's holder ran on this machine (same host name and PID namespace) and its
    process is gone: a stage killed here frees its lease at once, not after ``until``. A holder on
    another machine, or one whose PID namespace is unknown, is alive until its lease runs out."""
    here = machine()
    if not here["pidns"] or lease.get("pidns") != here["pidns"] or lease.get("host") != here["host"]:
        return False
    try:
        return not pid_alive(int(lease.get("pid") or 0))
    except (TypeError, ValueError):
        return False
