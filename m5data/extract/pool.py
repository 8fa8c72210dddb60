"""Extract's worker pool: jobs run in worker processes, and a worker that dies fails only the job that killed it.

Workers fork from a fork server that has preloaded the job code (spawned where there is none); a
pool broken by a dead worker is replaced and its jobs re-run one at a time in quarantine.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator

from ..process_pool import ProcessPool
from .derived import JobResult, crashed
from .worker import Context, init_worker

__all__ = ["WorkerPool", "pool_context"]


def pool_context():
    """Worker processes forked from a fork server that has imported the job code (``preload.py``).

    Never a fork of this process: it holds DuckDB and rich threads that a forked child must not
    inherit. The server is started once per process, with a clean interpreter, and lives while this
    process does, so the job code's start-up (librosa / numba, jieba, OpenCV, imagehash's SciPy: ~3.5
    CPU-s) is paid once, not by every worker of every run (a spawned worker paid ~1.5 CPU-s for an
    image run alone, every run again; docs/extract.md). Spawn where there is no fork server (Windows),
    or where its socket's path would be too long (:func:`_forkserver_fits`).
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods() or not _forkserver_fits():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["m5data.extract.preload"])  # read when the server starts
    return context


def _forkserver_fits() -> bool:
    """Whether the fork server's Unix socket path fits the 107 bytes Linux allows: Python 3.11 makes it in
    multiprocessing's temp folder (``$TMPDIR/pymp-xxxxxxxx/listener-xxxxxxxx``), and a long ``TMPDIR`` (a
    Dask worker's own folder under a deep working directory) failed every job with ``OSError: AF_UNIX
    path too long``. Such a process spawns its workers instead."""
    import os
    from multiprocessing import util

    return len(os.fsencode(util.get_temp_dir())) + len("/listener-xxxxxxxx") < 100


class WorkerPool:
    """A process pool fed from an iterator with a bounded window (workers == 1 runs inline, unless
    ``isolate``: jobs that run native decoders in-process, whose crash must end a worker, not the run).

    A worker that dies (the OOM killer, a crash in a native library) breaks the pool and every job
    in it. The pool is replaced, and those jobs run again one at a time in a one-process quarantine
    pool: a job that kills that process too is the culprit and fails ("worker process died");
    the others end as if nothing happened.
    """

    def __init__(self, workers: int, ctx: Context, isolate: bool = False):
        self.workers = workers
        self.ctx = ctx
        self.executor: ProcessPool | None = None
        self.quarantine: ProcessPool | None = None
        self.restarts = 0
        if workers == 1 and not isolate:
            init_worker(ctx)
        else:
            self.executor = self._new(self.workers)

    def _new(self, workers: int) -> ProcessPool:
        # workers end with this process, which may itself be a daemonic one (a Dask worker under its nanny)
        return ProcessPool(workers, mp_context=pool_context(), initializer=init_worker, initargs=(self.ctx,))

    def _alone(self, kind: str, fn: Callable, item) -> JobResult:
        """Run one job with no other job in its process: if the process dies, this job killed it."""
        if self.quarantine is None:
            self.quarantine = self._new(1)
        try:
            return self.quarantine.submit(fn, item).result()
        except BrokenProcessPool:
            self.quarantine.shutdown(wait=False, cancel_futures=True)
            self.quarantine = None
            return crashed(kind, item, "worker process died on this item, alone in its pool")
        except Exception as exc:
            return crashed(kind, item, f"{type(exc).__name__}: {exc}")

    def imap(self, kind: str, fn: Callable, items: Iterable) -> Iterator[tuple[object, JobResult]]:
        if self.executor is None:
            for item in items:
                try:
                    yield item, fn(item)
                except Exception as exc:  # a bug or an unexpected library error: that item fails, the run goes on
                    yield item, crashed(kind, item, f"{type(exc).__name__}: {exc}")
            return
        source = iter(items)
        pending: dict = {}
        refused: list = []  # taken from ``items`` while the pool was already broken: never ran

        def fill() -> None:
            while len(pending) < self.workers * 4 and not refused:
                try:
                    item = next(source)
                except StopIteration:
                    return
                try:
                    pending[self.executor.submit(fn, item)] = item
                except BrokenProcessPool:  # a worker died before this job went in (seen on a loaded machine)
                    refused.append(item)

        fill()
        while pending or refused:
            done = wait(pending, return_when=FIRST_COMPLETED)[0] if pending else set()
            suspects = refused[:]  # the pool is broken: the refused job runs again with the others
            refused.clear()
            for fut in done:
                item = pending.pop(fut)
                try:
                    yield item, fut.result()
                except BrokenProcessPool:
                    suspects.append(item)
                except Exception as exc:
                    yield item, crashed(kind, item, f"{type(exc).__name__}: {exc}")
            if suspects:  # the pool died with these jobs and every job still in it: replace it
                suspects += pending.values()
                pending.clear()
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.executor = self._new(self.workers)
                self.restarts += 1
                for item in suspects:
                    yield item, self._alone(kind, fn, item)
            fill()

    def close(self) -> None:
        for executor in (self.executor, self.quarantine):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
