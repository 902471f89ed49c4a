"""Registered contacts, mirrored to the store so a restart keeps phones reachable."""
from __future__ import annotations

import time

from sqlite_utils import Database

from appliance.store.db import db_lock, transaction


def save(db: Database, aor: str, rows: list[dict]) -> None:
    """Replace the stored contacts of one extension (rows: contact, transport, host, port, expires_at, user_agent)."""
    with transaction(db):
        db.execute("DELETE FROM registrations WHERE aor = ?", [aor])
        db.conn.executemany(
            "INSERT INTO registrations (aor, contact, transport, host, port, expires_at, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(aor, r["contact"], r["transport"], r["host"], r["port"], r["expires_at"], r["user_agent"])
             for r in rows])


def load(db: Database, now: float | None = None) -> list[dict]:
    """Contacts that have not expired yet (expires_at is Unix time)."""
    now = time.time() if now is None else now
    with db_lock(db):
        db.execute("DELETE FROM registrations WHERE expires_at <= ?", [now])
        return [dict(r) for r in db.query("SELECT * FROM registrations ORDER BY aor, contact")]
