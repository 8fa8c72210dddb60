"""The minimum transfer rate of one fetch attempt (``download.min_rate`` over ``download.rate_window``).

:class:`Pace` moves an ``asyncio.timeout`` forward each time a window's quota of bytes arrived;
:data:`PACE` holds the current attempt's guard, so that the fetcher's byte counting reaches it.
"""

from __future__ import annotations

from contextvars import ContextVar


class Pace:
    """The minimum transfer rate of one attempt: at least ``min_rate * window`` bytes must arrive
    within ``window`` seconds of the attempt's start and of every point where the last quota was met.

    A slow-loris server (one byte every few seconds) keeps a connection alive and the watchdog
    content, but fails this after one window. The check costs one comparison per chunk; the timer
    (an ``asyncio.timeout``) is moved only when a quota is met.
    """

    def __init__(self, min_rate: float, window: float):
        self.window = window
        self.quota = min_rate * window
        self.timer = None  # the asyncio.timeout this guard moves
        self.loop = None
        self.mark = 0
        self.total = 0

    def start(self, loop) -> None:
        self.loop = loop
        self.timer.reschedule(loop.time() + self.window)

    def feed(self, n: int) -> None:
        self.total += n
        if self.total - self.mark >= self.quota and self.timer is not None and self.loop is not None:
            self.mark = self.total
            self.timer.reschedule(self.loop.time() + self.window)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.reschedule(None)

    @property
    def window_bytes(self) -> int:
        return self.total - self.mark


PACE: ContextVar[Pace | None] = ContextVar("m5data_download_pace", default=None)
