"""Worker processes for the scale world's chunks: results in order, a bounded number in flight, and
processes replaced after a number of chunks (their memory does not build up over a 1M world).

``ProcessPoolExecutor(max_tasks_per_child=...)`` is not used for the replacement: on Python 3.11-3.13
before the fix of CPython gh-115634 it stops starting new workers once the first ones have reached
their limit while tasks are queued, and the map waits forever (a 1M world, 100 chunks on two workers,
stopped after chunk 16). Here each pool serves ``workers * per_worker`` tasks and is then closed and
replaced by a new one.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator


def bounded_map(pool, fn: Callable, calls: list[tuple], ahead: int) -> Iterator:
    """``fn(*args)`` for each of ``calls`` in ``pool``, in order, at most ``ahead`` in flight (results
    never pile up beyond that)."""
    pending: deque = deque()
    it = iter(calls)
    for args in it:
        pending.append(pool.submit(fn, *args))
        if len(pending) >= ahead:
            break
    while pending:
        yield pending.popleft().result()
        for args in it:
            pending.append(pool.submit(fn, *args))
            break


def chunk_map(fn: Callable, calls: list[tuple], *, workers: int, per_worker: int,
              ahead: int | None = None) -> Iterator:
    """``fn(*args)`` for each of ``calls`` in ``workers`` processes, results in order.

    Args:
        fn: a picklable function (module level).
        calls: the argument tuples, one per task.
        workers: processes at a time; 1 runs every call in this process.
        per_worker: about how many tasks a process runs before it is replaced (a new pool every
            ``workers * per_worker`` tasks).
        ahead: tasks in flight at most (default ``2 * workers``).
    """
    if workers <= 1:
        for args in calls:
            yield fn(*args)
        return
    batch = max(1, workers * per_worker)
    ahead = ahead or 2 * workers
    for start in range(0, len(calls), batch):
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from bounded_map(pool, fn, calls[start:start + batch], ahead)
