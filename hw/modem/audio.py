"""Audio pacing: received bytes cut into 20 ms frames, sent audio buffered and written every 20 ms."""
from __future__ import annotations

import asyncio
import logging
from array import array
from typing import Callable

log = logging.getLogger("switchboard.hw.modem")

FRAME_BYTES = 320          # 20 ms of 16-bit mono 8 kHz
FRAME_SECONDS = 0.020
MAX_TX_BYTES = 3200        # 200 ms; older audio is dropped beyond it
SILENCE = bytes(FRAME_BYTES)


def s16_to_u8(pcm: bytes) -> bytes:
    """16-bit little-endian signed to 8-bit unsigned (V.253 +VSM=1)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    return bytes(((s >> 8) + 128) & 0xFF for s in samples)


def u8_to_s16(data: bytes) -> bytes:
    """8-bit unsigned to 16-bit little-endian signed."""
    return array("h", ((b - 128) << 8 for b in data)).tobytes()


class AudioPump:
    """Frames audio both ways; start() begins writing one frame per 20 ms to a sink."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_audio: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._on_audio = on_audio
        self._rx = bytearray()
        self._tx = bytearray()
        self._sink: Callable[[bytes], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0
        self._partial = 0

    @property
    def running(self) -> bool:
        """Whether frames are being written."""
        return self._sink is not None

    def push(self, pcm: bytes) -> None:
        """Audio to send; keeps at most 200 ms, dropping the oldest."""
        self._tx += pcm
        if len(self._tx) > MAX_TX_BYTES:
            del self._tx[: len(self._tx) - MAX_TX_BYTES]

    def feed(self, pcm: bytes) -> None:
        """Received audio; complete frames go to on_audio."""
        if self._sink is None:
            return
        self._rx += pcm
        while len(self._rx) >= FRAME_BYTES:
            frame = bytes(self._rx[:FRAME_BYTES])
            del self._rx[:FRAME_BYTES]
            try:
                self._on_audio(frame)
            except Exception:
                log.exception("on_audio failed")

    def start(self, sink: Callable[[bytes], None]) -> None:
        """Write a frame to sink every 20 ms (silence when nothing is buffered)."""
        self.stop()
        self._sink = sink
        self._rx.clear()
        self._next = self._loop.time()
        self._tick()

    def stop(self) -> None:
        """Stop writing; drop what is buffered."""
        self._sink = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._rx.clear()
        self._tx.clear()

    def _tick(self) -> None:
        sink = self._sink
        if sink is None:
            return
        if len(self._tx) >= FRAME_BYTES:
            frame = bytes(self._tx[:FRAME_BYTES])
            del self._tx[:FRAME_BYTES]
        elif self._tx and len(self._tx) == self._partial:
            # A tail that did not grow for a whole frame: send it padded rather than hold it forever.
            frame = bytes(self._tx) + SILENCE[len(self._tx):]
            self._tx.clear()
        else:
            frame = SILENCE
        self._partial = len(self._tx)
        try:
            sink(frame)
        except Exception:
            log.exception("audio write failed")
        now = self._loop.time()
        self._next += FRAME_SECONDS
        if self._next < now - 0.1:  # the loop stalled: start the clock again rather than burst
            self._next = now
        self._timer = self._loop.call_at(self._next, self._tick)
