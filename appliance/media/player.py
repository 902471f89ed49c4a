"""Paces 20 ms media frames out on an absolute monotonic schedule."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Clock", "FramePacer", "FRAME_INTERVAL", "MAX_LATE_FRAMES"]

FRAME_INTERVAL = 0.02
# Lateness up to this many frames is caught up by sending the overdue frames back to back;
# beyond it the missed frames are skipped, since a burst would only overflow the phone's jitter buffer.
MAX_LATE_FRAMES = 3
# Float slack when turning elapsed time into a frame index.
_EPSILON = 1e-9


class _Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of an asyncio event loop the pacer uses."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _Handle: ...


class FramePacer:
    """Sends frame n of a playback at start + n * interval, looping or once, until stopped."""

    def __init__(self, clock: Clock, send: Callable[[bytes], Any], interval: float = FRAME_INTERVAL,
                 max_late_frames: int = MAX_LATE_FRAMES, on_skip: Callable[[int], Any] | None = None) -> None:
        self._clock = clock
        self._send = send
        self._interval = interval
        self._max_late = max_late_frames
        self._on_skip = on_skip  # told how many frames were skipped (to advance an RTP timestamp)
        self._frames: Sequence[bytes] = ()
        self._loop = False
        self._on_done: Callable[[], Any] | None = None
        self._start = 0.0
        self._tick = 0  # frames elapsed on the schedule since start (sent or skipped)
        self._handle: _Handle | None = None
        self._generation = 0  # bumped by play/stop so a callback can tell it was superseded
        self.sent = 0
        self.skipped = 0

    @property
    def playing(self) -> bool:
        """True while a playback is scheduled."""
        return self._handle is not None

    def play(self, frames: Sequence[bytes], loop: bool = False, on_done: Callable[[], Any] | None = None) -> None:
        """Start sending frames now, replacing any current playback; on_done runs when a non-looped one ends."""
        self.stop()
        if loop and not frames:
            raise ValueError("cannot loop an empty prompt")
        self._frames, self._loop, self._on_done = frames, loop, on_done
        self._start = self._clock.time()
        self._tick = 0
        self._handle = self._clock.call_at(self._start, self._run, self._generation)

    def stop(self) -> None:
        """Stop the current playback without calling its on_done."""
        self._generation += 1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._frames, self._on_done = (), None

    def _run(self, generation: int) -> None:
        """Send the frame due now (skipping ahead if far behind) and schedule the next deadline."""
        if generation != self._generation:
            return
        tick = self._tick
        behind = int((self._clock.time() - self._start) / self._interval + _EPSILON) - tick
        if behind > self._max_late:
            tick += behind
            self.skipped += behind
            if self._on_skip is not None:
                self._on_skip(behind)
        count = len(self._frames)
        if not self._loop and tick >= count:
            self._finish()
            return
        frame = self._frames[tick % count]
        self._tick = tick + 1
        try:
            self._send(frame)
        except BaseException:
            self.stop()
            raise
        self.sent += 1
        if generation != self._generation:
            return  # send() stopped or replaced this playback
        # Absolute deadline from the start: no drift however late each callback runs. The
        # end of a non-looped prompt is one more tick, when its last frame has finished playing.
        self._handle = self._clock.call_at(self._start + self._tick * self._interval, self._run, generation)

    def _finish(self) -> None:
        """End a non-looped playback and report it."""
        on_done = self._on_done
        self.stop()
        if on_done is not None:
            on_done()
