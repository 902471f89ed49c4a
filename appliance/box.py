"""Composition root: builds the box from its settings, feature by feature, starts it and stops it."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path
from typing import Any

from .bus import EventBus
from .config import Settings
from .features import Context, Teardown, undo
from .features import (backups, calls, click_to_call, clock, control, firstrun, ivr, leds, lines, queues, service, sip,
                       store, trunks, updates, web)

log = logging.getLogger("switchboard.box")

# In order: each may use what the ones before it provided. Stopping runs their teardowns backwards.
FEATURES = (
    leds,           # first: the power LED blinks while the rest starts
    store,          # the SQLite file, migrated; --provision applied
    firstrun,       # --boot-provision applied once; "setup pending" until an admin exists
    clock,          # until NTP has set the clock, a fault (with --clock-check)
    backups,        # the nightly copy of the database, the last 7 kept
    sip,            # bans, transport, digest auth, registrar, transaction layer, RTP ports
    calls,          # call log, outbound policy, B2BUA, dial plan; the UA core starts answering
    ivr,            # route kind "ivr"
    trunks,         # SIP trunks register
    lines,          # modem lines join as trunks
    queues,         # route kinds "queue" and "feature"; callbacks (may dial out at once)
    click_to_call,  # the agent console's Call buttons
    control,        # the CLI's control socket
    web,            # BoxApi and the web pages: everything they show exists
    updates,        # a new version on trial confirms itself healthy (or is rolled back)
    service,        # last: systemd hears READY once all of it listens, then watchdog pings
)


class Box:
    """The one process: SIP, media, trunks and the store, on one asyncio loop."""

    def __init__(self, settings: Settings, provision: Path | None = None) -> None:
        self.settings = settings
        self.provision = provision
        self.bus = EventBus()
        self.ctx: Context | None = None
        self._teardowns: list[tuple[str, Teardown]] = []
        self.started_at = 0.0
        self.ready_after = 0.0

    def __getattr__(self, name: str) -> Any:
        """What the features built (box.db, box.b2bua, box.queues...), for the CLI's run, the API and tests."""
        ctx = self.__dict__.get("ctx")
        if ctx is None:
            raise AttributeError(f"the box has not started: no {name!r}")
        return getattr(ctx, name)

    async def start(self) -> None:
        """Set every feature up in order; a failure part-way undoes what was done."""
        began = time.monotonic()
        self.ctx = ctx = Context(self.settings, self.provision, asyncio.get_running_loop(), self.bus)
        for feature in FEATURES:
            name = feature.__name__.rsplit(".", 1)[-1]
            try:
                self._teardowns.append((name, await feature.setup(ctx)))
            except BaseException:
                await self.stop()
                raise
        self.started_at = time.time()
        ctx.provide(started_at=self.started_at)
        self.ready_after = time.monotonic() - began
        # What start-up built lives as long as the box: keep it out of every future GC scan.
        gc.collect()
        gc.freeze()
        self.bus.publish("box.ready", sip_port=ctx.transport.port)

    def web_url(self) -> str | None:
        """The address a browser can open (the advertised one when the box listens everywhere), or None."""
        s = self.settings
        if not s.http_port:
            return None
        host = self.endpoint.host if s.bind in ("0.0.0.0", "::") else s.bind
        return f"http://{host}:{s.http_port}/"

    def banner(self) -> str:
        """One line saying where the box listens."""
        s = self.settings
        web = f"web {self.web_url()}" if s.http_port else "web off"
        return (f"Switchboard ready in {self.ready_after * 1000:.0f} ms: SIP udp+tcp {s.bind}:{self.transport.port}"
                f" (advertised as {self.endpoint.host}), {web}, "
                f"RTP {s.rtp_port_min}-{s.rtp_port_max}, data {s.data_dir}")

    def welcome(self) -> str:
        """What a person at a terminal reads first: where to go and what to do next."""
        url = self.web_url()
        lines = ["", "Switchboard is running."]
        code = self.api.setup_code() if url else None
        if url is None:
            lines.append("The web pages are off (--http-port 0).")
        elif code is not None:
            lines += [f"  1. Open {url}setup in a browser on the office network.",
                      f"  2. Enter the setup code {code} and choose the admin's name and password.",
                      "  3. Describe the office in a TOML file and run `switchboard provision FILE` (see the README)."]
        else:
            lines.append(f"  Open {url} in a browser on the office network.")
        lines.append(f"  Phones register to {self.endpoint.host}:{self.transport.port} (UDP or TCP). Ctrl-C stops the box.")
        return "\n".join(lines) + "\n"

    async def stop(self) -> None:
        """Tear the features down, last first."""
        while self._teardowns:
            name, teardown = self._teardowns.pop()
            try:
                await undo(teardown)
            except Exception:
                log.exception("stopping %s failed", name)
