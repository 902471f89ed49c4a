"""MediaClock: one loop timer per 20 ms tick for every paced stream."""
from __future__ import annotations

import asyncio

from appliance.media.clock import MediaClock
from appliance.media.player import FramePacer


def run(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def test_many_pacers_share_one_timer_per_tick() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = MediaClock(loop)
        sent: list[list[int]] = [[] for _ in range(50)]
        pacers = [FramePacer(clock, sent[i].append) for i in range(50)]
        for pacer in pacers:
            pacer.play(list(range(10)))
        run(loop, 0.35)
        assert all(frames == list(range(10)) for frames in sent)
        # 50 streams x 11 deadlines (10 frames and the end) ran in about 11 ticks, not 550 timers.
        assert clock.ticks_run <= 13
        assert clock.pending == 0
    finally:
        loop.close()


def test_cancelled_callbacks_do_not_run_and_errors_do_not_stop_the_tick() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = MediaClock(loop)
        ran: list[str] = []
        when = loop.time() + 0.02
        clock.call_at(when, lambda: ran.append("first"))
        clock.call_at(when, lambda: 1 / 0)
        clock.call_at(when, lambda: ran.append("cancelled")).cancel()
        clock.call_at(when, lambda: ran.append("last"))
        run(loop, 0.08)
        assert ran == ["first", "last"]
    finally:
        loop.close()


def test_deadlines_round_to_the_nearest_tick_and_work_added_to_a_running_tick_runs_in_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = MediaClock(loop, interval=0.02)
        order: list[str] = []
        base = loop.time() + 0.04

        def first() -> None:
            order.append("a")
            clock.call_at(clock.time(), lambda: order.append("added now"))

        clock.call_at(base + 0.004, lambda: order.append("b"))  # 4 ms past a tick: same tick
        clock.call_at(base - 0.004, first)
        clock.call_at(base + 0.02, lambda: order.append("next tick"))
        run(loop, 0.15)
        assert order == ["b", "a", "added now", "next tick"]
        assert clock.ticks_run == 2
    finally:
        loop.close()
