"""An office for the screen-pop tests: the queue office, web users, and customers with a past."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from appliance.store import calls as store_calls
from appliance.crm import customer_store as store_customers
from appliance.store import users as store_users
from appliance.store import wrapups as store_wrapups
from appliance.store.db import open_database

PASSWORD = "correct-horse-battery"


def open_store(box):  # type: ignore[no-untyped-def]
    """The running box's database file, opened by the test (WAL lets both write)."""
    return open_database(box.data_dir / "switchboard.db")


def add_user(box, username: str, role: str, extension: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """A web user with the shared test password."""
    db = open_store(box)
    try:
        store_users.create_user(db, username, PASSWORD, role, extension)
    finally:
        db.conn.close()


def add_customer_with_past(box, phone: str, name: str, company: str, override: str | None,  # type: ignore[no-untyped-def]
                           past: list[tuple[str, list[str], float]]) -> int:
    """A customer and their earlier answered calls (outcome, moods, talk seconds), one a day, oldest first."""
    db = open_store(box)
    try:
        customer_id = store_customers.create_customer(db, region="US", name=name, company=company,
                                                      phones=[phone], segment_override=override,
                                                      notes="Prefers to be called in the morning")
        now = datetime.now(timezone.utc)
        for days_ago, (outcome, moods, talk) in zip(range(len(past) + 1, 1, -1), past):
            start = now - timedelta(days=days_ago)
            call_id = store_calls.start_call(db, sip_call_id=f"past-{days_ago}", direction="inbound", line="itsp0",
                                             from_number=phone, from_name=name, to_number="600", started_at=start,
                                             customer_id=customer_id)
            store_calls.mark_answered(db, call_id, "202", at=start + timedelta(seconds=10))
            store_calls.finish_call(db, call_id, "answered", at=start + timedelta(seconds=10 + talk))
            store_wrapups.save_wrapup(db, call_id=call_id, agent="202", customer_id=customer_id, outcome=outcome,
                                      moods=moods, note="", saved_by="bob")
        return customer_id
    finally:
        db.conn.close()
