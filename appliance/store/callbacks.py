"""Callback requests: callers who left the queue asking to be called back, keeping their place."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlite_utils import Database

from appliance.store.db import db_lock, to_iso, transaction


def request_callback(
    db: Database,
    *,
    number: str,
    name: str | None = None,
    queue: str = "",
    source: str | None = None,
    call_id: str | None = None,
    requested_at: datetime | str | None = None,
    position_at: datetime | str | None = None,
    due_at: datetime | str | None = None,
) -> tuple[str, bool]:
    """Ask for a callback and return (id, created).

    `position_at` (default: `requested_at`) orders the line: a caller who held since 9:00
    and then asked for a callback keeps a 9:00 place. While a request for the same number
    and queue is pending, asking again refreshes it (newer details win, id and place stay)
    and returns created=False.
    """
    if not number:
        raise ValueError("a callback needs a number")
    requested = to_iso(requested_at)
    now = to_iso()
    with transaction(db):
        rows = list(
            db.query("SELECT * FROM callbacks WHERE number = ? AND queue = ? AND state = 'pending'", [number, queue])
        )
        if rows:
            current = rows[0]
            db.execute(
                "UPDATE callbacks SET name = ?, source = ?, call_id = ?, requested_at = ?, due_at = ?, updated_at = ? "
                "WHERE id = ?",
                [
                    name if name is not None else current["name"],
                    source if source is not None else current["source"],
                    call_id if call_id is not None else current["call_id"],
                    requested,
                    to_iso(due_at) if due_at is not None else current["due_at"],
                    now,
                    current["id"],
                ],
            )
            return current["id"], False
        callback_id = uuid.uuid4().hex
        db["callbacks"].insert(
            {
                "id": callback_id,
                "number": number,
                "name": name,
                "queue": queue,
                "source": source,
                "call_id": call_id,
                "requested_at": requested,
                "position_at": requested if position_at is None else to_iso(position_at),
                "due_at": None if due_at is None else to_iso(due_at),
                "state": "pending",
                "attempts": 0,
                "updated_at": now,
            }
        )
        return callback_id, True


def pending_callbacks(db: Database, queue: str | None = None) -> list[dict]:
    """Pending requests in line order (oldest place first), for one queue or all."""
    sql = "SELECT * FROM callbacks WHERE state = 'pending'"
    params: list = []
    if queue is not None:
        sql += " AND queue = ?"
        params.append(queue)
    with db_lock(db):
        return list(db.query(sql + " ORDER BY position_at, requested_at, rowid", params))


def get_callback(db: Database, callback_id: str) -> dict | None:
    """One callback request, or None."""
    with db_lock(db):
        rows = list(db.query("SELECT * FROM callbacks WHERE id = ?", [callback_id]))
    return rows[0] if rows else None
