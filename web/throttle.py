"""Login throttling: growing delays per username and per address, without locking the owner out.

After `user_limit` failures on one username within the window, every further attempt on it must wait,
and the wait doubles with each failure (30 s, 1 min, 2 min, ... up to `max_delay`). An address that
fails `address_limit` times waits the same way. The username's wait does not apply from an address
the user has logged in from before (a known-good source): a colleague guessing the admin's password
cannot keep the admin out, while guesses from elsewhere slow to a crawl. An admin can lift a wait
from the command line (`switchboard user unlock NAME`).
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 60 * 60.0
FIRST_DELAY = 30.0
MAX_DELAY = 15 * 60.0
KNOWN_GOOD_PER_USER = 8


@dataclass
class _Entry:
    failures: deque = field(default_factory=deque)  # monotonic times of recent failures
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Counts failed logins per username and per client address; thread-safe, bounded memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, user_limit: int = 5,
                 address_limit: int = 20, window: float = WINDOW, first_delay: float = FIRST_DELAY,
                 max_delay: float = MAX_DELAY, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._limits = {"user": user_limit, "addr": address_limit}
        self._window = window
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._max = max_entries
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._known_good: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()  # user -> addresses
        self._lock = threading.Lock()

    @staticmethod
    def _keys(address: str | None, username: str | None) -> list[tuple[str, str]]:
        keys = []
        if username:
            keys.append(("user", username.strip().lower()))
        if address:
            keys.append(("addr", address))
        return keys

    def known_good(self, address: str | None, username: str | None) -> bool:
        """Whether the user has logged in from this address before (since the box started)."""
        if not address or not username:
            return False
        with self._lock:
            return address in self._known_good.get(username.strip().lower(), {})

    def blocked(self, address: str | None, username: str | None = None) -> float:
        """Seconds until the username or the address may try again; 0 when they may now."""
        now = self._clock()
        trusted = self.known_good(address, username)
        with self._lock:
            waits = [e.locked_until - now for k in self._keys(address, username)
                     if (e := self._entries.get(k)) is not None and e.locked_until > now
                     and not (trusted and k[0] == "user")]
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
                over = len(entry.failures) - self._limits[key[0]]
                if over >= 0:
                    entry.locked_until = now + min(self._max_delay, self._first_delay * 2 ** min(over, 30))
            if len(self._entries) > self._max:
                self._prune(now)

    def success(self, username: str | None, address: str | None = None) -> None:
        """A good login: forget that username's failures, and remember the address as known-good for it."""
        if not username:
            return
        name = username.strip().lower()
        with self._lock:
            self._entries.pop(("user", name), None)
            if address:
                addresses = self._known_good.pop(name, None) or OrderedDict()
                addresses.pop(address, None)
                addresses[address] = None
                while len(addresses) > KNOWN_GOOD_PER_USER:
                    addresses.popitem(last=False)
                self._known_good[name] = addresses
                while len(self._known_good) > self._max:
                    self._known_good.popitem(last=False)

    def unlock(self, username: str | None = None, address: str | None = None) -> bool:
        """Lift the wait on a username and/or an address (an admin's command); True if there was one."""
        with self._lock:
            found = [self._entries.pop(key, None) for key in self._keys(address, username)]
        return any(entry is not None and entry.locked_until > self._clock() for entry in found)

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
