"""Brute-force protection: ban sources that guess passwords, without locking the office out.

Failures are counted per source and per account over a long window (an hour by default), so slow
guessing is caught too, and one good login on another account does not wipe a source's count. An
account that many sources fail against is under attack: from then on every source that fails on it
is banned at its first failure. The same wrong answer repeated within seconds (a retransmission, or
a phone retrying with a stale password) counts once. Configured trunk peers are never banned, and
bans are handed to `on_change` so the box can keep them in SQLite across a restart.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Callable, Iterable

__all__ = ["BanList", "BanChange"]

BanChange = Callable[[str, "float | None", str], None]
"""(source, until as a wall-clock time or None when lifted, reason)."""

DEDUPE_SECONDS = 30.0  # the same wrong credentials from the same source within this long count once


class BanList:
    """Counts failed authentications per source and per account, and bans sources that fail too often."""

    def __init__(self, max_failures: int = 10, window: float = 3600.0, ban_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.time, log: logging.Logger | None = None,
                 *, account_failures: int = 20, max_sources: int = 50_000, never_ban: Iterable[str] = (),
                 exempt: Callable[[str], bool] = lambda source: False,
                 on_change: BanChange | None = None) -> None:
        if max_failures < 1 or account_failures < 1:
            raise ValueError("max_failures and account_failures must be at least 1")
        self.max_failures = max_failures
        self.account_failures = account_failures
        self.window = window
        self.ban_seconds = ban_seconds
        self._clock = clock
        self._log = log if log is not None else logging.getLogger(__name__)
        self._max_sources = max_sources
        self._never_ban = frozenset(never_ban)
        self._exempt = exempt
        self._on_change = on_change
        self._failures: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()  # source -> (time, account)
        self._accounts: OrderedDict[str, deque[float]] = OrderedDict()
        self._attacked: dict[str, float] = {}  # account -> until when every failing source is banned at once
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # (source, fingerprint) -> time
        self._bans: dict[str, tuple[float, str]] = {}  # source -> (until, reason)
        self._lock = threading.Lock()

    # --- reading ------------------------------------------------------------------------------
    def is_banned(self, source: str) -> bool:
        """Whether requests from source should be dropped right now."""
        ban = self._bans.get(source)
        if ban is None:
            return False
        if ban[0] > self._clock() and not self._is_exempt(source):
            return True
        with self._lock:
            if self._bans.get(source) == ban:
                del self._bans[source]
        return False

    def bans(self) -> list[tuple[str, float]]:
        """Current bans as (source, seconds left), soonest to end first."""
        return [(source, left) for source, left, _reason in self.details()]

    def details(self) -> list[tuple[str, float, str]]:
        """Current bans as (source, seconds left, reason), soonest to end first."""
        now = self._clock()
        with self._lock:
            for source in [s for s, (until, _) in self._bans.items() if until <= now]:
                del self._bans[source]
            return sorted(((s, until - now, reason) for s, (until, reason) in self._bans.items()),
                          key=lambda item: item[1])

    def attacked_accounts(self) -> list[str]:
        """Accounts many sources are failing against right now."""
        now = self._clock()
        return sorted(account for account, until in self._attacked.items() if until > now)

    # --- counting -----------------------------------------------------------------------------
    def record_failure(self, source: str, account: str | None = None, fingerprint: str | None = None) -> bool:
        """Count a failed authentication; True exactly when it starts a ban.

        fingerprint identifies the credentials tried (e.g. the digest response): the same one from the
        same source within DEDUPE_SECONDS is a retry, not a new guess.
        """
        if self._is_exempt(source):
            return False
        now = self._clock()
        account = (account or "").strip().lower()[:64]
        with self._lock:
            ban = self._bans.get(source)
            if ban is not None and ban[0] > now:
                return False
            if fingerprint and self._repeated(source, fingerprint, now):
                return False
            times = self._failures.pop(source, None) or deque()
            times.append((now, account))
            while times and times[0][0] <= now - self.window:
                times.popleft()
            self._failures[source] = times
            self._bound(self._failures)
            reason = None
            if account and self._account_failed(account, now):
                reason = f"guessing passwords of account {account!r}, which many addresses fail against"
            elif len(times) >= self.max_failures:
                reason = f"{len(times)} failed authentications"
            if reason is None:
                return False
            self._ban(source, now + self.ban_seconds, reason)
        self._log.warning("banned %s for %g s after %s", source, self.ban_seconds, reason)
        self._changed(source, now + self.ban_seconds, reason)
        return True

    def record_success(self, source: str, account: str | None = None) -> None:
        """A source authenticated as account: forget its failures on that account (only that one)."""
        account = (account or "").strip().lower()[:64]
        with self._lock:
            times = self._failures.get(source)
            if times is None:
                return
            kept = deque(item for item in times if item[1] != account)
            if kept:
                self._failures[source] = kept
            else:
                del self._failures[source]

    # --- bans by hand and from the store --------------------------------------------------------
    def ban(self, source: str, seconds: float, reason: str = "banned by hand") -> None:
        """Ban a source now (or restore a stored ban: seconds left)."""
        until = self._clock() + seconds
        with self._lock:
            self._ban(source, until, reason)
        self._changed(source, until, reason)

    def restore(self, source: str, until: float, reason: str) -> None:
        """Put back a ban kept in the store (no change is reported: it is stored already)."""
        if until > self._clock():
            with self._lock:
                self._ban(source, until, reason)

    def unban(self, source: str) -> bool:
        """Lift a ban by hand and forget the source's failures; True if there was a ban."""
        with self._lock:
            self._failures.pop(source, None)
            lifted = self._bans.pop(source, None) is not None
        self._changed(source, None, "lifted")
        return lifted

    # --- inside ----------------------------------------------------------------------------------
    def _is_exempt(self, source: str) -> bool:
        if source in self._never_ban:
            return True
        try:
            return bool(self._exempt(source))
        except Exception:  # an exemption check must never make the box ban, nor crash it
            self._log.exception("ban exemption check failed for %s", source)
            return False

    def _repeated(self, source: str, fingerprint: str, now: float) -> bool:
        key = (source, fingerprint)
        seen = self._seen.pop(key, None)
        self._seen[key] = now
        while self._seen and next(iter(self._seen.values())) <= now - DEDUPE_SECONDS:
            self._seen.popitem(last=False)
        self._bound(self._seen)
        return seen is not None and seen > now - DEDUPE_SECONDS

    def _account_failed(self, account: str, now: float) -> bool:
        """Count a failure on an account; True when the account is under attack."""
        times = self._accounts.pop(account, None) or deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        self._accounts[account] = times
        self._bound(self._accounts)
        if len(times) >= self.account_failures and self._attacked.get(account, 0.0) <= now:
            self._attacked[account] = now + self.window
            self._log.warning("account %r: %d failed authentications in %g s from several addresses; "
                              "every address that fails on it now is banned at once", account, len(times),
                              self.window)
            return False  # this failure starts the attack state; the source is judged by its own count
        return self._attacked.get(account, 0.0) > now

    def _ban(self, source: str, until: float, reason: str) -> None:
        self._bans[source] = (until, reason)
        self._failures.pop(source, None)
        if len(self._bans) > self._max_sources:
            oldest = min(self._bans, key=lambda s: self._bans[s][0])
            del self._bans[oldest]

    def _bound(self, table: OrderedDict) -> None:
        while len(table) > self._max_sources:
            table.popitem(last=False)

    def _changed(self, source: str, until: float | None, reason: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(source, until, reason)
        except Exception:
            self._log.exception("could not store the ban change for %s", source)
