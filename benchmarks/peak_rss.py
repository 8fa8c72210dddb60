"""Peak resident memory while a benchmark's work runs, of a whole process tree: shared by the benchmarks.

    with PeakRSS(tree=True, every=0.2) as mem: ...    # this process and all its descendants
    with PeakRSS(child.pid, tree=True) as mem: ...    # a child process and its descendants
    with PeakRSS() as mem: ...                        # this process alone
    with PeakRSS(tree=True, exclude=(server.pid,)) as mem: ...   # the tree less a server measured on its own
    done = run_measured([sys.executable, "-m", ...], stdout=subprocess.PIPE)   # a command, to its end

``mem.peak`` is the highest RSS in bytes sampled (the first sample is taken on entry, the last on
exit, while the process still runs); ``mem.start_rss`` the RSS on entry. With ``tree`` a sample is
the sum of the RSS of the process and every descendant alive then (pool workers, a fork server's
children, ffmpeg); a page shared by several of them (a fork server's with the workers forked from it,
shared libraries) counts once in each, so the sum is the upper bound of what the tree holds (an
extract stage's tree at 1,151 MiB summed RSS held 578 MiB summed PSS). A benchmark that prints
memory prints this tree peak: ``ru_maxrss`` (``resource.getrusage``, ``os.wait4``, ``/usr/bin/time -v``) is the
high-water mark of the largest single process, not a sum; ``RUSAGE_CHILDREN`` only counts children
waited for (a fork server's are not this process's); and a child started by ``subprocess`` inherits
its parent's high-water mark at ``exec`` (``python -c pass`` started from a 500 MB parent reports
511 MB). A process that lives less than ``every`` seconds may be missed.

Benchmarks import it as ``from peak_rss import PeakRSS, run_measured`` (their own folder is first
on ``sys.path`` when run as scripts).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any


class PeakRSS:
    """Highest RSS of one process (``pid``; None: this one), with ``tree`` also its descendants'
    but those in ``exclude`` (their own RSS, not their children's), sampled every ``every`` seconds
    while the context is open."""

    def __init__(self, pid: int | None = None, *, tree: bool = False, every: float = 0.02, exclude=()):
        import psutil

        self.proc = psutil.Process(pid)
        self.tree = tree
        self.exclude = set(exclude)
        self.every = every
        self.peak = 0
        self.start_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """RSS now, in bytes (a descendant that ends meanwhile counts 0); 0 once the process is gone."""
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)] if self.tree else [self.proc]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            if proc.pid in self.exclude:
                continue
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> PeakRSS:
        self.start_rss = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@dataclass
class Measured:
    """A command run to its end by ``run_measured``."""

    returncode: int
    stdout: Any  # bytes or str with stdout=PIPE (text=True: str), else None
    stderr: Any
    seconds: float  # wall, start to exit
    cpu: float  # user + system seconds of the command and the descendants it waited for (os.wait4)
    peak: int  # bytes: the highest sum of RSS over the command's process tree, sampled every ``every`` s


def run_measured(args, *, every: float = 0.02, input: bytes | str | None = None, **popen) -> Measured:
    """Run ``args`` (``subprocess.Popen``'s arguments: ``stdout``, ``stderr``, ``env``, ``cwd``,
    ``text`` ...) to its end while ``PeakRSS(tree=True)`` samples its process tree. Pipes are read
    on threads, so that a full one never stalls the command; nothing raises on a non-zero exit."""
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    started = time.perf_counter()
    proc = subprocess.Popen(args, **popen)
    read = {}

    def drain(name: str) -> None:
        read[name] = getattr(proc, name).read()

    readers = [threading.Thread(target=drain, args=(name,), daemon=True)
               for name in ("stdout", "stderr") if getattr(proc, name) is not None]
    with PeakRSS(proc.pid, tree=True, every=every) as tree:
        for reader in readers:
            reader.start()
        if input is not None:
            with proc.stdin:
                proc.stdin.write(input)
        for reader in readers:
            reader.join()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return Measured(proc.returncode, read.get("stdout"), read.get("stderr"), time.perf_counter() - started,
                    usage.ru_utime + usage.ru_stime, tree.peak)
