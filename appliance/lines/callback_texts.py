"""A caller on a GSM line who asks for a callback gets a text: "we will call you back"."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from hw.modem.errors import ModemError

from ..bus import Event, EventBus
from ..store import calls as store_calls

log = logging.getLogger("switchboard.lines.sms")

NO_SMS_DIALECTS = ("v253",)  # an analog line cannot text


class CallbackTexts:
    """Listens for new callback requests and texts the caller through the line the call came in on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bus: EventBus, db: Any, lines: dict) -> None:
        self.loop = loop
        self.db = db
        self.lines = lines
        self.sent: list[tuple[str, str]] = []     # (line, number) texted
        self.skipped: list[tuple[str, str]] = []  # (line, why) not texted, for the log and tests
        self._unsubscribe = bus.subscribe(self._requested, "callback.requested")

    def close(self) -> None:
        """Stop listening."""
        self._unsubscribe()

    def _requested(self, event: Event) -> None:
        data = event.data
        if not data.get("created") or not data.get("call_id"):
            return  # asked again while one is pending: one text is enough
        # Bus callbacks may run on other threads; the store read and the modem belong to the loop.
        self.loop.call_soon_threadsafe(self._text, str(data["call_id"]), str(data.get("number") or ""))

    def _text(self, call_id: str, number: str) -> None:
        call = store_calls.get_call(self.db, call_id)
        line = self.lines.get(call["line"]) if call else None
        if line is None:
            return  # the call came in on a trunk or a phone, not on one of our lines
        why = ("no number" if not number else "an analog line cannot text" if line.cfg.dialect in NO_SMS_DIALECTS
               else "no callback_sms text set" if not line.cfg.callback_sms else "")
        if why:
            self.skipped.append((line.name, why))
            log.info("line %s: no callback text to %s (%s)", line.name, number or "-", why)
            return
        self.loop.create_task(self._send(line, number))

    async def _send(self, line: Any, number: str) -> None:
        try:
            reference = await line.line.send_sms(number, line.cfg.callback_sms)
        except ModemError as exc:  # e.g. a landline number, or no network: the callback still stands
            log.info("line %s: could not text %s: %s", line.name, number, exc)
            return
        self.sent.append((line.name, number))
        log.info("line %s: texted %s that a callback is coming (reference %s)", line.name, number, reference)
