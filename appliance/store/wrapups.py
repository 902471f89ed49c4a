"""Wrap-ups: what an agent noted about a call (outcome, moods, note, callback), one per agent per call."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from appliance.store.db import db_lock, to_iso, transaction


def save_wrapup(db: Database, *, call_id: str, agent: str, customer_id: int | None, outcome: str,
                moods: Iterable[str], note: str, callback_at: datetime | str | None = None,
                saved_by: str | None = None) -> dict:
    """Store (or replace) the agent's wrap-up of the call and return it; a callback already booked is kept."""
    row = {
        "call_id": call_id,
        "agent": agent,
        "customer_id": customer_id,
        "outcome": outcome,
        "moods": json.dumps(list(moods)),
        "note": note or "",
        "callback_at": None if callback_at is None else to_iso(callback_at),
        "saved_by": saved_by,
        "saved_at": to_iso(),
    }
    with transaction(db):
        db.execute(
            "INSERT INTO wrapups (call_id, agent, customer_id, outcome, moods, note, callback_at, saved_by, saved_at) "
            "VALUES (:call_id, :agent, :customer_id, :outcome, :moods, :note, :callback_at, :saved_by, :saved_at) "
            "ON CONFLICT(call_id, agent) DO UPDATE SET customer_id = excluded.customer_id, "
            "outcome = excluded.outcome, moods = excluded.moods, note = excluded.note, "
            "callback_at = excluded.callback_at, saved_by = excluded.saved_by, saved_at = excluded.saved_at",
            row,
        )
        saved = get_wrapup(db, call_id, agent)
        assert saved is not None  # written just above, in the same transaction
        return saved


def set_wrapup_callback(db: Database, call_id: str, agent: str, callback_id: str) -> None:
    """Note the callback booked for the wrap-up; KeyError when there is no such wrap-up."""
    with transaction(db):
        if not db.execute("UPDATE wrapups SET callback_id = ? WHERE call_id = ? AND agent = ?",
                          [callback_id, call_id, agent]).rowcount:
            raise KeyError(f"no wrap-up of call {call_id!r} by {agent!r}")


def get_wrapup(db: Database, call_id: str, agent: str) -> dict | None:
    """The agent's wrap-up of the call, moods decoded, or None."""
    with db_lock(db):
        rows = list(db.query("SELECT * FROM wrapups WHERE call_id = ? AND agent = ?", [call_id, agent]))
    return _out(rows[0]) if rows else None


def call_wrapups(db: Database, call_id: str) -> list[dict]:
    """Every wrap-up of the call, latest first (a transferred call can have several)."""
    with db_lock(db):
        rows = list(db.query("SELECT * FROM wrapups WHERE call_id = ? ORDER BY saved_at DESC, rowid DESC",
                             [call_id]))
    return [_out(r) for r in rows]


def customer_wrapups(db: Database, customer_id: int, limit: int = 10) -> list[dict]:
    """The customer's latest wrap-ups, latest first."""
    with db_lock(db):
        rows = list(db.query("SELECT * FROM wrapups WHERE customer_id = ? ORDER BY saved_at DESC, rowid DESC "
                             "LIMIT ?", [customer_id, limit]))
    return [_out(r) for r in rows]


def _out(row: dict) -> dict:
    return {**row, "moods": json.loads(row["moods"] or "[]")}
