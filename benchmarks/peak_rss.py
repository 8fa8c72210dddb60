"""Peak resident memory while a benchmark's work runs: one sampling thread, shared by the benchmarks.

    with PeakRSS() as mem: ...                        # this process
    with PeakRSS(tree=True, every=0.2) as mem: ...    # this process and all its descendants
    with PeakRSS(child.pid, tree=True) as mem: ...    # a child process and its descendants

``mem.peak`` is the highest RSS in bytes sampled (the first sample is taken on entry, the last on
exit, while the process still runs); ``mem.start_rss`` the RSS on entry. Benchmarks import it as
``from peak_rss import PeakRSS`` (their own folder is first on ``sys.path`` when run as scripts).
"""

from __future__ import annotations

import threading


class PeakRSS:
    """Highest RSS of one process (``pid``; None: this one), with ``tree`` also its descendants',
    sampled every ``every`` seconds while the context is open."""

    def __init__(self, pid: int | None = None, *, tree: bool = False, every: float = 0.02):
        import psutil

        self.proc = psutil.Process(pid)
        self.tree = tree
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
