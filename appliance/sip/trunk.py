"""Registration to SIP trunks: digest on 401/407, refresh before expiry, backoff, OPTIONS keepalive."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from ..bus import EventBus
from .targets import TrunkPeer
from .dialog import new_tag
from .digest import build_authorization
from .endpoint import LocalEndpoint
from .message import Request, Response
from .transaction import TransactionLayer
from .transport import Peer

log = logging.getLogger("switchboard.sip.trunk")
BACKOFF = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


@dataclass
class TrunkStatus:
    """What `switchboard trunks --status` shows."""

    name: str
    state: str = "unregistered"   # unregistered, registering, registered, failed, unreachable, reachable
    registered_until: float | None = None
    last_error: str | None = None
    reachable: bool | None = None
    options_rtt_ms: float | None = None
    changed_at: float = field(default_factory=time.time)


class TrunkClient:
    """Keeps one trunk registered and watched."""

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: TransactionLayer, endpoint: LocalEndpoint,
                 row: dict, bus: EventBus, save: Callable[[TrunkStatus], None],
                 keepalive: float = 30.0) -> None:
        self.loop = loop
        self.layer = layer
        self.endpoint = endpoint
        self.row = row
        self.bus = bus
        self.save = save
        self.keepalive = keepalive
        self.name: str = row["name"]
        self.status = TrunkStatus(self.name)
        self.peer: TrunkPeer | None = None
        self.call_id = f"{new_tag()}{new_tag()}@switchboard"
        self.from_tag = new_tag()
        self.cseq = 0
        self.failures = 0
        self._timer: asyncio.TimerHandle | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._stopped = False

    @property
    def domain(self) -> str:
        """The trunk's SIP domain for From/To and Request-URIs."""
        return self.row.get("from_domain") or self.row["host"]

    async def start(self) -> None:
        """Resolve the trunk host, then register and start the keepalive."""
        transport = (self.row.get("transport") or "udp").upper()
        port = int(self.row.get("port") or 5060)
        try:
            infos = await self.loop.getaddrinfo(self.row["host"], port, type=socket.SOCK_DGRAM)
            address = infos[0][4][0]
        except OSError as exc:
            self._set_state("failed", f"cannot resolve {self.row['host']}: {exc}")
            self._schedule(self._backoff(), self._retry_start)
            return
        self.peer = TrunkPeer(self.name, Peer(transport, str(address), port), self.domain,
                              self.row.get("username"), self.row.get("secret"), self.row.get("inbound") or "")
        if self.row.get("register"):
            self.register()
        self._keepalive_timer = self.loop.call_later(self.keepalive, self.send_options)

    def _retry_start(self) -> None:
        self.loop.create_task(self.start())

    def stop(self) -> None:
        """Stop timers and un-register (best effort)."""
        self._stopped = True
        for timer in (self._timer, self._keepalive_timer):
            if timer is not None:
                timer.cancel()
        if self.peer and self.row.get("register") and self.status.state == "registered":
            self.register(expires=0)

    # --- REGISTER -------------------------------------------------------------
    def register(self, expires: int | None = None, credentials: tuple[str, str] | None = None) -> None:
        """Send a REGISTER (with credentials after a challenge)."""
        assert self.peer is not None
        if expires is None:
            expires = int(self.row.get("expires") or 300)
        self.cseq += 1
        user = self.row.get("username") or ""
        aor = f"<sip:{user}@{self.domain}>"
        transport = self.peer.peer.transport
        headers = [["Via", self.endpoint.via(transport, self.layer.new_branch())], ["Max-Forwards", "70"],
                   ["From", f"{aor};tag={self.from_tag}"], ["To", aor], ["Call-ID", self.call_id],
                   ["CSeq", f"{self.cseq} REGISTER"], ["Contact", self.endpoint.contact(user, transport)],
                   ["Expires", str(expires)], ["User-Agent", "Switchboard"]]
        uri = f"sip:{self.domain}"
        request = Request("REGISTER", uri, headers)
        if credentials is not None:
            request.set_header(*credentials)
        # A failed trunk stays "failed" (with its error) while it retries, until it succeeds.
        if expires and self.status.state not in ("registered", "failed"):
            self._set_state("registering", None)
        self.layer.send_request(request, self.peer.peer,
                                lambda r: self._on_register(r, request, expires, credentials is not None))

    def _on_register(self, response: Response, request: Request, expires: int, had_credentials: bool) -> None:
        status = response.status
        if status < 200 or self._stopped and expires:
            return
        if status in (401, 407) and not had_credentials:
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            challenge = response.header(header)
            try:
                value = build_authorization(challenge or "", "REGISTER", request.uri,
                                            self.row.get("username") or "", self.row.get("secret") or "")
            except ValueError as exc:
                self._failed(f"cannot answer challenge: {exc}")
                return
            self.register(expires, ("Authorization" if status == 401 else "Proxy-Authorization", value))
            return
        if 200 <= status < 300:
            if expires == 0:
                self._set_state("unregistered", None)
                return
            granted = _granted_expires(response, self.endpoint, expires)
            self.failures = 0
            self.status.registered_until = time.time() + granted
            self._set_state("registered", None)
            refresh = max(granted * 0.8, granted - 30) if granted > 60 else max(granted / 2, 1.0)
            self._schedule(refresh, self.register)
            return
        if status == 423:
            minimum = response.header("Min-Expires")
            if minimum and minimum.isdigit():
                self.row = {**self.row, "expires": int(minimum)}
                self.register()
                return
        self._failed(f"{status} {response.reason}")

    def _failed(self, reason: str) -> None:
        self.status.registered_until = None
        self._set_state("failed", reason)
        delay = self._backoff()
        log.warning("trunk %s registration failed (%s); retrying in %.0f s", self.name, reason, delay)
        self._schedule(delay, self.register)

    def _backoff(self) -> float:
        delay = BACKOFF[min(self.failures, len(BACKOFF) - 1)]
        self.failures += 1
        return delay

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        if self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, action)

    # --- OPTIONS keepalive ----------------------------------------------------
    def send_options(self) -> None:
        """Ping the trunk; a timeout marks it unreachable."""
        if self._stopped or self.peer is None:
            return
        transport = self.peer.peer.transport
        uri = f"sip:{self.domain}"
        headers = [["Via", self.endpoint.via(transport, self.layer.new_branch())], ["Max-Forwards", "70"],
                   ["From", f"<sip:switchboard@{self.endpoint.host}>;tag={new_tag()}"], ["To", f"<{uri}>"],
                   ["Call-ID", f"{new_tag()}@switchboard"], ["CSeq", "1 OPTIONS"]]
        sent = self.loop.time()

        def answered(response: Response) -> None:
            if response.status < 200:
                return
            reachable = not response.local
            self.status.options_rtt_ms = round((self.loop.time() - sent) * 1000, 1) if reachable else None
            if reachable != self.status.reachable:
                self.status.reachable = reachable
                if not reachable and self.status.state == "registered":
                    self.status.registered_until = None
                    self._set_state("unreachable", "no answer to OPTIONS")
                    self._schedule(1.0, self.register)
                else:
                    self._set_state(self.status.state, self.status.last_error)
            else:
                self.save(self.status)  # keep the RTT shown by `trunks --status` current
            self._keepalive_timer = self.loop.call_later(self.keepalive, self.send_options)

        self.layer.send_request(Request("OPTIONS", uri, headers), self.peer.peer, answered)

    def _set_state(self, state: str, error: str | None) -> None:
        changed = state != self.status.state
        self.status.state = state
        self.status.last_error = error
        self.status.changed_at = time.time()
        self.save(self.status)
        if changed:
            log.info("trunk %s: %s%s", self.name, state, f" ({error})" if error else "")
            self.bus.publish("trunk.state", trunk=self.name, state=state, error=error)


def _granted_expires(response: Response, endpoint: LocalEndpoint, asked: int) -> int:
    """The lifetime the registrar granted to our contact."""
    for contact in response.contacts:
        uri = contact.uri
        if getattr(uri, "host", None) == endpoint.host and getattr(uri, "port", None) == endpoint.port:
            value = contact.params.get("expires")
            if value and value.isdigit():
                return int(value)
    header = response.header("Expires")
    return int(header) if header and header.isdigit() else asked
