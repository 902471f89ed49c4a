"""Call records and call events: every attempt is stored, then announced on the bus."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from ..bus import EventBus
from ..store import calls as store_calls
from ..store.db import transaction

log = logging.getLogger("switchboard.calls")


@dataclass
class CallInfo:
    """What the rest of the box knows about one call."""

    record_id: str
    sip_call_id: str
    direction: str
    line: str
    from_number: str
    from_name: str
    to_number: str
    extension: str | None = None
    customer_id: int | None = None
    answered: bool = False            # picked up, by a person or by the box (IVR, queue, feature code)
    person: str | None = None         # the extension of the person who answered; None while only the box has
    ended: bool = False
    extra: dict = field(default_factory=dict)

    ivr_path: list[dict] = field(default_factory=list)
    customer_name: str = ""  # the CRM's name for the caller, when the caller ID carries none

    @property
    def display_name(self) -> str:
        """The caller's name for people to read: what the caller presented, else the CRM's."""
        return self.from_name or self.customer_name

    def event_data(self) -> dict:
        """Fields every call event carries."""
        return {"call_id": self.record_id, "direction": self.direction, "line": self.line,
                "from_number": self.from_number, "from_name": self.from_name,
                "to_number": self.to_number, "extension": self.extension, "ivr_path": self.ivr_path,
                "customer_id": self.customer_id}


class CustomerLink(Protocol):
    """Ties calls to the CRM's customers (appliance.calls.customer_link)."""

    def customer_for(self, direction: str, from_number: str, to_number: str) -> int | None:
        """The customer on the far end of a new call, if any."""

    def customer_name(self, customer_id: int) -> str:
        """The customer's name ("" when none is known)."""

    def started(self, info: CallInfo) -> None:
        """A call with a customer began."""

    def ended(self, info: CallInfo) -> None:
        """A call with a customer is over."""


class CallLog:
    """Writes call records to the store and publishes call events after each write."""

    def __init__(self, db, bus: EventBus, customers: CustomerLink | None = None) -> None:  # type: ignore[no-untyped-def]
        self.db = db
        self.bus = bus
        self.customers = customers

    def start(self, *, sip_call_id: str, direction: str, line: str, from_number: str,
              from_name: str, to_number: str) -> CallInfo:
        """Record a new call attempt."""
        customer_id = None
        if self.customers is not None:
            customer_id = self.customers.customer_for(direction, from_number, to_number)
        record_id = store_calls.start_call(
            self.db, sip_call_id=sip_call_id, direction=direction, line=line,
            from_number=from_number, from_name=from_name, to_number=to_number, customer_id=customer_id)
        info = CallInfo(record_id, sip_call_id, direction, line, from_number, from_name, to_number,
                        customer_id=customer_id)
        if customer_id is not None and not from_name and self.customers is not None:
            info.customer_name = self.customers.customer_name(customer_id)
        log.info("call %s: %s call from %s to %s on %s (SIP Call-ID %s)", record_id, direction, from_number,
                 to_number, line, sip_call_id)
        self.bus.publish("call.started", **info.event_data())
        if customer_id is not None and self.customers is not None:
            self.customers.started(info)
        return info

    def ringing(self, info: CallInfo, extension: str | None) -> None:
        """A phone is ringing for this call."""
        info.extension = extension
        self.bus.publish("call.ringing", **info.event_data())

    def answered(self, info: CallInfo, answered_by: str) -> None:
        """The call was answered: by a person (an extension), or by the box itself ("ivr:main", "queue:sales")."""
        if info.answered:
            return
        info.answered = True
        if is_box(answered_by):
            # The box picking up is not a person answering: answered_by stays empty until one does.
            store_calls.mark_answered(self.db, info.record_id, None)
            info.extra["box_answered"] = answered_by
        else:
            info.extension = info.extension or answered_by
            info.person = answered_by
            store_calls.mark_answered(self.db, info.record_id, answered_by)
        log.info("call %s: answered by %s", info.record_id, answered_by)
        self.bus.publish("call.answered", answered_by=answered_by, **info.event_data())

    def connected(self, info: CallInfo, extension: str) -> None:
        """A caller the box answered (IVR, queue) is now talking to a person."""
        info.extension = extension
        info.person = extension
        store_calls.set_answered_by(self.db, info.record_id, extension)
        log.info("call %s: handed to %s", info.record_id, extension)
        self.bus.publish("call.connected", answered_by=extension, **info.event_data())

    def path(self, info: CallInfo, path: list[dict], store: bool = False) -> None:
        """Note the caller's way through the IVR; stored now if asked (before a phone rings), else at the end."""
        info.ivr_path = list(path)
        if store:
            store_calls.set_ivr_path(self.db, info.record_id, info.ivr_path)

    def line_used(self, info: CallInfo, line: str) -> None:
        """The line a call goes out on, once the box has chosen one (a callback without a line of its own)."""
        if info.line != line:
            info.line = line
            store_calls.set_line(self.db, info.record_id, line)

    def recording(self, info: CallInfo, relative_path: str) -> None:
        """Point the call record at its recording."""
        store_calls.set_recording(self.db, info.record_id, relative_path)

    def note(self, info: CallInfo, **fields: object) -> None:
        """Keep extra facts (media statistics...) for the record; written when the call ends."""
        info.extra.update(fields)

    def ended(self, info: CallInfo, disposition: str, sip_status: int | None, hangup_by: str | None) -> None:
        """The call is over: commit the record, then announce it."""
        if info.ended:
            return
        info.ended = True
        if info.person is not None:
            disposition = "answered"
        elif info.answered:
            disposition = box_disposition(info, hangup_by)
        # One transaction: a reader (the web, the CLI) never sees an ended record without its path and notes.
        with transaction(self.db):
            if info.ivr_path:
                store_calls.set_ivr_path(self.db, info.record_id, info.ivr_path)
            store_calls.finish_call(self.db, info.record_id, disposition, sip_status=sip_status, hangup_by=hangup_by)
            if info.extra:
                store_calls.update_extra(self.db, info.record_id, **info.extra)
        log.info("call %s: ended, %s%s, hung up by %s", info.record_id, disposition,
                 f" ({sip_status})" if sip_status else "", hangup_by or "nobody")
        self.bus.publish("call.ended", disposition=disposition, sip_status=sip_status,
                         hangup_by=hangup_by, **info.event_data())
        if info.customer_id is not None and self.customers is not None:
            self.customers.ended(info)


def is_box(answered_by: str) -> bool:
    """Whether a label names the box itself (ivr:NAME, queue:NAME, feature:CODE) rather than an extension."""
    return ":" in answered_by


def box_disposition(info: CallInfo, hangup_by: str | None) -> str:
    """How a call that only the box answered ended: a callback asked for, the caller gone, or the box done."""
    if info.extra.get("callback_id"):
        return "callback"
    return "handled" if hangup_by == "box" else "abandoned"


def disposition_for(status: int) -> str:
    """Map a final SIP status of a failed call to a disposition."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480):
        return "no-answer"
    if status == 487:
        return "cancelled"
    return "failed"
