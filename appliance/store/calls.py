"""Call records: one row per call, from first ring to hang-up."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlite_utils import Database

from appliance.store.db import db_lock, from_iso, to_iso, transaction

DIRECTIONS = ("internal", "inbound", "outbound", "callback")
# answered: a person answered. The box alone answered: callback (the caller asked for one), abandoned
# (the caller hung up before a person answered), handled (the box finished: a feature code, a goodbye).
DISPOSITIONS = ("answered", "busy", "no-answer", "cancelled", "failed", "callback", "abandoned", "handled")


def start_call(
    db: Database,
    *,
    sip_call_id: str,
    direction: str,
    line: str,
    from_number: str,
    from_name: str | None,
    to_number: str,
    started_at: datetime | str | None = None,
    extra: dict | None = None,
    customer_id: int | None = None,
) -> str:
    """Record a new call and return its id (uuid4 hex)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    call_id = uuid.uuid4().hex
    row: dict[str, object] = {
        "id": call_id,
        "sip_call_id": sip_call_id,
        "direction": direction,
        "line": line,
        "from_number": from_number,
        "from_name": from_name,
        "to_number": to_number,
        "started_at": to_iso(started_at),
        "extra": json.dumps(extra) if extra else None,
    }
    if customer_id is not None:
        row["customer_id"] = customer_id
    with transaction(db):
        db.table("calls").insert(row)
    return call_id


def mark_answered(db: Database, call_id: str, answered_by: str | None, at: datetime | str | None = None) -> bool:
    """Note who answered (None: the box itself) and when; False if the call was already answered or ended."""
    with transaction(db):
        updated = db.execute(
            "UPDATE calls SET answered_by = ?, answered_at = ? "
            "WHERE id = ? AND answered_at IS NULL AND ended_at IS NULL",
            [answered_by, to_iso(at), call_id],
        ).rowcount
        if not updated:
            _require(db, call_id)
        return updated > 0


def finish_call(
    db: Database,
    call_id: str,
    disposition: str,
    sip_status: int | None = None,
    hangup_by: str | None = None,
    at: datetime | str | None = None,
) -> bool:
    """Close the record and compute the answered duration; False if it was already closed."""
    if disposition not in DISPOSITIONS:
        raise ValueError(f"disposition must be one of {DISPOSITIONS}, got {disposition!r}")
    ended_at = to_iso(at)
    with transaction(db):
        row = _require(db, call_id)
        if row["ended_at"] is not None:
            return False
        duration = None
        if row["answered_at"] is not None:
            seconds = (from_iso(ended_at) - from_iso(row["answered_at"])).total_seconds()
            duration = round(max(seconds, 0.0), 3)
        db.execute(
            "UPDATE calls SET ended_at = ?, disposition = ?, sip_status = ?, hangup_by = ?, duration = ? "
            "WHERE id = ?",
            [ended_at, disposition, sip_status, hangup_by, duration, call_id],
        )
        return True


def close_interrupted(db: Database, at: datetime | str | None = None) -> int:
    """Close records left open by a crash or power cut; returns how many were closed."""
    with transaction(db):
        open_ids = [r["id"] for r in db.query("SELECT id, answered_at FROM calls WHERE ended_at IS NULL")]
    for call_id in open_ids:
        row = get_call(db, call_id)
        disposition = "failed"
        if row and row["answered_at"]:
            disposition = "answered" if row["answered_by"] else "abandoned"
        finish_call(db, call_id, disposition, hangup_by="restart", at=at)
        update_extra(db, call_id, interrupted=True)
    return len(open_ids)


def update_extra(db: Database, call_id: str, **fields: Any) -> dict:
    """Merge JSON-serialisable fields into the call's `extra` and return the result."""
    with transaction(db):
        row = _require(db, call_id)
        extra = {**_decode(row["extra"]), **fields}
        db.execute("UPDATE calls SET extra = ? WHERE id = ?", [json.dumps(extra), call_id])
        return extra


def set_ivr_path(db: Database, call_id: str, path: list[dict]) -> None:
    """Store the steps the caller took through the IVR menus (a JSON-serialisable list)."""
    if not isinstance(path, list):
        raise TypeError(f"ivr path must be a list, got {type(path).__name__}")
    encoded = json.dumps(path)
    with transaction(db):
        _require(db, call_id)
        db.execute("UPDATE calls SET ivr_path = ? WHERE id = ?", [encoded, call_id])


def set_line(db: Database, call_id: str, line: str) -> None:
    """Note the line (trunk or modem) a call used, when it was chosen after the record began."""
    with transaction(db):
        _require(db, call_id)
        db.execute("UPDATE calls SET line = ? WHERE id = ?", [line, call_id])


def set_recording(db: Database, call_id: str, relative_path: str) -> None:
    """Note where the call's recording is, relative to the data folder."""
    parts = PurePosixPath(relative_path).parts
    if not relative_path or relative_path.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"recording path must be relative to the data folder, got {relative_path!r}")
    with transaction(db):
        _require(db, call_id)
        db.execute("UPDATE calls SET recording = ? WHERE id = ?", [relative_path, call_id])


def set_answered_by(db: Database, call_id: str, who: str) -> None:
    """Change who has an answered call, e.g. the extension the IVR handed it to."""
    with transaction(db):
        if _require(db, call_id)["answered_at"] is None:
            raise ValueError(f"call {call_id!r} was not answered")
        db.execute("UPDATE calls SET answered_by = ? WHERE id = ?", [who, call_id])


def get_call(db: Database, call_id: str) -> dict | None:
    """One call record with `extra` decoded to a dict and `ivr_path` to a list, or None."""
    with db_lock(db):
        rows = list(db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
    return _out(rows[0]) if rows else None


def recent_calls(db: Database, limit: int = 50, *, since: datetime | str | None = None,
                 extension: str | None = None, direction: str | None = None, queue: str | None = None) -> list[dict]:
    """The latest calls, newest first; optionally since a time, of one extension, direction or queue."""
    where, params = ["1"], []
    if since is not None:
        where.append("started_at >= ?")
        params.append(to_iso(since))
    if extension:
        where.append("(from_number = ? OR to_number = ? OR answered_by = ?)")
        params += [extension] * 3
    if direction:
        where.append("direction = ?")
        params.append(direction)
    if queue:
        where.append("EXISTS (SELECT 1 FROM queue_entries e WHERE e.call_id = calls.id AND e.queue = ?)")
        params.append(queue)
    with db_lock(db):
        rows = list(db.query(f"SELECT * FROM calls WHERE {' AND '.join(where)} "
                             "ORDER BY started_at DESC, rowid DESC LIMIT ?", [*params, limit]))
    return [_out(r) for r in rows]


def _require(db: Database, call_id: str) -> dict:
    rows = list(db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
    if not rows:
        raise KeyError(f"no call record {call_id!r}")
    return rows[0]


def _decode(extra: str | None) -> dict:
    return json.loads(extra) if extra else {}


def _out(row: dict) -> dict:
    return {**row, "extra": _decode(row["extra"]), "ivr_path": json.loads(row["ivr_path"] or "[]")}


def queue_of_call(db: Database, call_id: str) -> str | None:
    """The queue the call last waited in, if it went through one."""
    with db_lock(db):
        rows = list(db.query("SELECT queue FROM queue_entries WHERE call_id = ? ORDER BY entered_at DESC LIMIT 1",
                             [call_id]))
    return rows[0]["queue"] if rows else None


def unwrapped_calls(db: Database, extension: str, since: datetime | str, limit: int = 5) -> list[dict]:
    """Calls the extension answered since then, now over, with no wrap-up by that extension yet; newest first."""
    with db_lock(db):
        rows = list(db.query(
            "SELECT c.* FROM calls c WHERE c.answered_by = ? AND c.ended_at IS NOT NULL AND c.started_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM wrapups w WHERE w.call_id = c.id AND w.agent = ?) "
            "ORDER BY c.started_at DESC LIMIT ?", [extension, to_iso(since), extension, limit]))
    return [_out(r) for r in rows]


def call_parties(db: Database, call_id: str) -> dict | None:
    """Who took part in a call: the extensions that placed, answered or were offered it, and its queue."""
    with db_lock(db):
        row = next(iter(db.query("SELECT id, direction, from_number, to_number, answered_by FROM calls WHERE id = ?",
                                 [call_id])), None)
        if row is None:
            return None
        offered = [r["agent"] for r in db.query(
            "SELECT DISTINCT o.agent FROM queue_entries e JOIN queue_offers o ON o.entry_id = e.id "
            "WHERE e.call_id = ?", [call_id])]
        callback_agents = [r["agent"] for r in db.query(
            "SELECT agent FROM callbacks WHERE record_id = ? AND agent IS NOT NULL", [call_id])]
        queues = [r["queue"] for r in db.query("SELECT DISTINCT queue FROM queue_entries WHERE call_id = ?",
                                               [call_id])]
    placed = row["from_number"] if row["direction"] in ("outbound", "internal") else None
    called = row["to_number"] if row["direction"] == "internal" else None
    handled = {x for x in (row["answered_by"], placed, *callback_agents) if x}
    return {"handled": handled, "offered": set(offered) | handled | ({called} if called else set()),
            "queues": set(queues)}
