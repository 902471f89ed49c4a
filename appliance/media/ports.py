"""RTP/RTCP port pair allocation from a configured UDP range."""
from __future__ import annotations

import contextlib
import errno
import socket

__all__ = ["PortAllocator", "PortsExhausted"]

# DSCP EF (46) << 2: what phones and switches expect for voice media.
TOS_EF = 0xB8


class PortsExhausted(RuntimeError):
    """No free even/odd RTP/RTCP port pair is left in the range."""


class PortAllocator:
    """Hands out (even RTP, RTP+1 RTCP) bound non-blocking UDP socket pairs, cycling through the range."""

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
        self._cursor = 0  # index of the next pair to try
        self._in_use: set[int] = set()

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
        for i in range(self._count):
            index = (self._cursor + i) % self._count
            port = self._first + 2 * index
            if port in self._in_use:
                continue
            pair = self._bind_pair(port)
            if pair is None:
                continue  # taken by another process; try the next pair
            self._in_use.add(port)
            # Start after this pair next time, so a just-freed port is not reused at once
            # and late packets of the previous call cannot land in a new one.
            self._cursor = (index + 1) % self._count
            return pair[0], pair[1], port
        raise PortsExhausted(f"no free RTP port pair in {self.low}-{self.high} on {self.host}")

    def release(self, port: int) -> None:
        """Mark a pair free again (the caller closes the sockets); unknown ports are ignored."""
        self._in_use.discard(port)

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
