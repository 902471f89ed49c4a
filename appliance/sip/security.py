"""Brute-force protection: ban sources after repeated failed authentications."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Callable, Iterable


class BanList:
    """Counts failed authentications per source and bans sources that fail too often."""

    def __init__(self, max_failures: int = 5, window: float = 60.0, ban_seconds: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, log: logging.Logger | None = None,
                 *, max_sources: int = 50_000, never_ban: Iterable[str] = ()) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.ban_seconds = ban_seconds
        self._clock = clock
        self._log = log if log is not None else logging.getLogger(__name__)
        self._max_sources = max_sources
        self._never_ban = frozenset(never_ban)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # Every ban lasts ban_seconds, so insertion order is also expiry order.
        self._bans: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def is_banned(self, source: str) -> bool:
        """Whether requests from source should be dropped right now."""
        until = self._bans.get(source)
        if until is None:
            return False
        if until > self._clock():
            return True
        with self._lock:
            if self._bans.get(source) == until:
                del self._bans[source]
        return False

    def record_failure(self, source: str) -> bool:
        """Count a failed authentication; True exactly when it starts a ban."""
        if source in self._never_ban:
            return False
        now = self._clock()
        with self._lock:
            until = self._bans.get(source)
            if until is not None and until > now:
                return False
            times = self._failures.pop(source, None)
            if times is None:
                times = deque(maxlen=self.max_failures)
            times.append(now)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.max_failures:
                self._failures[source] = times
                while len(self._failures) > self._max_sources:
                    self._failures.popitem(last=False)
                return False
            self._bans.pop(source, None)
            self._bans[source] = now + self.ban_seconds
            while len(self._bans) > self._max_sources:
                self._bans.popitem(last=False)
        self._log.warning("banned %s for %g s after %d failed authentications",
                          source, self.ban_seconds, len(times))
        return True

    def record_success(self, source: str) -> None:
        """Forget the failures of a source that has just authenticated."""
        with self._lock:
            self._failures.pop(source, None)

    def unban(self, source: str) -> bool:
        """Lift a ban by hand; True if there was one."""
        with self._lock:
            self._failures.pop(source, None)
            return self._bans.pop(source, None) is not None

    def bans(self) -> list[tuple[str, float]]:
        """Current bans as (source, seconds left), oldest first."""
        now = self._clock()
        with self._lock:
            for source in [s for s, until in self._bans.items() if until <= now]:
                del self._bans[source]
            return [(source, until - now) for source, until in self._bans.items()]
