"""Ties calls to CRM customers: matched at the first ring, segments and repeat alerts kept current."""
from __future__ import annotations

import asyncio
import logging
import time

from ..bus import EventBus
from ..crm.alerts import raise_repeat_alert
from ..crm.settings import CrmSettings, load_crm_settings
from ..crm import customer_store as store_customers
from .records import CallInfo

log = logging.getLogger("switchboard.crm")

SETTINGS_TTL = 30.0  # provisioning changes the CRM rules rarely; one read per call would be waste


class CrmCustomerLink:
    """The CallLog's CustomerLink: a caller ID lookup on the call path, the rest off the loop."""

    def __init__(self, db, bus: EventBus, loop: asyncio.AbstractEventLoop) -> None:  # type: ignore[no-untyped-def]
        self.db = db
        self.bus = bus
        self.loop = loop
        self._settings: CrmSettings | None = None
        self._read_at = 0.0

    def settings(self) -> CrmSettings:
        """The CRM rules, re-read from the store at most every SETTINGS_TTL seconds."""
        now = time.monotonic()
        if self._settings is None or now - self._read_at > SETTINGS_TTL:
            self._settings, self._read_at = load_crm_settings(self.db), now
        return self._settings

    def customer_for(self, direction: str, from_number: str, to_number: str) -> int | None:
        """Callers from outside become customers; numbers the office calls are matched, not created."""
        if direction in ("inbound", "callback"):
            number, create = from_number, True
        elif direction == "outbound":
            number, create = to_number, False
        else:
            return None
        try:
            return store_customers.caller_customer(self.db, number, self.settings().region, create=create)
        except Exception:  # the CRM must never stop a call from ringing
            log.exception("cannot match %s to a customer", number)
            return None

    def customer_name(self, customer_id: int) -> str:
        """The customer's name, for the phones' caller ID and the queue lists."""
        try:
            customer = store_customers.get_customer(self.db, customer_id)
        except Exception:  # the CRM must never stop a call from ringing
            log.exception("cannot read customer %s", customer_id)
            return ""
        return (customer or {}).get("name") or ""

    def started(self, info: CallInfo) -> None:
        """Check for a repeat caller off the loop; a new alert is published for supervisors."""
        self.loop.run_in_executor(None, self._check_repeat, info.customer_id, info.record_id)

    def ended(self, info: CallInfo) -> None:
        """Recompute the customer's segment off the loop."""
        self.loop.run_in_executor(None, self._refresh, info.customer_id)

    def _check_repeat(self, customer_id: int, call_id: str) -> None:
        try:
            alert = raise_repeat_alert(self.db, customer_id=customer_id, call_id=call_id, settings=self.settings())
        except Exception:
            log.exception("repeat-caller check failed for customer %s", customer_id)
            return
        if alert is not None:
            self.bus.publish("crm.alert", **alert)

    def _refresh(self, customer_id: int) -> None:
        try:
            store_customers.refresh_segment(self.db, customer_id, self.settings())
        except Exception:
            log.exception("segment refresh failed for customer %s", customer_id)
