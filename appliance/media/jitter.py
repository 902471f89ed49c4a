"""Adaptive jitter buffer for RTP audio the box consumes itself (IVR digits, recording)."""
from __future__ import annotations

__all__ = ["JitterBuffer"]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
# A jump this many frames away from the playout point is a new stream (restart), not reordering.
_RESYNC_FRAMES = 100
# Pops (1 s) over which the lowest level is watched: only if even that stays above
# target + 1 is the delay really excess, since a single reading jumps with each early packet.
_SHRINK_WINDOW = 50
# Target delay is one frame plus this many times the interarrival jitter estimate, to the nearest frame.
_JITTER_MULTIPLE = 3.0


class JitterBuffer:
    """Reorders RTP payloads and releases one per 20 ms pop, at a depth adapted to the jitter."""

    def __init__(self, clock_rate: int = 8000, frame_ms: int = 20,
                 min_depth_ms: int = 20, max_depth_ms: int = 100) -> None:
        self._rate = clock_rate
        self._frame = frame_ms / 1000
        self._min_frames = max(1, min_depth_ms // frame_ms)
        self._max_frames = max(self._min_frames, max_depth_ms // frame_ms)
        self.reset()
        self.received = self.duplicates = self.late = self.lost = 0
        self.underruns = self.dropped = self.resyncs = 0

    def reset(self) -> None:
        """Forget the stream (call on an SSRC change); counters are kept."""
        self._slots: dict[int, bytes] = {}
        self._next: int | None = None  # extended sequence number of the next frame to play
        self._highest = 0  # highest extended sequence number seen
        self._jitter = 0.0  # RFC 3550 interarrival jitter, in timestamp units
        self._transit: int | None = None
        self._low = _RESYNC_FRAMES  # lowest level seen in the current shrink window
        self._watched = 0  # pops so far in that window
        self._fresh = True  # no frame played since playout (re)started
        self._applied = 0  # the depth the current delay was built for, in frames
        self._owed = 0  # pops still to hold back to build that delay

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in seconds (RFC 3550 section 6.4.1)."""
        return self._jitter / self._rate

    @property
    def depth_frames(self) -> int:
        """Target playout delay in frames."""
        wanted = 1 + round(_JITTER_MULTIPLE * self.jitter / self._frame)
        return min(self._max_frames, max(self._min_frames, wanted))

    @property
    def depth_ms(self) -> int:
        """Target playout delay in milliseconds."""
        return round(self.depth_frames * self._frame * 1000)

    @property
    def level(self) -> int:
        """Frames between the playout point and the newest packet, gaps included."""
        return 0 if self._next is None else max(0, self._highest - self._next + 1)

    def push(self, seq: int, timestamp: int, payload: bytes, arrival: float) -> bool:
        """Add a received packet (arrival in seconds, any monotonic origin); False if it was dropped."""
        self.received += 1
        ext: int | None = None
        if self._next is not None:
            delta = (seq - self._highest) % _SEQ_MOD
            ext = self._highest + (delta - _SEQ_MOD if delta >= _SEQ_MOD // 2 else delta)
            if abs(ext - self._next) > _RESYNC_FRAMES:
                self.resyncs += 1
                self._slots.clear()
                self._transit = None  # the new stream's timestamps have a new origin
                ext = None
        self._update_jitter(timestamp, arrival)
        if ext is None:
            self._start(seq, payload)
            return True
        if ext < self._next:
            if self._fresh and self._next - ext < self._max_frames:
                # Nothing played yet: an earlier packet overtaken by the first one still fits.
                self._slots[ext] = payload
                self._next = ext
                return True
            self.late += 1
            return False
        if ext in self._slots:
            self.duplicates += 1
            return False
        self._slots[ext] = payload
        self._highest = max(self._highest, ext)
        return True

    def pop(self) -> bytes | None:
        """The next frame's payload, or None: lost (conceal it), nothing buffered, or building up delay."""
        if self._next is None:
            return None
        target = self.depth_frames
        if target > self._applied:
            # Jitter grew: add the extra delay by waiting. A falling target only lets the
            # shrink below remove delay, so an estimate wavering between two depths costs nothing.
            self._owed += target - self._applied
            self._applied = target
        if self._owed:
            self._owed -= 1
            return None
        level = self.level
        if level == 0:
            # Nothing to play; waiting (rather than advancing) keeps the next packet on time.
            self.underruns += 1
            self._low = 0
            return None
        self._low = min(self._low, level)
        self._watched += 1
        if self._watched >= _SHRINK_WINDOW:
            if self._low > target + 1:
                # Delay has stayed above target for a whole window: drop the oldest frame.
                self._slots.pop(self._next, None)
                self._next += 1
                self.dropped += 1
                self._applied = max(target, self._applied - 1)
            self._low, self._watched = _RESYNC_FRAMES, 0
        payload = self._slots.pop(self._next, None)
        self._next += 1
        self._fresh = False
        if payload is None:
            self.lost += 1
        return payload

    def _start(self, seq: int, payload: bytes) -> None:
        """Begin playout at this packet; it has its full depth of delay still to wait."""
        self._highest = self._next = seq
        self._slots[seq] = payload
        self._low, self._watched = _RESYNC_FRAMES, 0
        self._fresh = True
        self._applied = self.depth_frames
        self._owed = self._applied - 1  # the first packet waits out the target depth

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        """J += (|D| - J) / 16, with D the change in transit time between consecutive arrivals."""
        transit = round(arrival * self._rate) - timestamp
        if self._transit is not None:
            d = (transit - self._transit) % _TS_MOD
            d = abs(d - _TS_MOD if d >= _TS_MOD // 2 else d)
            self._jitter += (d - self._jitter) / 16
        self._transit = transit
