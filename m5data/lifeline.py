"""Child processes that end with their parent, even while they compute (issue 76, 4).

A subprocess a stage starts (the crawl's Scrapy process, ffmpeg) must not outlive the stage: killed by
``timeout`` or SIGKILL, the parent leaves nobody to read the child's results or to enforce its caps.
On Linux the kernel sends a chosen signal to a process when its parent dies (``PR_SET_PDEATHSIG``):

- :func:`kill_with_parent` (a ``preexec_fn``: set between fork and exec) asks for SIGKILL, for a
  program with nothing to save (ffmpeg).
- :func:`end_with_parent` asks for SIGTERM, so that a Python child stops cleanly (Scrapy's graceful
  shutdown), and forks a watcher that SIGKILLs the child ``grace`` seconds after the parent died if it
  still runs. A Python signal handler runs only between two bytecodes of the main thread: a child
  busy in one long C call (a backtracking regex's match, which holds the GIL) never gets to it, and
  no thread of its own can run either. The watcher is a process of its own: nothing the child does
  holds it up, and the kernel ends it with the child (its own ``PR_SET_PDEATHSIG``).

Elsewhere (not Linux) both do nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
POLL = 0.25  # seconds between two looks of the watcher at its child's parent
_LINUX = sys.platform.startswith("linux")


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


_PRCTL = _libc().prctl if _LINUX else None  # looked up now: a preexec_fn should not import nor load


def set_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) ends; False where it can't."""
    if _PRCTL is None:
        return False
    return _PRCTL(PR_SET_PDEATHSIG, int(sig)) == 0


def kill_with_parent() -> None:
    """A subprocess ``preexec_fn``: the program is SIGKILLed when the process that started it ends.
    (The kernel's parent is the thread that forked: start the program from a thread that waits for it.)"""
    set_death_signal(signal.SIGKILL)


def parent_of(pid: int) -> int | None:
    """The parent pid of process ``pid`` (``/proc/<pid>/stat``), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
    return int(fields[1]) if fields[0] != b"Z" else None


def end_with_parent(parent_pid: int, grace: float) -> bool:
    """End this process when ``parent_pid``, its parent, dies: SIGTERM at once (the kernel), SIGKILL
    ``grace`` seconds later from a watcher process started here (a fresh small interpreter running this
    file: ~10 MB, not a fork of the caller's). False when the parent is already gone (the caller should
    exit at once)."""
    if not _LINUX:
        return True
    set_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        return False
    import subprocess

    subprocess.Popen([sys.executable, "-I", "-S", __file__, str(os.getpid()), str(parent_pid), str(grace)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True, start_new_session=True)  # a terminal's Ctrl-C is not for it
    return True


def watch(child: int, parent_pid: int, grace: float) -> None:
    """The watcher's loop: SIGKILL ``child`` once it has outlived ``parent_pid`` by ``grace`` seconds."""
    set_death_signal(signal.SIGKILL)  # the watcher ends with its child
    if os.getppid() != child:
        return
    while parent_of(child) == parent_pid:
        time.sleep(POLL)
    deadline = time.monotonic() + grace
    while parent_of(child) is not None and time.monotonic() < deadline:
        time.sleep(POLL)
    if parent_of(child) is not None:
        os.kill(child, signal.SIGKILL)


if __name__ == "__main__":  # the watcher (python -I -S lifeline.py CHILD PARENT GRACE): the standard library only
    watch(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
