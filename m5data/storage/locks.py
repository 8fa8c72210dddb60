"""Advisory locks on a store: ``<store>/locks/<name>.lock``, POSIX record locks (``fcntl.lockf``).

- A *stage lock* (``download``, ``extract``, ``crawl``, ``align``, ``compact``, ``doctor`` ...) is
  exclusive (a shard of a run on a cluster holds it shared plus ``<stage>.shard-i-of-n`` exclusively): a second run of the same stage on the same store is refused with a message naming the
  PID that holds it. Every stage lock also holds the *store lock* shared; ``m5data doctor --repair``
  takes the store lock exclusively, so it never repairs under a running stage.
- A *table lock* (``table-<name>``) serialises the writers that rewrite a whole table
  (``compact``, ``replace``); appending a part needs no lock (parts are atomic, reads resolve by
  write sequence).
- Readers take no lock at all.

The kernel drops a process's locks when it dies, so a lock left by a killed run is free at once;
the lock file keeps the last holder's PID, stage and start time for the messages. POSIX locks are
per process and not inherited by forked workers, so a stage's worker processes never keep its lock
alive after the stage is killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from .temps import pid_alive

LOCK_DIR = "locks"
STORE_LOCK = "store"

_guard = threading.RLock()
_held: dict[str, list] = {}  # lock path -> [fd, count, shared]: POSIX locks are per process


class LockHeld(UserError):
    """A lock another process holds; the message names it (subclassed as StoreError by the store)."""


def lock_path(root: Path, name: str) -> Path:
    return Path(root) / LOCK_DIR / f"{name}.lock"


def read_holder(path: Path) -> dict | None:
    """What the lock file says about its last holder: pid, what, since (or None)."""
    if str(path) in _held:  # never open a file this process holds: closing it would drop the lock
        return {"pid": os.getpid(), "what": "this process", "since": None}
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    since = holder.get("since")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
    return f"PID {holder.get('pid')} ({holder.get('what')}{when})"


def _try(fd: int, shared: bool, wait: float) -> bool:
    op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            fcntl.lockf(fd, op)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextlib.contextmanager
def hold(root: Path, name: str, what: str, *, shared: bool = False, wait: float = 0.0,
         error=LockHeld) -> Iterator[Path]:
    """Hold lock ``name`` of the store at ``root`` (re-entrant within a process).

    Args:
        root: the store folder.
        name: the lock (``download``, ``table-media``, ``store`` ...).
        what: who holds it, for other processes' messages (``download``, ``compact media`` ...).
        shared: a shared lock (several holders) instead of an exclusive one.
        wait: seconds to wait for the lock; 0 refuses at once when it is taken.
        error: the exception class raised when the lock is taken.
    """
    path = lock_path(root, name)
    key = str(path)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                ok = _try(fd, shared, wait)
            except BaseException:
                os.close(fd)
                raise
            if not ok:
                live = _getlk(fd)  # a shared holder (a shard) writes nothing in the file: ask the kernel
                os.close(fd)  # we hold nothing on it: closing drops nothing
                holder = read_holder(path)
                if holder and (not pid_alive(int(holder.get("pid") or 0)) or (live > 0 and holder.get("pid") != live)):
                    holder = None  # the file names a dead (or an older) holder
                if holder is None and live > 0:
                    holder = {"pid": live, "what": name, "since": None}
                raise error(f"{what}: the store {Path(root)} is in use by {describe(holder)}"
                            f"{' (waited ' + format(wait, 'g') + ' s)' if wait else ''}; "
                            f"wait for it to finish or stop it (lock {path})")
            if not shared:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
            entry = _held[key] = [fd, 1, shared]
    try:
        yield path
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # releases the lock


def holders(root: Path) -> list[tuple[str, dict | None]]:
    """Locks of a store held now by other processes: ``(name, holder)`` for each."""
    out = []
    folder = Path(root) / LOCK_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.lock")):
        if str(path) in _held:
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            pid = _getlk(fd)
        finally:
            os.close(fd)
        if pid:
            holder = read_holder(path) or {}
            if holder.get("pid") != pid:  # a shared lock (the store lock), or a file from an older holder
                holder = {"pid": pid, "what": holder.get("what") if path.stem != STORE_LOCK else "a stage", "since": None}
            out.append((path.stem, holder))
    return out


_FLOCK = struct.Struct("@hhqqi4x")  # Linux struct flock: l_type, l_whence, l_start, l_len, l_pid


def _getlk(fd: int) -> int:
    """PID of a process holding any lock on ``fd``'s file (0: none), without taking the lock."""
    try:
        buf = fcntl.fcntl(fd, fcntl.F_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        l_type, _, _, _, pid = _FLOCK.unpack(buf)
        return 0 if l_type == fcntl.F_UNLCK else pid
    except (OSError, struct.error):  # not Linux's layout: probe by taking the lock for a moment
        if _try(fd, False, 0.0):
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return 0
        return -1
