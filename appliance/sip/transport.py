"""SIP over UDP and TCP on one port, with RFC 3581 rport/received on the way in."""
from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Callable

from .message import Message, Request, Response, SipParseError, frame_stream, parse_message

log = logging.getLogger("switchboard.sip.transport")
_UDP_MAX = 65535


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to: transport and address."""

    transport: str  # "UDP" or "TCP"
    host: str
    port: int

    @property
    def addr(self) -> tuple[str, int]:
        """Host and port as a socket address."""
        return (self.host, self.port)


MessageHandler = Callable[[Message, Peer], None]


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """How much SIP over TCP the box takes: connections in all and per address, and idle timeouts."""

    max_connections: int = 512
    max_per_source: int = 32
    idle_timeout: float = 32.0       # no complete message for this long: closed (RFC 5626 §4.4.1 flow timer scale)
    registered_idle: float = 600.0   # a phone registered over the connection keeps it this long when quiet
    max_header_bytes: int = 16384    # headers longer than this end the connection


class _TcpConnection(asyncio.Protocol):
    """One TCP connection: frames the byte stream into SIP messages, within the transport's limits."""

    def __init__(self, owner: "SipTransport", outbound: bool = False) -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.outbound = outbound      # the box connected (to a trunk): not counted against anybody
        self.registered = outbound    # long idle timeout
        self.last_message = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer("TCP", host, port)
        owner = self.owner
        if not self.outbound and not owner._admit(host):
            self.peer = None
            transport.abort()  # type: ignore[attr-defined]
            return
        owner._connections[self.peer.addr] = self
        if not self.outbound:
            owner._per_source[host] = owner._per_source.get(host, 0) + 1
            owner._inbound += 1
        self.last_message = owner.loop.time()
        self._arm()

    def _arm(self) -> None:
        limits = self.owner.tcp_limits
        wait = limits.registered_idle if self.registered else limits.idle_timeout
        self._timer = self.owner.loop.call_at(self.last_message + wait, self._idle_check)

    def _idle_check(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        limits = self.owner.tcp_limits
        wait = limits.registered_idle if self.registered else limits.idle_timeout
        if self.owner.loop.time() >= self.last_message + wait:
            log.info("closing idle TCP connection from %s:%s", self.peer.host, self.peer.port)  # type: ignore[union-attr]
            self.transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            return
        if self.owner.is_blocked(self.peer.host):
            self.transport.close()  # type: ignore[union-attr]
            return
        self.buffer += data
        while True:
            try:
                raw = frame_stream(self.buffer, self.owner.tcp_limits.max_header_bytes)
            except SipParseError as exc:
                log.warning("closing TCP %s:%s: %s", self.peer.host, self.peer.port, exc.reason)
                self.transport.close()  # type: ignore[union-attr]
                return
            if raw is None:
                return
            self.last_message = self.owner.loop.time()
            self.owner._received(raw, self.peer, stream=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.peer is None:
            return
        owner = self.owner
        if owner._connections.get(self.peer.addr) is self:
            del owner._connections[self.peer.addr]
        if self.outbound:
            return
        owner._inbound -= 1
        count = owner._per_source.get(self.peer.host, 0) - 1
        if count > 0:
            owner._per_source[self.peer.host] = count
        else:
            owner._per_source.pop(self.peer.host, None)


class SipTransport:
    """Listens on one UDP and one TCP port and hands whole messages to a handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                 handler: MessageHandler | None = None, tcp: bool = True, tcp_limits: TcpLimits | None = None,
                 is_blocked: Callable[[str], bool] = lambda host: False) -> None:
        self.loop = loop
        self.tcp = tcp
        self.host = host
        self.port = port
        # Messages go to the handler once there is one (serve()): until then they are dropped, as a
        # socket bound before the transaction layer above it is ready must not answer anything.
        self.handler: MessageHandler = handler or (lambda message, peer: None)
        self.udp: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[tuple[str, int], _TcpConnection] = {}
        self._per_source: dict[str, int] = {}
        self._inbound = 0
        self.tcp_limits = tcp_limits or TcpLimits()
        self._buffer = bytearray(_UDP_MAX)
        self._view = memoryview(self._buffer)
        self.stats = {"rx": 0, "tx": 0, "bad": 0, "blocked": 0, "tcp_refused": 0}
        self.is_blocked = is_blocked  # the ban list, checked before parsing

    async def start(self) -> None:
        """Bind UDP, and TCP on the same port unless this transport is UDP only."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        try:
            udp.bind((self.host, self.port))
        except OSError as exc:
            udp.close()
            raise OSError(exc.errno, f"cannot listen for SIP on {self.host}:{self.port}: {exc.strerror}") from None
        udp.setblocking(False)
        self.port = udp.getsockname()[1]
        self.udp = udp
        self.loop.add_reader(udp.fileno(), self._on_udp_readable)
        if not self.tcp:
            return
        self._server = await self.loop.create_server(
            lambda: _TcpConnection(self), self.host, self.port, reuse_address=True)

    def serve(self, handler: MessageHandler) -> None:
        """Deliver every message from now on to handler (the transaction layer, once it is built)."""
        self.handler = handler

    async def stop(self) -> None:
        """Close every socket."""
        if self.udp is not None:
            self.loop.remove_reader(self.udp.fileno())
            self.udp.close()
            self.udp = None
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections.values()):
                if conn.transport:
                    conn.transport.close()
            await self._server.wait_closed()
            self._server = None

    def _admit(self, host: str) -> bool:
        """Whether a new inbound TCP connection from host fits the limits (and host is not banned)."""
        limits = self.tcp_limits
        if self.is_blocked(host):
            reason = "banned"
        elif self._inbound >= limits.max_connections:
            reason = f"{limits.max_connections} connections open in all"
        elif self._per_source.get(host, 0) >= limits.max_per_source:
            reason = f"{limits.max_per_source} connections open from this address"
        else:
            return True
        self.stats["tcp_refused"] += 1
        log.warning("refused a TCP connection from %s: %s", host, reason)
        return False

    def mark_registered(self, peer: Peer) -> None:
        """A phone registered over this TCP connection: it may stay quiet for longer (its keepalives)."""
        conn = self._connections.get(peer.addr)
        if conn is not None and not conn.registered:
            conn.registered = True
            if conn._timer is not None:
                conn._timer.cancel()
            conn._arm()

    def tcp_connections(self) -> dict[str, int]:
        """Open inbound TCP connections per source address."""
        return dict(self._per_source)

    def _on_udp_readable(self) -> None:
        udp = self.udp
        while udp is not None:
            try:
                size, addr = udp.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("UDP receive error: %s", exc)
                continue
            if size <= 4:
                continue  # keepalive CRLFs and empty datagrams
            if self.is_blocked(addr[0]):
                self.stats["blocked"] += 1
                continue
            self._received(bytes(self._view[:size]), Peer("UDP", addr[0], addr[1]))

    def _received(self, raw: bytes, peer: Peer, stream: bool = False) -> None:
        self.stats["rx"] += 1
        try:
            message = parse_message(raw, stream=stream)
            if isinstance(message, Request):
                _stamp_via(message, peer)
        except SipParseError as exc:
            self.stats["bad"] += 1
            log.info("malformed message from %s:%s: %s", peer.host, peer.port, exc.reason)
            self._answer_malformed(raw, peer, exc)
            return
        except Exception:  # the parser must never take the process down
            self.stats["bad"] += 1
            log.exception("parser failure on message from %s", peer)
            return
        try:
            self.handler(message, peer)
        except Exception:
            log.exception("error handling %r from %s", message, peer)

    def _answer_malformed(self, raw: bytes, peer: Peer, error: SipParseError) -> None:
        """Answer a broken request when enough of it survives to address a response."""
        if raw[:4].upper() == b"SIP/":
            return  # a broken response is dropped
        salvaged = salvage_headers(raw)
        if salvaged is None:
            return
        response = Response(error.status, None, salvaged)
        if error.status == 505:
            response.reason = "Version Not Supported"
        self.send(response.to_bytes(), peer)

    def send(self, data: bytes, peer: Peer) -> bool:
        """Send bytes to a peer; over TCP only on an open connection. False if not sent."""
        self.stats["tx"] += 1
        if peer.transport == "TCP":
            conn = self._connections.get(peer.addr)
            if conn is None or conn.transport is None or conn.transport.is_closing():
                self.loop.create_task(self._connect_and_send(data, peer))
                return True
            conn.transport.write(data)
            return True
        try:
            self.udp.sendto(data, peer.addr)  # type: ignore[union-attr]
            return True
        except OSError as exc:
            log.debug("UDP send to %s failed: %s", peer, exc)
            return False

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        try:
            transport, _ = await self.loop.create_connection(lambda: _TcpConnection(self, outbound=True),
                                                             peer.host, peer.port)
            transport.write(data)
        except OSError as exc:
            log.info("TCP connect to %s:%s failed: %s", peer.host, peer.port, exc)

    def has_connection(self, peer: Peer) -> bool:
        """Whether a TCP connection to the peer is open."""
        return peer.addr in self._connections


def _stamp_via(request: Request, peer: Peer) -> None:
    """Add received and rport to the top Via (RFC 3261 §18.2.1, RFC 3581 §4)."""
    try:
        via = request.top_via
    except (ValueError, IndexError):
        return  # validation answers 400 later
    changed = False
    if "rport" in via.params:
        via.params["rport"] = str(peer.port)
        changed = True
    if via.host.strip("[]") != peer.host or changed:
        via.params["received"] = peer.host
        changed = True
    if changed:
        request.set_top_via(via)


def response_destination(response: Response, arrived: Peer) -> Peer:
    """Where a response goes: the top Via's received/rport, or the connection (RFC 3261 §18.2.2)."""
    if arrived.transport == "TCP":
        return arrived
    via = response.top_via
    host = via.params.get("received") or via.host.strip("[]")
    rport = via.params.get("rport")
    port = int(rport) if rport else (via.port or 5060)
    return Peer("UDP", host, port)


def salvage_headers(raw: bytes) -> list[list[str]] | None:
    """Pull the headers a response needs out of a message the parser rejected."""
    wanted = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
              "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
    found: list[list[str]] = []
    text = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    for line in text.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if colon and key in wanted:
            found.append([wanted[key], value.strip()])
    names = {name for name, _ in found}
    if not {"Via", "From", "To", "Call-ID", "CSeq"} <= names:
        return None
    return found
