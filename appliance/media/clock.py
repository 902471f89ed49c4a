"""A shared media clock for every paced stream: callbacks due in the same tick share one loop timer."""
from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["MediaClock", "TICK"]

log = logging.getLogger("switchboard.media")

TICK = 0.005  # a quarter frame: streams spread over four slots, so no burst holds all of them


class _Entry:
    """A callback waiting for its tick; cancel() drops it."""

    __slots__ = ("callback", "args", "cancelled")

    def __init__(self, callback: Callable[..., Any], args: tuple) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MediaClock:
    """Runs call_at() callbacks on a shared grid (5 ms by default), one loop timer per tick for all of them.

    A timer per stream per frame costs a TimerHandle, a heap operation and often a loop
    wake-up for each packet; with shared ticks, 100 prompts cost four wake-ups per 20 ms and
    the packets go out back to back in a stable order, so each stream still sees 20 ms
    intervals. Deadlines are rounded to the nearest tick, so a stream started between
    ticks keeps a constant offset from the grid rather than drifting. time() is the loop's
    real time, so a pacer still sees, and catches up or skips, a loop that fell behind.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = TICK) -> None:
        self._loop = loop
        self._interval = interval
        self._origin = loop.time()
        self._buckets: dict[int, list[_Entry]] = {}
        self._ticks: list[int] = []  # heap of ticks that have a bucket
        self._armed: tuple[int, asyncio.TimerHandle] | None = None
        self._running: int | None = None  # the tick being run, while it runs
        self.ticks_run = 0

    def time(self) -> float:
        """The loop's clock."""
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _Entry:
        """Run callback at the tick nearest to when (or in the running tick if that is already due)."""
        tick = round((when - self._origin) / self._interval)
        entry = _Entry(callback, args)
        if self._running is not None and tick <= self._running:
            self._buckets[self._running].append(entry)
            return entry
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = bucket = []
            heapq.heappush(self._ticks, tick)
            if self._running is None and (self._armed is None or tick < self._armed[0]):
                self._arm()
        bucket.append(entry)
        return entry

    def _arm(self) -> None:
        """Point the one loop timer at the earliest tick with work."""
        if self._armed is not None:
            self._armed[1].cancel()
            self._armed = None
        if self._ticks:
            tick = self._ticks[0]
            self._armed = (tick, self._loop.call_at(self._origin + tick * self._interval, self._run, tick))

    def _run(self, tick: int) -> None:
        """Run everything due in this tick, including what it schedules for itself."""
        self._armed = None
        heapq.heappop(self._ticks)
        self._running = tick
        bucket = self._buckets[tick]
        i = 0
        try:
            while i < len(bucket):
                entry = bucket[i]
                i += 1
                if not entry.cancelled:
                    try:
                        entry.callback(*entry.args)
                    except Exception:
                        log.exception("media clock callback failed")
        finally:
            del self._buckets[tick]
            self._running = None
            self.ticks_run += 1
            self._arm()

    @property
    def pending(self) -> int:
        """Callbacks waiting (cancelled ones included until their tick)."""
        return sum(len(bucket) for bucket in self._buckets.values())
