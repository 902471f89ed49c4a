"""RTP/RTCP port pair allocation from a configured UDP range."""
from __future__ import annotations

import contextlib
import errno
import secrets
import socket
from collections import deque

__all__ = ["PortAllocator", "PortsExhausted"]

# DSCP EF (46) << 2: what phones and switches expect for voice media.
TOS_EF = 0xB8


class PortsExhausted(RuntimeError):
    """No free even/odd RTP/RTCP port pair is left in the range."""


RANDOM_TRIES = 16
QUARANTINE = 64  # just-freed pairs not handed out again yet: late packets of an old call must not land in a new one


class PortAllocator:
    """Hands out (even RTP, RTP+1 RTCP) bound non-blocking UDP socket pairs, picked at random in the range.

    Random, not in order: with sequential ports an outsider who sees one call's port knows the next
    call's, and can spray it before the phones' media arrives.
    """

    def __init__(self, low: int, high: int, host: str, tos: int | None = TOS_EF) -> None:
        first = low + (low & 1)
        if not (0 < first and high <= 65535 and first + 1 <= high):
            raise ValueError(f"no even RTP/RTCP pair fits in port range {low}-{high}")
        self.low = low
        self.high = high
        self.host = host
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._tos = tos
        self._first = first
        self._count = (high - 1 - first) // 2 + 1
        self._in_use: set[int] = set()
        self._quarantine: deque[int] = deque(maxlen=min(QUARANTINE, self._count // 4))

    @property
    def capacity(self) -> int:
        """Number of port pairs in the range."""
        return self._count

    @property
    def in_use(self) -> int:
        """Number of port pairs currently handed out."""
        return len(self._in_use)

    def allocate(self) -> tuple[socket.socket, socket.socket, int]:
        """Bind and return (rtp_socket, rtcp_socket, rtp_port); raise PortsExhausted if none is free."""
        for _ in range(RANDOM_TRIES):
            found = self._try(secrets.randbelow(self._count))
            if found is not None:
                return found
        start = secrets.randbelow(self._count)  # a crowded range: scan it all from a random place
        for i in range(self._count):
            found = self._try((start + i) % self._count)
            if found is not None:
                return found
        for port in list(self._quarantine):  # only just-freed pairs are left
            self._quarantine.remove(port)
            found = self._try((port - self._first) // 2)
            if found is not None:
                return found
        raise PortsExhausted(f"no free RTP port pair in {self.low}-{self.high} on {self.host}")

    def _try(self, index: int) -> tuple[socket.socket, socket.socket, int] | None:
        port = self._first + 2 * index
        if port in self._in_use or port in self._quarantine:
            return None
        pair = self._bind_pair(port)
        if pair is None:
            return None  # taken by another process
        self._in_use.add(port)
        return pair[0], pair[1], port

    def release(self, port: int) -> None:
        """Mark a pair free again (the caller closes the sockets); unknown ports are ignored."""
        if port in self._in_use:
            self._in_use.discard(port)
            if self._quarantine.maxlen:
                self._quarantine.append(port)

    def _bind_pair(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        """Bind RTP and RTCP sockets on port and port+1, or None if either is in use."""
        rtp = self._bind(port)
        if rtp is None:
            return None
        rtcp = self._bind(port + 1)
        if rtcp is None:
            rtp.close()
            return None
        return rtp, rtcp

    def _bind(self, port: int) -> socket.socket | None:
        """Bind one non-blocking UDP socket, or None on EADDRINUSE; other errors propagate."""
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            # No SO_REUSEADDR: on Linux it would let two UDP sockets share a port.
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        sock.setblocking(False)
        if self._tos is not None:
            with contextlib.suppress(OSError):
                if self._family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, self._tos)
                else:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, self._tos)
        return sock
