"""Call recording to an 8 kHz 16-bit WAV that stays valid on disk while the call goes on."""
from __future__ import annotations

import struct
import time
from array import array
from pathlib import Path
from typing import BinaryIO, Callable

from appliance.media.g711 import codec_for

__all__ = ["WavRecorder", "RATE"]

RATE = 8000
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_MAX_DATA = 0xFFFFFFFF - _HEADER.size  # the RIFF size fields are 32-bit
# Audio this close after a channel's end is joined on without a gap, so network jitter
# does not chop the recording with slivers of silence; longer gaps (loss, silence) are kept.
_JOIN = int(0.010 * RATE)
# A flush pads a silent channel only up to this long ago: a packet up to this late
# still lands in its place instead of after the padding.
_HOLD = int(0.25 * RATE)
# Audio that would put a channel this far ahead of the clock is dropped (bounds memory
# against a peer sending faster than real time).
_MAX_AHEAD = 2 * RATE
# Frames written per step when a flush has a long stretch of silence to fill.
_CHUNK = 5 * RATE


class WavRecorder:
    """Writes a call to WAV: mono for one leg, or stereo with 0 = caller speaking, 1 = caller hearing.

    Audio is placed by arrival time relative to the recorder's start, so the channels stay
    aligned; the header is rewritten at each flush so a crash loses at most
    flush_every + 0.25 s. Disk errors stop the recording (see `error`), never the call.
    """

    def __init__(self, path: Path, channels: int = 2, clock: Callable[[], float] = time.monotonic,
                 flush_every: float = 1.0) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels}")
        self.path = Path(path)
        self.channels = channels
        self.error: str | None = None
        self.dropped_frames = 0  # audio refused for running too far ahead of the clock
        self._clock = clock
        self._flush_every = flush_every
        self._start = clock()
        self._last_flush = self._start
        self._pending = [bytearray() for _ in range(channels)]  # per channel, after _written
        self._written = 0  # frames handed to the file, the same for every channel
        self._on_disk = 0  # frames the header on disk counts
        self._duration: float | None = None  # set by close()
        self._file: BinaryIO | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")
            self._file.write(self._header())
            self._file.flush()
        except OSError as e:
            self._fail(e)

    @property
    def closed(self) -> bool:
        """True after close() or a disk error: further audio is ignored."""
        return self._file is None

    @property
    def duration(self) -> float:
        """Seconds of audio the file on disk holds so far."""
        return self._on_disk / RATE

    def write(self, channel: int, pcm16: bytes, at: float | None = None) -> None:
        """Add 16-bit LE PCM for one channel, placed at arrival time `at` (default: now)."""
        if not 0 <= channel < self.channels:
            raise ValueError(f"channel {channel} of a {self.channels}-channel recording")
        if self._file is None:
            return
        now = self._clock()
        if now - self._last_flush >= self._flush_every:
            self.flush(now)
            if self._file is None:
                return
        frames = len(pcm16) // 2  # an odd trailing byte is not a sample
        buf = self._pending[channel]
        end = self._written + len(buf) // 2
        pos = round(((now if at is None else at) - self._start) * RATE)
        # Earlier than the end (late, overlapping, or within the join margin): appended.
        place = pos if pos > end + _JOIN else end
        if place + frames > (now - self._start) * RATE + _MAX_AHEAD:
            self.dropped_frames += frames
            return
        if place > end:
            buf += bytes(2 * (place - end))
        buf += pcm16[:2 * frames]

    def write_g711(self, channel: int, payload: bytes, codec_name: str | int,
                   at: float | None = None) -> None:
        """Add a G.711 payload ("PCMU"/"PCMA" or payload type) for one channel."""
        if self._file is not None:
            self.write(channel, codec_for(codec_name).decode(payload), at)

    def flush(self, now: float | None = None) -> None:
        """Write the aligned audio so far (silent channels padded up to 0.25 s ago) and the header."""
        if self._file is None:
            return
        now = self._clock() if now is None else now
        self._last_flush = now
        self._write_through(round((now - self._start) * RATE) - _HOLD)

    def close(self) -> float:
        """Write everything, pad to the close time, finalize the file; returns its duration in seconds."""
        if self._duration is not None:
            return self._duration
        if self._file is not None:
            now_frames = round((self._clock() - self._start) * RATE)
            longest = self._written + max(len(b) for b in self._pending) // 2
            self._write_through(max(now_frames, longest))
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:
                self._fail(e)
            self._file = None
        self._pending = [bytearray() for _ in range(self.channels)]
        self._duration = self.duration
        return self._duration

    def _write_through(self, target: int) -> None:
        """Pad every channel to at least `target` frames, write all aligned frames, patch the header."""
        assert self._file is not None
        pending = self._pending
        wrote = False
        while True:
            stop = min(target, self._written + _CHUNK)
            for buf in pending:
                short = stop - self._written - len(buf) // 2
                if short > 0:
                    buf += bytes(2 * short)
            frames = min(len(buf) for buf in pending) // 2
            if frames <= 0:
                break
            if 2 * self.channels * (self._written + frames) > _MAX_DATA:
                self._fail(OSError("recording reached the 4 GiB WAV limit"))
                return
            data = self._interleave(frames)
            try:
                self._file.write(data)
            except OSError as e:
                self._fail(e)
                return
            self._written += frames
            wrote = True
            if self._written >= target:
                break
        if wrote:
            try:
                # Data first (seek flushes it), then the sizes: a crash in between leaves a
                # shorter but valid file.
                self._file.seek(0)
                self._file.write(self._header())
                self._file.flush()
                self._file.seek(0, 2)
            except OSError as e:
                self._fail(e)
                return
            self._on_disk = self._written

    def _interleave(self, frames: int) -> bytes:
        """Take `frames` frames off every channel's pending audio, interleaved."""
        n = 2 * frames
        if self.channels == 1:
            data = bytes(self._pending[0][:n])  # a copy: the buffer is trimmed below
            del self._pending[0][:n]
            return data
        out = array("h", bytes(2 * n))
        for c, buf in enumerate(self._pending):
            out[c::2] = array("h", buf[:n])
            del buf[:n]
        return out.tobytes()

    def _header(self) -> bytes:
        """The 44-byte RIFF/WAVE header for what is on disk now."""
        size = 2 * self.channels * self._written
        return _HEADER.pack(b"RIFF", 36 + size, b"WAVE", b"fmt ", 16, 1, self.channels, RATE,
                            2 * self.channels * RATE, 2 * self.channels, 16, b"data", size)

    def _fail(self, e: OSError) -> None:
        """Stop recording after a disk error, keeping what made it to disk."""
        self.error = f"{self.path}: {e.strerror or e}"
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self._file = None
        self._pending = [bytearray() for _ in range(self.channels)]
