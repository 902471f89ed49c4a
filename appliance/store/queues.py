"""Queues in the store: agent logins and pauses, entries and offers, statistics.

Entry and offer times are epoch seconds (floats), as the queue engine keeps them. The queues'
definitions are read and written as QueueConfig by appliance/calls/queue_definitions.py.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone

from sqlite_utils import Database

from appliance.store.db import query_all, to_iso, transaction

LEFT_OUTCOMES = ("abandoned", "callback", "timeout", "full", "closed", "empty")
OFFER_OUTCOMES = ("answered", "missed", "cancelled")
DEFAULT_SERVICE_LEVEL = 20.0


# --- agents ---


def set_login(db: Database, extension: str, queue: str, logged_in: bool) -> None:
    """Log extension in to (or out of) queue; logging in twice keeps the first login time."""
    with transaction(db):
        if logged_in:
            db.execute(
                "INSERT OR IGNORE INTO agent_logins (extension, queue, logged_in_at) VALUES (?, ?, ?)",
                [extension, queue, to_iso()],
            )
        else:
            db.execute("DELETE FROM agent_logins WHERE extension = ? AND queue = ?", [extension, queue])


def logins(db: Database) -> list[tuple[str, str]]:
    """Every (extension, queue) login, by extension then queue."""
    rows = query_all(db, "SELECT extension, queue FROM agent_logins ORDER BY extension, queue")
    return [(r["extension"], r["queue"]) for r in rows]


def set_pause(db: Database, extension: str, paused: bool, reason: str = "") -> None:
    """Pause extension in all its queues (a new reason replaces the old one), or unpause it."""
    with transaction(db):
        if paused:
            db.execute(
                "INSERT INTO agent_pauses (extension, reason, paused_at) VALUES (?, ?, ?) "
                "ON CONFLICT(extension) DO UPDATE SET reason = excluded.reason",
                [extension, reason, to_iso()],
            )
        else:
            db.execute("DELETE FROM agent_pauses WHERE extension = ?", [extension])


def pauses(db: Database) -> dict[str, str]:
    """Paused extensions and why."""
    return {r["extension"]: r["reason"] or "" for r in query_all(db, "SELECT extension, reason FROM agent_pauses")}


# --- entries and offers ---


def enter_queue(
    db: Database, *, queue: str, call_id: str | None, number: str | None, name: str | None, vip: bool, entered_at: float
) -> str:
    """Record a caller joining a queue; returns the entry id."""
    entry_id = uuid.uuid4().hex
    with transaction(db):
        db.table("queue_entries").insert(
            {
                "id": entry_id,
                "queue": queue,
                "call_id": call_id,
                "number": number,
                "name": name,
                "vip": int(bool(vip)),
                "entered_at": float(entered_at),
            }
        )
    return entry_id


def entry_answered(db: Database, entry_id: str, agent: str, at: float) -> None:
    """An agent answered the caller."""
    with transaction(db):
        db.execute(
            "UPDATE queue_entries SET answered_at = ?, agent = ?, outcome = 'answered' WHERE id = ?",
            [float(at), agent, entry_id],
        )


def entry_left(db: Database, entry_id: str, outcome: str, at: float, callback_id: str | None = None) -> None:
    """The caller left the line unanswered: abandoned, callback, timeout, full, closed or empty."""
    if outcome not in LEFT_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(LEFT_OUTCOMES)}")
    with transaction(db):
        db.execute(
            "UPDATE queue_entries SET left_at = ?, ended_at = ?, outcome = ?, callback_id = ? WHERE id = ?",
            [float(at), float(at), outcome, callback_id, entry_id],
        )


def entry_ended(db: Database, entry_id: str, at: float) -> None:
    """The answered call ended."""
    with transaction(db):
        db.execute("UPDATE queue_entries SET ended_at = ? WHERE id = ?", [float(at), entry_id])


def record_offer(
    db: Database,
    *,
    queue: str,
    agent: str,
    rang_at: float,
    ended_at: float,
    outcome: str,
    entry_id: str | None = None,
    callback_id: str | None = None,
) -> None:
    """One finished ring of an agent for a caller or a callback: answered, missed or cancelled."""
    if outcome not in OFFER_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OFFER_OUTCOMES)}")
    with transaction(db):
        db.table("queue_offers").insert(
            {
                "queue": queue,
                "entry_id": entry_id,
                "callback_id": callback_id,
                "agent": agent,
                "rang_at": float(rang_at),
                "ended_at": float(ended_at),
                "outcome": outcome,
            }
        )


def answered_counts(db: Database, since: float) -> dict[tuple[str, str], int]:
    """Calls answered at or after since, by (queue, agent)."""
    rows = query_all(
        db,
        "SELECT queue, agent, count(*) AS n FROM queue_entries WHERE answered_at >= ? GROUP BY queue, agent",
        [float(since)],
    )
    return {(r["queue"], r["agent"]): r["n"] for r in rows}


def recent_handling_times(db: Database, queue: str, limit: int = 20) -> list[float]:
    """Talk times (ended - answered) of the queue's latest finished answered calls, newest first."""
    rows = query_all(
        db,
        "SELECT ended_at - answered_at AS t FROM queue_entries "
        "WHERE queue = ? AND answered_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?",
        [queue, limit],
    )
    return [r["t"] for r in rows]


# --- statistics ---


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def queue_stats(
    db: Database,
    queue: str | None = None,
    since: float | None = None,
    service_levels: dict[str, float] | None = None,
) -> list[dict]:
    """Per queue (one, or every queue defined or seen), over entries that entered at or after `since`.

    offered: entries; answered: entries an agent answered; abandoned: callers who hung up
    waiting; abandon_rate: abandoned / offered (0 with none offered); service_level: share of
    offered answered within the queue's service level (`service_levels[name]`, default 20 s),
    0 with none offered; wait: answered_at (or left_at) - entered_at, over entries that
    finished waiting; wait_avg and wait_p90 (nearest rank: the smallest wait with at least
    90% of waits at or below it); aht: mean ended_at - answered_at over finished answered
    calls. Averages are None without data. callbacks_requested/completed/failed count
    callback rows of the queue requested at or after `since`, by their state.
    """
    levels = service_levels or {}
    start = -math.inf if since is None else float(since)
    start_iso = "" if since is None else _epoch_iso(since)
    if queue is not None:
        names = [queue]
    else:
        rows = query_all(
            db,
            "SELECT name FROM queues UNION SELECT queue FROM queue_entries "
            "UNION SELECT queue FROM callbacks WHERE queue != '' ORDER BY 1",
        )
        names = [r["name"] for r in rows]
    result = []
    for name in names:
        entries = query_all(
            db,
            "SELECT entered_at, answered_at, left_at, ended_at, outcome FROM queue_entries "
            "WHERE queue = ? AND entered_at >= ?",
            [name, start],
        )
        level = levels.get(name, DEFAULT_SERVICE_LEVEL)
        offered = len(entries)
        answered = [e for e in entries if e["answered_at"] is not None]
        abandoned = sum(1 for e in entries if e["outcome"] == "abandoned")
        in_level = sum(1 for e in answered if e["answered_at"] - e["entered_at"] <= level)
        waits = [
            (e["answered_at"] if e["answered_at"] is not None else e["left_at"]) - e["entered_at"]
            for e in entries
            if e["answered_at"] is not None or e["left_at"] is not None
        ]
        talk = [e["ended_at"] - e["answered_at"] for e in answered if e["ended_at"] is not None]
        callbacks = {
            r["state"]: r["n"]
            for r in query_all(
                db,
                "SELECT state, count(*) AS n FROM callbacks WHERE queue = ? AND requested_at >= ? GROUP BY state",
                [name, start_iso],
            )
        }
        result.append(
            {
                "queue": name,
                "offered": offered,
                "answered": len(answered),
                "abandoned": abandoned,
                "abandon_rate": abandoned / offered if offered else 0.0,
                "service_level": in_level / offered if offered else 0.0,
                "wait_avg": _mean(waits),
                "wait_p90": _p90(waits),
                "aht": _mean(talk),
                "callbacks_requested": sum(callbacks.values()),
                "callbacks_completed": callbacks.get("completed", 0),
                "callbacks_failed": callbacks.get("failed", 0),
            }
        )
    return result


def agent_stats(db: Database, queue: str | None = None, since: float | None = None) -> list[dict]:
    """Per agent, by extension: offers rung at or after `since` (offered, answered, missed) and aht.

    aht is the mean ended_at - answered_at of the finished calls the agent answered (entered at
    or after `since`), None without any.
    """
    start = -math.inf if since is None else float(since)
    where = "rang_at >= ?"
    params: list[float | str] = [start]
    entry_where = "entered_at >= ? AND answered_at IS NOT NULL AND ended_at IS NOT NULL"
    entry_params: list[float | str] = [start]
    if queue is not None:
        where += " AND queue = ?"
        params.append(queue)
        entry_where += " AND queue = ?"
        entry_params.append(queue)
    stats: dict[str, dict] = {}

    def agent(extension: str) -> dict:
        return stats.setdefault(
            extension, {"agent": extension, "offered": 0, "answered": 0, "missed": 0, "aht": None, "_talk": []}
        )

    for row in query_all(db, f"SELECT agent, outcome FROM queue_offers WHERE {where}", params):
        entry = agent(row["agent"])
        entry["offered"] += 1
        if row["outcome"] in ("answered", "missed"):
            entry[row["outcome"]] += 1
    for row in query_all(db, f"SELECT agent, ended_at - answered_at AS t FROM queue_entries WHERE {entry_where}",
                    entry_params):
        if row["agent"]:
            agent(row["agent"])["_talk"].append(row["t"])
    result = []
    for extension in sorted(stats):
        entry = stats[extension]
        entry["aht"] = _mean(entry.pop("_talk"))
        result.append(entry)
    return result


def _epoch_iso(seconds: float) -> str:
    return to_iso(datetime.fromtimestamp(seconds, timezone.utc))
