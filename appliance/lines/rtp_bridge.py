"""The modem's 16-bit 8 kHz PCM on one side, G.711 RTP to and from the box on the other, in 20 ms frames."""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ..media.g711 import Codec, codec_for
from ..media.rtp import RtpError, RtpSender, parse_rtp

log = logging.getLogger("switchboard.lines.rtp")

FRAME_BYTES = 320  # 20 ms of 16-bit PCM at 8 kHz
SAMPLES = 160


class RtpBridge:
    """One RTP socket on 127.0.0.1: what the modem says goes out as RTP, what arrives goes to the modem."""

    def __init__(self, loop: asyncio.AbstractEventLoop, to_line: Callable[[bytes], None],
                 host: str = "127.0.0.1") -> None:
        self.loop = loop
        self.to_line = to_line
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self.codec: Codec = codec_for("PCMU")
        self.pt = 0
        self.sender = RtpSender()
        self._pending = b""
        self._reading = False
        self.stats = {"rx": 0, "tx": 0, "dropped": 0}

    def start(self, codec: str, payload_type: int, remote_host: str | None, remote_port: int) -> None:
        """Begin a call's media with the codec both ends agreed."""
        self.codec, self.pt = codec_for(codec), payload_type
        self.remote = (remote_host, remote_port) if remote_host and remote_port else None
        self.sender = RtpSender()
        self._pending = b""
        if not self._reading:
            self.loop.add_reader(self.sock.fileno(), self._readable)
            self._reading = True

    def stop(self) -> None:
        """The call's media is over (the socket stays for the next call)."""
        if self._reading:
            self.loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.remote = None

    def close(self) -> None:
        """Release the socket."""
        self.stop()
        self.sock.close()

    def from_line(self, pcm: bytes) -> None:
        """PCM the modem heard, sent on as one RTP packet per 20 ms."""
        if self.remote is None:
            return
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            packet = self.sender.next_packet(self.codec.encode(data[start:start + FRAME_BYTES]), self.pt, SAMPLES)
            try:
                self.sock.sendto(packet, self.remote)
                self.stats["tx"] += 1
            except OSError as exc:  # the box's relay went away: the call is ending anyway
                log.debug("RTP to %s: %s", self.remote, exc)
        self._pending = data[whole:]

    def _readable(self) -> None:
        while True:
            try:
                packet = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                header = parse_rtp(packet)
            except RtpError:
                self.stats["dropped"] += 1
                continue
            if header.payload_type != self.pt:  # telephone-event and comfort noise have no place on the modem
                self.stats["dropped"] += 1
                continue
            self.stats["rx"] += 1
            self.to_line(self.codec.decode(bytes(header.payload(memoryview(packet)))))
