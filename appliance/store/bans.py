"""Bans kept across restarts: a source banned for guessing passwords stays banned after a reboot."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlite_utils import Database

from appliance.store.db import db_lock, from_iso, to_iso, transaction


def save_ban(db: Database, source: str, until: float, reason: str, kind: str = "sip") -> None:
    """Store (or extend) a ban; `until` is a Unix time."""
    with transaction(db):
        db.execute(
            "INSERT INTO bans (source, kind, reason, created_at, until) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET kind = excluded.kind, reason = excluded.reason, until = excluded.until",
            [source, kind, reason[:200], to_iso(), to_iso(datetime.fromtimestamp(until, timezone.utc))],
        )


def lift_ban(db: Database, source: str) -> bool:
    """Forget a ban; True if there was one."""
    with transaction(db):
        return db.execute("DELETE FROM bans WHERE source = ?", [source]).rowcount > 0


def active_bans(db: Database, now: float) -> list[dict]:
    """Bans still running at `now` (Unix time), with `until` as a Unix time; expired ones are deleted."""
    cutoff = to_iso(datetime.fromtimestamp(now, timezone.utc))
    with transaction(db):
        db.execute("DELETE FROM bans WHERE until <= ?", [cutoff])
        rows = list(db.query("SELECT source, kind, reason, created_at, until FROM bans ORDER BY until"))
    return [{**row, "until": from_iso(row["until"]).timestamp()} for row in rows]


def list_bans(db: Database) -> list[dict]:
    """Every stored ban, as stored (for the CLI when the box is not running)."""
    with db_lock(db):
        return list(db.query("SELECT source, kind, reason, created_at, until FROM bans ORDER BY until"))
