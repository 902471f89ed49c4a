"""The box's ban list, wired up: kept in SQLite, never against a trunk or an exempt network, on the LED and bus."""
from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .bus import EventBus
from .sip.security import BanList
from .store import bans as store_bans

log = logging.getLogger("switchboard.security")
FAULT = "addresses banned"


class BanKeeper:
    """Builds the BanList for the box's settings and keeps its bans in the store and on the power LED."""

    def __init__(self, db: Any, bus: EventBus, settings: Any, trunk_hosts: Callable[[], Iterable[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.bus = bus
        self._clock = clock
        self._trunk_hosts = trunk_hosts
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in settings.ban_exempt)
        self._shown = False
        self._hosts: tuple[float, frozenset[str]] = (0.0, frozenset())
        self.bans = BanList(settings.ban_max_failures, settings.ban_window, settings.ban_seconds, clock=clock,
                            log=log, account_failures=settings.ban_account_failures, exempt=self.exempt,
                            on_change=self._changed)
        for row in store_bans.active_bans(db, clock()):
            self.bans.restore(row["source"], row["until"], row["reason"] or "")
        restored = self.bans.details()
        if restored:
            log.warning("%d bans kept from before the restart: %s", len(restored),
                        ", ".join(source for source, _, _ in restored))
        self.refresh()

    def exempt(self, source: str) -> bool:
        """Never ban a configured trunk's address, nor an address in [box] ban_exempt."""
        now = time.monotonic()
        if self._hosts[0] <= now:  # cached: a flood from a banned address must not query the store per packet
            self._hosts = (now + 5.0, frozenset(self._trunk_hosts()))
        if source in self._hosts[1]:
            return True
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def lift(self, source: str) -> bool:
        """Lift a ban by hand (CLI or web); True if there was one."""
        lifted = self.bans.unban(source)
        if lifted:
            log.warning("ban of %s lifted by hand", source)
        return lifted

    def listing(self) -> list[dict]:
        """Current bans for people: source, seconds left, reason."""
        return [{"source": source, "seconds_left": round(left), "reason": reason}
                for source, left, reason in self.bans.details()]

    def refresh(self) -> None:
        """Keep the power LED's fault in step with the ban list (bans also end by themselves)."""
        active = bool(self.bans.details())
        if active != self._shown:
            self._shown = active
            self.bus.publish("box.fault", fault=FAULT, active=active)

    def _changed(self, source: str, until: float | None, reason: str) -> None:
        if until is None:
            store_bans.lift_ban(self.db, source)
            self.bus.publish("security.unban", source=source)
        else:
            store_bans.save_ban(self.db, source, until, reason)
        self.refresh()
