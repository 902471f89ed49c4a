"""Alerts for agents and supervisors: a usually calm customer is upset, or keeps calling unresolved."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlite_utils import Database

from appliance.crm.phones import display
from appliance.crm.settings import MOODS, UPSET, CrmSettings
from appliance.store.db import db_lock, to_iso, transaction

UPSET_FRESH = timedelta(days=7)  # an upset wrap-up older than this no longer shows on the card


def card_alerts(db: Database, customer_id: int, settings: CrmSettings, now: datetime | None = None) -> list[dict]:
    """What the agent should know before answering: [{kind, message}]."""
    now = _now(now)
    alerts = []
    with db_lock(db):
        wrapups = _recent_wrapups(db, customer_id, settings.recent_calls + 1)
    if wrapups and wrapups[0]["saved_at"] >= to_iso(now - UPSET_FRESH):
        message = _upset_message(wrapups[0]["moods"], [w["moods"] for w in wrapups[1:]], settings)
        if message:
            alerts.append({"kind": "upset", "message": message})
    message = _repeat_message(db, customer_id, settings, now)
    if message:
        alerts.append({"kind": "repeat", "message": message})
    return alerts


def alert_on_wrapup(db: Database, *, customer_id: int, call_id: str, moods: Iterable[str],
                    settings: CrmSettings) -> dict | None:
    """Raise an "upset" alert when this wrap-up's moods are upset but earlier ones were mostly calm."""
    moods = list(moods)
    with transaction(db):
        earlier = [w["moods"] for w in _recent_wrapups(db, customer_id, settings.recent_calls + 1)
                   if w["call_id"] != call_id][:settings.recent_calls]
        message = _upset_message(moods, earlier, settings)
        if message is None or _alert_exists(db, "call_id = ? AND kind = 'upset'", [call_id]):
            return None  # saving the same wrap-up again must not alert twice
        return _insert(db, customer_id, call_id, "upset", message, _now(None))


def raise_repeat_alert(db: Database, *, customer_id: int, call_id: str, settings: CrmSettings,
                       now: datetime | None = None) -> dict | None:
    """Raise a "repeat" alert when the customer keeps calling unresolved; at most once a UTC day per customer."""
    now = _now(now)
    with transaction(db):
        message = _repeat_message(db, customer_id, settings, now)
        day = now.strftime("%Y-%m-%d")
        if message is None or _alert_exists(
            db, "customer_id = ? AND kind = 'repeat' AND created_at >= ? AND created_at < ?",
            [customer_id, f"{day}T", f"{day}U"],  # every ISO time of that day sorts between the two
        ):
            return None
        return _insert(db, customer_id, call_id, "repeat", message, now)


def open_alerts(db: Database, limit: int = 50) -> list[dict]:
    """Unacknowledged alerts, newest first, with the customer's name and first phone."""
    with db_lock(db):
        rows = list(db.query(
            """
            SELECT a.*, k.name AS customer_name, k.company AS customer_company,
                   (SELECT phone FROM customer_phones p WHERE p.customer_id = a.customer_id
                    ORDER BY position LIMIT 1) AS phone
            FROM crm_alerts a LEFT JOIN customers k ON k.id = a.customer_id
            WHERE a.acknowledged_at IS NULL
            ORDER BY a.created_at DESC, a.id DESC LIMIT ?
            """,
            [limit],
        ))
    return [{**r, "customer_name": r["customer_name"] or "", "customer_company": r["customer_company"] or "",
             "phone_display": display(r["phone"]) if r["phone"] else ""} for r in rows]


def acknowledge_alert(db: Database, alert_id: int, by: str) -> bool:
    """Mark an open alert as seen by `by`; False when there is no such open alert."""
    with transaction(db):
        return db.execute(
            "UPDATE crm_alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
            [by, to_iso(), alert_id],
        ).rowcount > 0


def _upset_message(latest: Iterable[str], earlier: list[list[str]], settings: CrmSettings) -> str | None:
    """The upset alert's words, or None when the latest moods are not upset or the customer is not usually calm."""
    upset = [m for m in MOODS if m in UPSET and m in set(latest)]
    if not upset or len(earlier) < 2:
        return None
    calm = sum(1 for moods in earlier if "calm" in moods)
    if calm / len(earlier) < settings.calm_share:
        return None
    return f"Usually calm, but was {' and '.join(upset)} on the last call"


def _repeat_message(db: Database, customer_id: int, settings: CrmSettings, now: datetime) -> str | None:
    """Calls from the customer in the window, none settled: a settled wrap-up, or a callback that reached them."""
    settled = list(settings.settled)
    marks = ", ".join("?" for _ in settled)
    with db_lock(db):
        rows = list(db.query(
            f"""
            SELECT c.id, c.direction,
                   EXISTS (SELECT 1 FROM wrapups w WHERE w.call_id = c.id AND w.outcome IN ({marks})) AS settled,
                   EXISTS (SELECT 1 FROM wrapups w WHERE w.call_id = c.id) AS wrapped,
                   (c.direction = 'callback' AND c.answered_by IS NOT NULL) AS called_back
            FROM calls c WHERE c.customer_id = ? AND c.started_at >= ? AND c.started_at <= ?
            """,
            [*settled, customer_id, to_iso(now - timedelta(days=settings.repeat_days)), to_iso(now)],
        ))
    if any(r["settled"] or r["called_back"] for r in rows):
        return None
    calls = [r for r in rows if r["direction"] == "inbound"]  # the customer calling, not the office
    if len(calls) < settings.repeat_calls:
        return None
    days = "day" if settings.repeat_days == 1 else f"{settings.repeat_days} days"
    unwrapped = sum(1 for r in calls if not r["wrapped"])
    extra = f"; {unwrapped} without a wrap-up" if unwrapped else ""
    return f"{len(calls)} calls in {days}, none settled ({', '.join(settings.settled)}){extra}"


def _recent_wrapups(db: Database, customer_id: int, limit: int) -> list[dict]:
    rows = db.query(
        "SELECT call_id, moods, saved_at FROM wrapups WHERE customer_id = ? ORDER BY saved_at DESC, rowid DESC "
        "LIMIT ?", [customer_id, limit])
    return [{**r, "moods": json.loads(r["moods"] or "[]")} for r in rows]


def _alert_exists(db: Database, where: str, params: list) -> bool:
    return bool(list(db.query(f"SELECT 1 FROM crm_alerts WHERE {where} LIMIT 1", params)))


def _insert(db: Database, customer_id: int, call_id: str, kind: str, message: str, now: datetime) -> dict:
    row = {"customer_id": customer_id, "call_id": call_id, "kind": kind, "message": message,
           "created_at": to_iso(now), "acknowledged_by": None, "acknowledged_at": None}
    alert_id = db["crm_alerts"].insert(row).last_pk
    return {"id": alert_id, **row}


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
