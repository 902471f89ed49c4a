"""A customer's past calls with their wrap-ups, IVR path and queue wait, and how long calls usually take."""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta, timezone

from sqlite_utils import Database

from appliance.crm.ivr_text import describe_path
from appliance.store.db import db_lock, from_iso, to_iso

SAMPLE = 200  # calls behind an expected handling time
SEGMENT_WINDOW = timedelta(days=180)  # bounds the scan of calls when a segment's median is needed
# queue_entries has no index on call_id: an entry is looked up within its queue (indexed by
# queue, entered_at) in a window around the call, which also bounds the work.
QUEUE_SLACK = timedelta(minutes=1)
OPEN_CALL_WINDOW = timedelta(days=1)


def customer_calls(db: Database, customer_id: int, limit: int = 5, before_call: str | None = None) -> list[dict]:
    """The customer's calls, newest first, without `before_call` and anything started after it."""
    where, params = "c.customer_id = ?", [customer_id]
    with db_lock(db):
        if before_call is not None:
            where += " AND c.id != ?"
            params.append(before_call)
            pivot = list(db.query("SELECT started_at FROM calls WHERE id = ?", [before_call]))
            if pivot:
                where += " AND c.started_at <= ?"
                params.append(pivot[0]["started_at"])
        rows = list(db.query(
            f"""
            SELECT c.id AS call_id, c.started_at, c.ended_at, c.direction, c.answered_by AS agent, c.duration,
                   c.disposition, c.ivr_path, w.outcome, w.moods, w.note
            FROM calls c
            LEFT JOIN wrapups w ON w.rowid = (
                SELECT rowid FROM wrapups WHERE call_id = c.id ORDER BY saved_at DESC, rowid DESC LIMIT 1)
            WHERE {where}
            ORDER BY c.started_at DESC, c.rowid DESC
            LIMIT ?
            """,
            [*params, limit],
        ))
        entries = queue_entries(db, rows)
    result = []
    for row in rows:
        path = json.loads(row.pop("ivr_path") or "[]")
        entry = entries.get(row["call_id"])
        row.pop("ended_at")
        result.append({
            **row,
            "moods": json.loads(row["moods"]) if row["moods"] else [],
            "note": row["note"] or "",
            "ivr_path": path,
            "ivr_text": describe_path(path),
            "queue": entry["queue"] if entry else None,
            "wait": wait_seconds(entry) if entry else None,
        })
    return result


def queue_entries(db: Database, calls: list[dict]) -> dict[str, dict]:
    """The latest queue entry of each call (dicts with call_id, started_at, ended_at), by call id."""
    if not calls:
        return {}
    starts = [from_iso(c["started_at"]) for c in calls]
    ends = [from_iso(c["ended_at"]) if c.get("ended_at") else from_iso(c["started_at"]) + OPEN_CALL_WINDOW
            for c in calls]
    ids = [c["call_id"] for c in calls]
    with db_lock(db):
        rows = list(db.query(
            f"""
            SELECT * FROM queue_entries
            WHERE queue IN (SELECT name FROM queues) AND entered_at BETWEEN ? AND ?
              AND call_id IN ({', '.join('?' * len(ids))})
            ORDER BY entered_at
            """,
            [(min(starts) - QUEUE_SLACK).timestamp(), (max(ends) + QUEUE_SLACK).timestamp(), *ids],
        ))
    return {r["call_id"]: r for r in rows}  # ordered by entry time: a call's last entry wins


def wait_seconds(entry: dict, now: float | None = None) -> float | None:
    """How long the caller waited in the queue; while still waiting, the wait so far (needs `now`)."""
    end = entry["answered_at"] or entry["left_at"] or entry["ended_at"] or now
    return None if end is None else round(max(end - entry["entered_at"], 0.0), 3)


def expected_handling(db: Database, customer_id: int | None, segment: str | None) -> float | None:
    """Seconds a call is likely to take: the customer's median, else its segment's, else None."""
    with db_lock(db):
        durations: list[float] = []
        if customer_id is not None:
            durations = [r["duration"] for r in db.query(
                "SELECT duration FROM calls WHERE customer_id = ? AND duration IS NOT NULL "
                "ORDER BY started_at DESC LIMIT ?", [customer_id, SAMPLE])]
        if not durations and segment:
            since = to_iso(datetime.now(timezone.utc) - SEGMENT_WINDOW)
            durations = [r["duration"] for r in db.query(
                "SELECT c.duration FROM calls c JOIN customers k ON k.id = c.customer_id "
                "WHERE c.started_at >= ? AND c.duration IS NOT NULL AND COALESCE(k.segment_override, k.segment) = ? "
                "ORDER BY c.started_at DESC LIMIT ?", [since, segment, SAMPLE])]
    return round(statistics.median(durations), 1) if durations else None
