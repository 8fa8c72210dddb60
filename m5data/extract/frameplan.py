"""The in-process frame pass's plan (frames_av.py): which source frame each output tick shows, built
as the packets are read, as the exact ffmpeg pass's ``setpts=PTS-STARTPTS, fps=FPS:round=up`` chooses
(tick k shows the last frame at or before k/fps, counted from the first frame; a video of D seconds
gives ceil(D * fps) ticks). It holds one entry per tick and at most :data:`REORDER` timestamps, never
one per packet; timestamps it cannot put in order raise :class:`Untrusted`.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["REORDER", "FramePlan", "Planner", "Unsupported", "Untrusted", "plan_frames"]

REORDER = 32  # timestamps held back to put the packets in presentation order (H.264/HEVC reorder at most 16)


class Unsupported(Exception):
    """The stream has something the in-process pass does not reproduce; use the ffmpeg pass."""


class Untrusted(Unsupported):
    """The stream is damaged or malformed: the in-process plan may choose other frames; use the exact ffmpeg pass."""


@dataclass
class FramePlan:
    """Which source frame each output tick shows."""

    ticks: dict[int, list[int]]  # source pts -> the ticks (0-based) that show it
    sources: list[float]  # per tick, the time of the source frame it shows (seconds from the first frame)
    frames: int  # source frames read (packets with a timestamp; the read stops after the last tick's frame)
    keys: list[int] | None = None  # VP8/VP9 in decode order: the keyframes' pts (None: every frame may be needed)
    span: float = 0.0  # seconds the frames read cover (first frame to the end of the last)
    _kept: list[int] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.sources)

    def needed(self, pts: int) -> bool:
        """Whether the frame at ``pts`` may serve a kept frame: always, except in VP8/VP9 (``keys``) where
        no kept frame follows it before the next keyframe."""
        if self.keys is None:
            return True
        if self._kept is None:
            self._kept = sorted(self.ticks)
        kept = self._kept
        nxt = bisect_right(kept, pts)
        if nxt == len(kept):
            return False
        key = bisect_right(self.keys, pts)
        return key == len(self.keys) or kept[nxt] < self.keys[key]


class Planner:
    """The plan of one stream built as its packets are read (:func:`plan_frames` in one call): ``add``
    each packet's (pts, duration) in read order, then ``finish``. ``done`` once every tick is known."""

    def __init__(self, time_base: Fraction, rate: Fraction | None, *, fps: float, max_frames: int,
                 max_duration: float, keys: bool = False):
        self.time_base, self.rate = Fraction(time_base), rate
        self.step = Fraction(fps).limit_denominator(1_000_000)
        self.max_frames, self.max_duration = max_frames, Fraction(max_duration)
        self.cap = min(max_frames, max(1, math.ceil(self.max_duration * self.step - Fraction(1, 1_000_000))))
        scale = self.time_base * self.step  # tick k comes before a frame at pts p when (p - start) * num > k * den
        self.num, self.den = scale.numerator, scale.denominator
        self.pending: list[tuple[int, int]] = []  # the reorder window: (pts, duration), a heap
        self.start: int | None = None
        self.last: tuple[int, int] | None = None  # the newest frame placed, in presentation order
        self.tick = 0  # the next tick to place
        self.plan = FramePlan({}, [], 0, keys=[] if keys else None)
        self.read_last: int | None = None  # the previous packet's pts, in read order (VP8/VP9)
        self.done = False

    def add(self, pts: int, duration: int, key: bool = False) -> None:
        plan = self.plan
        if plan.keys is not None:  # the keyframe rule needs decode order = presentation order
            if self.read_last is not None and pts <= self.read_last:
                plan.keys = None
            elif key:
                plan.keys.append(pts)
            self.read_last = pts
        heapq.heappush(self.pending, (pts, duration))
        if len(self.pending) > REORDER:
            self._place(*heapq.heappop(self.pending))

    def _place(self, pts: int, duration: int) -> None:
        if self.last is not None and pts <= self.last[0]:
            raise Untrusted(f"timestamps out of order: pts {pts} after {self.last[0]}"
                            + (" (the same twice)" if pts == self.last[0] else f", over {REORDER} packets late"))
        if self.start is None:
            self.start = pts
        self._ticks_before((pts - self.start) * self.num)
        self.last = (pts, duration)
        self.plan.frames += 1
        self.done = (pts - self.start) * self.num >= self.cap * self.den

    def _ticks_before(self, at: int | None) -> None:
        """Ticks up to the frame at ``at`` (scaled: see ``num``; None: every tick left) show the newest frame."""
        pts = self.last[0] if self.last else None
        while self.tick < self.cap and (at is None or self.tick * self.den < at):
            self.plan.ticks.setdefault(pts, []).append(self.tick)
            self.plan.sources.append(round(float((pts - self.start) * self.time_base), 6))
            self.tick += 1

    def finish(self) -> FramePlan:
        while self.pending and not self.done:
            self._place(*heapq.heappop(self.pending))
        plan = self.plan
        if self.last is None:
            return plan
        pts, duration = self.last
        end = (pts - self.start) * self.time_base + (duration * self.time_base if duration else
                                                     (1 / Fraction(self.rate) if self.rate else 0))
        plan.span = float(end)
        count = min(self.max_frames, max(1, math.ceil(min(end, self.max_duration) * self.step
                                                      - Fraction(1, 1_000_000))))
        if not self.done:
            self._ticks_before(None)
        for shown in plan.ticks.values():
            shown[:] = [k for k in shown if k < count]
        plan.ticks = {p: shown for p, shown in plan.ticks.items() if shown}
        del plan.sources[count:]
        return plan


def plan_frames(stamps: list[tuple[int, int]], time_base: Fraction, rate: Fraction | None, *, fps: float,
                max_frames: int, max_duration: float) -> FramePlan:
    """Which source frame each tick shows, from the packets' (pts, duration) in ``time_base`` units."""
    planner = Planner(time_base, rate, fps=fps, max_frames=max_frames, max_duration=max_duration)
    for pts, duration in stamps:
        planner.add(pts, duration)
        if planner.done:
            break
    return planner.finish()
