"""FramePacer: absolute 20 ms schedule, lateness handling, looping, stop, and a real-loop smoke test."""
from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from appliance.media.player import FramePacer

START = 12345.678  # an awkward float, so accumulated rounding would show


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Records call_at deadlines; run() fires them in order, each `late(when)` seconds late."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.deadlines: list[float] = []
        self._queue: list[tuple[float, int, FakeHandle, Callable[..., Any], tuple]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        handle = FakeHandle()
        self.deadlines.append(when)
        heapq.heappush(self._queue, (when, next(self._order), handle, callback, args))
        return handle

    def run(self, late: Callable[[float], float] = lambda when: 0.0, limit: int = 1_000_000) -> None:
        for _ in range(limit):
            if not self._queue:
                return
            when, _, handle, callback, args = heapq.heappop(self._queue)
            if handle.cancelled:
                continue
            self.now = max(self.now, when + late(when))
            callback(*args)
        raise AssertionError("clock did not settle")


def numbered(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def index(frame: bytes) -> int:
    return int.from_bytes(frame, "big")


def test_schedule_has_no_drift_over_10000_frames() -> None:
    clock, sent, done = FakeClock(), [], []
    pacer = FramePacer(clock, sent.append)
    pacer.play(numbered(10_000), on_done=lambda: done.append(clock.now))
    # Every callback runs 1-7 ms late, as a busy loop would: a relative schedule would drift 40 s.
    clock.run(late=lambda when: 0.001 + (int(when * 1000) % 7) * 0.001)
    assert [index(f) for f in sent] == list(range(10_000))
    assert len(clock.deadlines) == 10_001  # every frame, plus the end of the last one
    for n, when in enumerate(clock.deadlines):
        assert when == START + n * 0.02
    assert clock.deadlines[-1] - START == pytest.approx(200.0, abs=1e-9)
    assert pacer.skipped == 0 and len(done) == 1 and not pacer.playing


def test_small_lateness_catches_up_without_skipping() -> None:
    clock, sent, at = FakeClock(), [], []
    pacer = FramePacer(clock, lambda f: (sent.append(index(f)), at.append(clock.now)))
    pacer.play(numbered(20))
    # Frame 5's callback runs 45 ms late (2.25 frames): frames 5-7 go back to back, then on time.
    clock.run(late=lambda when: 0.045 if when == START + 5 * 0.02 else 0.0)
    assert sent == list(range(20)) and pacer.skipped == 0
    assert at[5] == at[6] == at[7] == pytest.approx(START + 0.1 + 0.045)
    assert at[8] == START + 8 * 0.02
    assert clock.deadlines == [START + n * 0.02 for n in range(21)]


def test_large_lateness_skips_ahead_instead_of_bursting() -> None:
    clock, sent, at, skips = FakeClock(), [], [], []
    pacer = FramePacer(clock, lambda f: (sent.append(index(f)), at.append(clock.now)), on_skip=skips.append)
    pacer.play(numbered(200))
    # The loop stalls 510 ms at frame 100: the 25 frames whose time has passed are dropped.
    clock.run(late=lambda when: 0.51 if when == START + 100 * 0.02 else 0.0)
    assert sent == list(range(100)) + list(range(125, 200))
    assert pacer.skipped == 25 and skips == [25]
    stalled = START + 2.0 + 0.51
    assert at[100] == stalled
    # After the stall the next frame waits for its own slot: no two frames share a send time.
    assert at[101] == START + 126 * 0.02 > stalled
    assert len(set(at)) == len(at)
    assert set(clock.deadlines) <= {START + n * 0.02 for n in range(201)}


def test_loop_repeats_until_stopped() -> None:
    clock, sent = FakeClock(), []
    pacer = FramePacer(clock, lambda f: (sent.append(index(f)), len(sent) == 25 and pacer.stop()))
    done: list = []
    pacer.play(numbered(10), loop=True, on_done=lambda: done.append(1))
    clock.run()
    assert sent == list(range(10)) * 2 + list(range(5))
    assert done == [] and not pacer.playing  # stop() never reports completion


def test_play_replaces_current_playback() -> None:
    clock, sent, done = FakeClock(), [], []
    pacer = FramePacer(clock, lambda f: sent.append(f))
    pacer.play(numbered(50), on_done=lambda: done.append("first"))
    # Run three frames of the first playback, then start another.
    for _ in range(3):
        when, _, handle, cb, args = heapq.heappop(clock._queue)
        clock.now = when
        cb(*args)
    pacer.play([b"x", b"y"], on_done=lambda: done.append("second"))
    second_start = clock.now
    clock.run()
    assert sent == numbered(3) + [b"x", b"y"]
    assert done == ["second"]
    assert clock.deadlines[-3:] == [second_start, second_start + 0.02, second_start + 0.04]


def test_on_done_may_start_the_next_prompt() -> None:
    clock, sent = FakeClock(), []
    pacer = FramePacer(clock, sent.append)
    pacer.play([b"a"], on_done=lambda: pacer.play([b"b"]))
    clock.run()
    assert sent == [b"a", b"b"] and not pacer.playing


def test_empty_prompt_finishes_and_empty_loop_is_refused() -> None:
    clock, done = FakeClock(), []
    pacer = FramePacer(clock, lambda f: None)
    pacer.play([], on_done=lambda: done.append(clock.now))
    clock.run()
    assert done == [START]
    with pytest.raises(ValueError):
        pacer.play([], loop=True)


def test_send_error_stops_playback() -> None:
    clock = FakeClock()

    def boom(frame: bytes) -> None:
        raise RuntimeError("socket gone")

    pacer = FramePacer(clock, boom)
    pacer.play(numbered(5))
    with pytest.raises(RuntimeError):
        clock.run()
    assert not pacer.playing


def test_real_event_loop_sends_frames_in_order() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        sent: list[bytes] = []
        finished = loop.create_future()
        pacer = FramePacer(loop, sent.append)
        pacer.play(numbered(10), on_done=lambda: finished.set_result(None))
        await asyncio.wait_for(finished, 5)
        return sent

    assert asyncio.run(main()) == numbered(10)
