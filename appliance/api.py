"""The thread-safe facade the web (and later the LEDs) use to read the core's live state."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from .store import calls as store_calls
from .store import directory

if TYPE_CHECKING:
    from .box import Box


class BoxApi:
    """Crosses from another thread into the box's loop; never touches core objects directly."""

    def __init__(self, box: "Box") -> None:
        self._box = box

    @property
    def bus(self):  # type: ignore[no-untyped-def]
        """The event bus (thread-safe by itself)."""
        return self._box.bus

    def _in_loop(self, func: Callable[[], Any], timeout: float = 2.0) -> Any:
        async def run() -> Any:
            return func()
        return asyncio.run_coroutine_threadsafe(run(), self._box.loop).result(timeout)

    def status(self) -> dict:
        """Registrations, trunks, calls in progress and the ban list, read inside the loop."""
        box = self._box

        def snapshot() -> dict:
            now = box.location.clock()
            registered = {aor: [{"contact": b.contact, "source": f"{b.source.transport.lower()}:{b.source.host}:{b.source.port}",
                                 "expires_in": b.expires_in(now), "user_agent": b.user_agent} for b in bindings]
                          for aor, bindings in box.location.registered().items()}
            trunks = {name: {"state": c.status.state, "error": c.status.last_error, "reachable": c.status.reachable}
                      for name, c in box.trunks.items()}
            return {"registered": registered, "trunks": trunks, "active_calls": len(box.b2bua.active),
                    "media_relays": box.media.active(), "bans": box.bans.bans(),
                    "sip": {"port": box.transport.port, "advertise": box.endpoint.host}}

        state = self._in_loop(snapshot)
        state["extensions"] = [{**ext, "contacts": state["registered"].get(ext["number"], [])}
                               for ext in directory.list_extensions(box.db)]
        return state

    def recent_calls(self, limit: int = 20) -> list[dict]:
        """The latest call records."""
        return store_calls.recent_calls(self._box.db, limit)
