"""The screen-pop card: who is calling, what happened before, and what to expect."""

from __future__ import annotations

import time

from sqlite_utils import Database

from appliance.crm.ivr_text import describe_path
from appliance.crm.alerts import card_alerts
from appliance.crm.history import customer_calls, expected_handling, queue_entries, wait_seconds
from appliance.crm.phones import display
from appliance.crm.settings import MOODS, CrmSettings
from appliance.store.calls import get_call
from appliance.crm.customer_store import get_customer
from appliance.store.directory import get_extension

CALLER_IS_FROM = ("inbound", "callback", "internal")  # outbound calls: the customer is the one dialled


def build_card(db: Database, call_id: str, settings: CrmSettings, extension: str | None = None) -> dict | None:
    """Everything the agent's screen shows for a call, or None for an unknown call."""
    call = get_call(db, call_id)
    if call is None:
        return None
    direction = call["direction"]
    number = (call["from_number"] if direction in CALLER_IS_FROM else call["to_number"]) or ""
    internal = direction == "internal"
    if internal and extension and number == extension:
        number = call["to_number"] or ""  # a colleague's card shows the colleague, not the viewer
    customer = get_customer(db, call["customer_id"]) if call.get("customer_id") is not None else None
    if internal:
        ext = get_extension(db, number)
        caller_name = (ext or {}).get("name") or call["from_name"] or ""
    else:
        caller_name = (customer or {}).get("name") or (call["from_name"] if direction != "outbound" else "") or ""
    segment = customer["segment"] if customer else None
    entry = queue_entries(db, [{"call_id": call_id, "started_at": call["started_at"],
                                "ended_at": call["ended_at"]}]).get(call_id)
    return {
        "call_id": call_id,
        "direction": direction,
        "line": call["line"],
        "number": number,
        "number_display": display(number) if number.startswith("+") else number,
        "extension": extension,
        "started_at": call["started_at"],
        "internal": internal,
        "caller_name": caller_name,
        "customer": customer,
        "segment": segment,
        "expected_handling_s": expected_handling(db, customer["id"], segment) if customer else None,
        "alerts": card_alerts(db, customer["id"], settings) if customer else [],
        "history": customer_calls(db, customer["id"], 5, before_call=call_id) if customer else [],
        "ivr_path": call["ivr_path"],
        "ivr_text": describe_path(call["ivr_path"]),
        "queue": entry["queue"] if entry else None,
        "queue_wait_s": wait_seconds(entry, time.time()) if entry else None,
        "outcomes": list(settings.outcomes),
        "moods": list(MOODS),
    }
