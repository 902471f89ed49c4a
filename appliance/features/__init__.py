"""The box's features, each set up on a shared Context and torn down in reverse (as Home Assistant's integrations).

A feature is a module with `async def setup(ctx: Context) -> Teardown`. It builds its objects
complete, puts what other features use on the context, registers what it offers (a route kind
with the B2BUA, menus or queues with the handover) and returns how to undo all of it. The
composition root (appliance/box.py) lists the features in order; a new feature is a new module
here and one line in that list.
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..bus import EventBus
from ..calls.handover import Handover
from ..config import Settings

Teardown = Callable[[], Awaitable[None] | None]


class Context:
    """What the features share: settings, the loop and the bus, then what each feature built."""

    def __init__(self, settings: Settings, provision: Path | None, loop: asyncio.AbstractEventLoop,
                 bus: EventBus) -> None:
        self.settings = settings
        self.provision = provision
        self.loop = loop
        self.bus = bus
        self.handover = Handover()
        self.restart = asyncio.Event()  # set: stop the box so its service manager starts it again (an update)
        self.trunks: dict[str, Any] = {}  # name -> TrunkClient (features.trunks)
        self.lines: dict[str, Any] = {}   # name -> ModemGateway (features.lines)
        self.services: dict[str, Any] = {}  # what a feature offers by name ("db", "b2bua", "queues"...)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["services"][name]
        except KeyError:
            raise AttributeError(f"no feature has provided {name!r} (yet)") from None

    def provide(self, **services: Any) -> None:
        """Offer objects to the features set up later (and to the box's status and tests)."""
        self.services.update(services)


async def undo(teardown: Teardown) -> None:
    """Run a teardown, awaiting it if it is a coroutine."""
    result = teardown()
    if inspect.isawaitable(result):
        await result
