"""Process pools that start wherever a stage runs: in a plain process, and in a daemonic one.

``multiprocessing`` refuses to start a child from a daemonic process (``AssertionError: daemonic
processes are not allowed to have children``): ``BaseProcess.start`` checks the *current* process's
``daemon`` flag. Dask's nanny starts every worker so (``distributed.worker.daemon``, default True,
what ``dask worker``, dask-jobqueue and dask-kubernetes run), as do Celery's and billiard's pools, so a
stage that starts a process pool failed on a user's stock cluster. The rule exists because a daemonic
process is ended abruptly (terminated, no exit handlers), which would orphan its children; the
workers of :class:`ProcessPool` end with their parent themselves (:func:`exit_with_parent`), which
meets the rule's reason another way. So while a pool starts processes (its ``submit``, where
``concurrent.futures`` starts them), the current process's flag is lifted, then put back.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterator

__all__ = ["ProcessPool", "children_allowed", "exit_with_parent"]

_FLAG = threading.RLock()  # one thread lifts and restores the flag at a time


@contextlib.contextmanager
def children_allowed() -> Iterator[None]:
    """``multiprocessing`` may start children from this process inside the block, daemonic or not."""
    config = multiprocessing.current_process()._config  # the flag BaseProcess.start reads
    with _FLAG:
        if not config.get("daemon"):
            yield
            return
        config["daemon"] = False
        try:
            yield
        finally:
            config["daemon"] = True


def exit_with_parent() -> None:
    """End this pool worker when the process that started the pool dies (SIGKILL, the OOM killer, a
    nanny ending a daemonic Dask worker).

    A pool worker waits for its next job on a queue whose write end it holds itself, so it never
    sees its parent go: it would wait forever, with the fork server and the resource tracker
    beside it. A thread watches the parent's sentinel (a pipe the parent holds) instead.
    """
    import os
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="m5data-exit-with-parent", daemon=True).start()


def _start_worker(initializer: Callable | None, initargs: tuple) -> None:
    exit_with_parent()
    if initializer is not None:
        initializer(*initargs)


class ProcessPool(ProcessPoolExecutor):
    """``ProcessPoolExecutor`` whose workers end with their parent and which starts them from a
    daemonic process too (a Dask worker under its nanny). ``mp_context`` defaults to ``spawn``: the
    caller may run threads (rich's refresh, Prefect, DuckDB) whose locks a forked child would inherit."""

    def __init__(self, max_workers: int, mp_context=None, initializer: Callable | None = None,
                 initargs: tuple = ()):
        super().__init__(max_workers, mp_context=mp_context or multiprocessing.get_context("spawn"),
                         initializer=functools.partial(_start_worker, initializer, initargs))

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any):
        # concurrent.futures starts (or replaces) worker processes inside submit
        with children_allowed():
            return super().submit(fn, *args, **kwargs)
