"""The clock watch: until NTP has set the time, the status page and the power LED say so."""
from __future__ import annotations

import asyncio

from ..system.clock import ClockWatch
from . import Context, Teardown

UNSYNCED_EVERY = 5.0   # seconds between checks while the time is not set yet
SYNCED_EVERY = 300.0   # then now and again: a lost sync is rare and slow to matter


async def setup(ctx: Context) -> Teardown:
    """Watch the kernel's clock state when clock_check is on (the SD-card image turns it on)."""
    if not ctx.settings.clock_check:
        ctx.provide(clock=None)
        return lambda: None
    watch = ClockWatch(ctx.bus.publish)
    ctx.provide(clock=watch)
    handle: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal handle
        synced = watch.check()
        handle = ctx.loop.call_later(SYNCED_EVERY if synced else UNSYNCED_EVERY, tick)

    tick()

    def teardown() -> None:
        if handle:
            handle.cancel()
    return teardown
