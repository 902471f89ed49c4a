"""Login throttling: too many failures for one username or from one address lock it out a while."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 15 * 60.0
LOCKOUT = 15 * 60.0


@dataclass
class _Entry:
    failures: deque = field(default_factory=deque)  # monotonic times of recent failures
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Counts failed logins per username and per client address; thread-safe, bounded memory.

    `user_limit` failures for one username within `window` seconds lock that username for
    `lockout` seconds; `address_limit` failures from one address lock the address. While locked,
    attempts are refused without looking at the password.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, user_limit: int = 5,
                 address_limit: int = 20, window: float = WINDOW, lockout: float = LOCKOUT,
                 max_entries: int = 10_000) -> None:
        self._clock = clock
        self._limits = {"user": user_limit, "addr": address_limit}
        self._window = window
        self._lockout = lockout
        self._max = max_entries
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(address: str | None, username: str | None) -> list[tuple[str, str]]:
        keys = []
        if username:
            keys.append(("user", username.strip().lower()))
        if address:
            keys.append(("addr", address))
        return keys

    def blocked(self, address: str | None, username: str | None = None) -> float:
        """Seconds until the username or the address may try again; 0 when they may now."""
        now = self._clock()
        with self._lock:
            waits = [e.locked_until - now for k in self._keys(address, username)
                     if (e := self._entries.get(k)) is not None and e.locked_until > now]
        return max(waits, default=0.0)

    def blocked_minutes(self, address: str | None, username: str | None = None) -> int:
        """Whole minutes (rounded up) until the next attempt is allowed; 0 when it is."""
        return math.ceil(self.blocked(address, username) / 60)

    def failure(self, address: str | None, username: str | None = None) -> None:
        """Count one failed attempt against the username and the address."""
        now = self._clock()
        with self._lock:
            for key in self._keys(address, username):
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry()
                self._expire(entry, now)
                entry.failures.append(now)
                entry.last = now
                if len(entry.failures) >= self._limits[key[0]]:
                    entry.locked_until = now + self._lockout
                    entry.failures.clear()
            if len(self._entries) > self._max:
                self._prune(now)

    def success(self, username: str | None) -> None:
        """A good login forgets that username's failures (the address's stay counted)."""
        with self._lock:
            for key in self._keys(None, username):
                self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _expire(self, entry: _Entry, now: float) -> None:
        while entry.failures and entry.failures[0] <= now - self._window:
            entry.failures.popleft()

    def _prune(self, now: float) -> None:
        for key in list(self._entries):
            entry = self._entries[key]
            self._expire(entry, now)
            if not entry.failures and entry.locked_until <= now:
                del self._entries[key]
        excess = len(self._entries) - self._max
        if excess > 0:  # a flood of distinct names: forget the least recently seen first
            for key in sorted(self._entries, key=lambda k: self._entries[k].last)[:excess]:
                del self._entries[key]
