"""A loop whose clock moves only when a test says so: call_later and call_soon, run by advance()."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class FakeHandle:
    """What call_later returns: cancel() stops it."""

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple) -> None:
        self.when, self.fn, self.args = when, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run it."""
        self.cancelled = True


class FakeLoop:
    """The parts of asyncio's loop the call logic uses, on a clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._queue: list[tuple[float, int, FakeHandle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        """The fake monotonic clock."""
        return self.now

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> FakeHandle:
        """Run fn(*args) once the clock has moved `delay` on."""
        handle = FakeHandle(self.now + max(delay, 0.0), fn, args)
        heapq.heappush(self._queue, (handle.when, next(self._order), handle))
        return handle

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> FakeHandle:
        """Run fn(*args) at the next advance(), even advance(0)."""
        return self.call_later(0.0, fn, *args)

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock on, running everything that falls due on the way, in order."""
        until = self.now + seconds
        while self._queue and self._queue[0][0] <= until:
            when, _, handle = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            if not handle.cancelled:
                handle.fn(*handle.args)
        self.now = until
