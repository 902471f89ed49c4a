"""Recording an agent's wrap-up: validate, save, refresh the customer's segment, raise the mood alert."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from sqlite_utils import Database

from appliance.crm.alerts import alert_on_wrapup
from appliance.crm.settings import MOODS, CrmError, CrmSettings
from appliance.store.calls import get_call
from appliance.crm.customer_store import refresh_segment
from appliance.store.db import transaction
from appliance.store.wrapups import save_wrapup

MAX_NOTE = 2000


def record_wrapup(db: Database, settings: CrmSettings, *, call_id: str, agent: str, outcome: str,
                  moods: Iterable[str] | None, note: str | None, callback_at: datetime | str | None,
                  saved_by: str | None) -> dict:
    """Validate and save the wrap-up; {"wrapup": dict, "alert": dict | None}. CrmError says what is wrong."""
    if not isinstance(agent, str) or not agent.strip():
        raise CrmError("the wrap-up needs the agent's extension")
    if outcome not in settings.outcomes:
        raise CrmError(f"unknown outcome {outcome!r}: expected one of {', '.join(settings.outcomes)}")
    chosen = _moods(moods)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise CrmError(f"the note is longer than {MAX_NOTE} characters ({len(note)})")
    when = callback_time(callback_at)
    call = get_call(db, call_id)
    if call is None:
        raise CrmError(f"no call {call_id!r}")
    customer_id = call.get("customer_id")
    with transaction(db):
        wrapup = save_wrapup(db, call_id=call_id, agent=agent.strip(), customer_id=customer_id, outcome=outcome,
                             moods=chosen, note=note, callback_at=when, saved_by=saved_by)
        alert = None
        if customer_id is not None:
            refresh_segment(db, customer_id, settings)
            alert = alert_on_wrapup(db, customer_id=customer_id, call_id=call_id, moods=chosen, settings=settings)
    return {"wrapup": wrapup, "alert": alert}


def callback_time(value: datetime | str | None, now: datetime | None = None) -> datetime | None:
    """The callback time as an aware datetime in the future, None for none; CrmError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CrmError(f"not a date and time: {value!r}") from None
    if not isinstance(value, datetime):
        raise CrmError("the callback time must be a date and time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CrmError("the callback time needs a time zone")
    if value <= (now or datetime.now(timezone.utc)):
        raise CrmError("the callback time is in the past")
    return value


def _moods(moods: Iterable[str] | None) -> list[str]:
    if moods is None:
        return []
    if isinstance(moods, str):
        moods = [moods]
    chosen = set()
    for mood in moods:
        if mood not in MOODS:
            raise CrmError(f"unknown mood {mood!r}: expected some of {', '.join(MOODS)}")
        chosen.add(mood)
    return [m for m in MOODS if m in chosen]
