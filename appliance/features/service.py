"""systemd: READY once everything (SIP first) listens, and watchdog pings from the event loop itself."""
from __future__ import annotations

import asyncio
import logging
import os

from ..system.sd_notify import Notifier
from . import Context, Teardown

log = logging.getLogger("switchboard.box")


async def setup(ctx: Context) -> Teardown:
    """Tell systemd the box is ready; ping its watchdog from the loop so a hung loop gets the box restarted."""
    notifier = Notifier()
    ctx.provide(notifier=notifier)
    if not notifier.enabled:
        return lambda: None
    s = ctx.settings
    notifier.send("READY=1", f"STATUS=SIP on port {ctx.transport.port}, web on port {s.http_port or 'off'}",
                  f"MAINPID={os.getpid()}")
    pinger = _WatchdogPinger(ctx.loop, notifier) if notifier.watchdog_seconds else None
    if pinger:
        log.info("systemd watchdog: pinging every %.1f s (WatchdogSec=%.0f s)", pinger.interval,
                 notifier.watchdog_seconds)

    def teardown() -> None:
        if pinger:
            pinger.stop()
        notifier.send("STOPPING=1")
    return teardown


class _WatchdogPinger:
    """WATCHDOG=1 from a loop timer: it fires only while the loop runs callbacks, which is the point."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notifier: Notifier) -> None:
        self.loop = loop
        self.notifier = notifier
        # A third of WatchdogSec: two pings may be late before systemd gives up (sd_watchdog_enabled(3) says half).
        self.interval = max(0.05, (notifier.watchdog_seconds or 0) / 3)
        self._handle: asyncio.TimerHandle | None = None
        self._ping()

    def _ping(self) -> None:
        self.notifier.send("WATCHDOG=1")
        self._handle = self.loop.call_later(self.interval, self._ping)

    def stop(self) -> None:
        """Stop pinging."""
        if self._handle:
            self._handle.cancel()
