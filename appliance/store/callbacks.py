"""Callback requests: callers who left the queue asking to be called back, keeping their place.

A row goes pending -> dialing (claim) -> completed | failed, or back to pending after an attempt
that did not reach the customer. Only claim moves a row to dialing, in one conditional UPDATE,
so a callback can never be dialled twice.
"""

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
    line: str | None = None,
) -> tuple[str, bool]:
    """Ask for a callback and return (id, created).

    `position_at` (default: `requested_at`) orders the line: a caller who held since 9:00
    and then asked for a callback keeps a 9:00 place. While a request for the same number
    and queue is pending, asking again refreshes it (newer details win, id and place stay)
    and returns created=False. `line` is the trunk name (or "extension") the call came in on,
    so the callback goes out the same way.
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
                "UPDATE callbacks SET name = ?, source = ?, call_id = ?, requested_at = ?, due_at = ?, line = ?, "
                "updated_at = ? WHERE id = ?",
                [
                    name if name is not None else current["name"],
                    source if source is not None else current["source"],
                    call_id if call_id is not None else current["call_id"],
                    requested,
                    to_iso(due_at) if due_at is not None else current["due_at"],
                    line if line is not None else current["line"],
                    now,
                    current["id"],
                ],
            )
            return current["id"], False
        callback_id = uuid.uuid4().hex
        db.table("callbacks").insert(
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
                "line": line,
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


def schedule_callback(
    db: Database,
    *,
    number: str,
    queue: str,
    at: datetime,
    name: str | None = None,
    line: str | None = None,
    source: str = "cli",
    dial_as: str | None = None,
) -> tuple[str, bool]:
    """Ask for a callback at a time and return (id, created); it takes its place in line at that time.

    A pending request for the same number and queue is moved to the new time. `dial_as` is the
    extension whose dialling rights the callback has (an agent's wrap-up); None: the box's callback policy.
    """
    when = to_iso(at)
    with transaction(db):
        callback_id, created = request_callback(
            db, number=number, name=name, queue=queue, source=source, position_at=when, due_at=when, line=line
        )
        if not created:
            db.execute("UPDATE callbacks SET position_at = ? WHERE id = ?", [when, callback_id])
        db.execute("UPDATE callbacks SET dial_as = ? WHERE id = ?", [dial_as, callback_id])
        return callback_id, created


def refuse(db: Database, callback_id: str, reason: str) -> bool:
    """The outbound policy refused the number: the callback fails for good, never dialled."""
    with transaction(db):
        db.execute("UPDATE callbacks SET last_status = ? WHERE id = ?", ["refused", callback_id])
        return _finish(db, callback_id, "failed", f"refused: {reason}"[:200])


def claim(db: Database, callback_id: str) -> dict | None:
    """Take a pending callback for dialling (attempts + 1); the updated row, or None if it was not pending."""
    now = to_iso()
    with transaction(db):
        claimed = db.execute(
            "UPDATE callbacks SET state = 'dialing', attempts = attempts + 1, last_attempt_at = ?, "
            "next_attempt_at = NULL, updated_at = ? WHERE id = ? AND state = 'pending'",
            [now, now, callback_id],
        ).rowcount
        return get_callback(db, callback_id) if claimed else None


def release(db: Database, callback_id: str) -> None:
    """Give a dialing callback back untouched: no agent answered, so the customer was never dialled."""
    with transaction(db):
        _back_to_pending(db, callback_id, "attempts = max(attempts - 1, 0)", [])


def attempt_failed(db: Database, callback_id: str, status: str, retry_at: datetime | None) -> str:
    """The customer was not reached (status e.g. "busy"): pending again until retry_at, or failed without one.

    Returns the callback's state afterwards; a callback that was no longer dialing is left alone.
    KeyError for an unknown id.
    """
    with transaction(db):
        row = get_callback(db, callback_id)
        if row is None:
            raise KeyError(callback_id)
        if row["state"] != "dialing":
            return row["state"]
        db.execute("UPDATE callbacks SET last_status = ? WHERE id = ?", [status, callback_id])
        if retry_at is None:
            _finish(db, callback_id, "failed", status)
            return "failed"
        _back_to_pending(db, callback_id, "next_attempt_at = ?, outcome = ?", [to_iso(retry_at), status])
        return "pending"


def complete(db: Database, callback_id: str, agent: str, record_id: str | None = None) -> None:
    """The agent and the customer talked: the callback is completed."""
    with transaction(db):
        db.execute(
            "UPDATE callbacks SET state = 'completed', outcome = 'answered', agent = ?, "
            "record_id = coalesce(?, record_id), next_attempt_at = NULL, updated_at = ? "
            "WHERE id = ? AND state IN ('pending', 'dialing')",
            [agent, record_id, to_iso(), callback_id],
        )


def set_record(db: Database, callback_id: str, record_id: str) -> None:
    """Link the call record of the callback's last attempt."""
    with transaction(db):
        db.execute(
            "UPDATE callbacks SET record_id = ?, updated_at = ? WHERE id = ?", [record_id, to_iso(), callback_id]
        )


def recover_interrupted(db: Database) -> int:
    """At start: callbacks left dialing by a crash go back to pending (the attempt counts); returns how many."""
    with transaction(db):
        rows = list(db.query("SELECT id FROM callbacks WHERE state = 'dialing'"))
        for row in rows:
            _back_to_pending(db, row["id"], "outcome = 'interrupted'", [])
        return len(rows)


def find_pending(db: Database, prefix: str) -> list[dict]:
    """Pending callbacks whose id starts with prefix (the CLI shows 8 characters)."""
    if not prefix:
        return []
    with db_lock(db):
        return list(db.query("SELECT * FROM callbacks WHERE state = 'pending' AND substr(id, 1, ?) = ?",
                             [len(prefix), prefix]))


def cancel_callback(db: Database, callback_id: str) -> bool:
    """Cancel a pending callback; True if it was pending."""
    with transaction(db):
        return _finish(db, callback_id, "cancelled", "cancelled", only_pending=True)


def list_callbacks(
    db: Database, states: tuple[str, ...] = ("pending", "dialing"), queue: str | None = None
) -> list[dict]:
    """Callbacks in the given states in line order, for one queue or all."""
    sql = f"SELECT * FROM callbacks WHERE state IN ({', '.join('?' * len(states))})"
    params: list = list(states)
    if queue is not None:
        sql += " AND queue = ?"
        params.append(queue)
    with db_lock(db):
        return list(db.query(sql + " ORDER BY position_at, requested_at, rowid", params))


def _finish(db: Database, callback_id: str, state: str, outcome: str, only_pending: bool = False) -> bool:
    allowed = "('pending')" if only_pending else "('pending', 'dialing')"
    return db.execute(
        f"UPDATE callbacks SET state = ?, outcome = ?, next_attempt_at = NULL, updated_at = ? "
        f"WHERE id = ? AND state IN {allowed}",
        [state, outcome, to_iso(), callback_id],
    ).rowcount > 0


def _back_to_pending(db: Database, callback_id: str, assignments: str, params: list) -> None:
    """Dialing -> pending with extra `assignments`; the caller holds a transaction."""
    row = get_callback(db, callback_id)
    if row is None or row["state"] != "dialing":
        return
    # The customer may have asked again while being dialled, making a second pending row (at most
    # one may be pending per number and queue). Keep this row, with the earlier of the two places.
    twins = list(
        db.query(
            "SELECT id, position_at FROM callbacks WHERE number = ? AND queue = ? AND state = 'pending'",
            [row["number"], row["queue"]],
        )
    )
    position = row["position_at"]
    for twin in twins:
        position = min(position, twin["position_at"])
        db.execute(
            "UPDATE callbacks SET state = 'cancelled', outcome = 'merged', updated_at = ? WHERE id = ?",
            [to_iso(), twin["id"]],
        )
    db.execute(
        f"UPDATE callbacks SET state = 'pending', position_at = ?, {assignments}, updated_at = ? WHERE id = ?",
        [position, *params, to_iso(), callback_id],
    )
