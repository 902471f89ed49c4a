"""Queue definitions in the store, as QueueConfig: the codec between the queues table and the queue engine."""

from __future__ import annotations

import json

from sqlite_utils import Database

from appliance.calls.queue_config import QueueConfig
from appliance.store.db import query_all, query_one, transaction
from appliance.store.definitions import save_definition


def save_queue(db: Database, cfg: QueueConfig, source: str = "provision") -> str:
    """Create or replace a queue by name; returns added/updated/unchanged.

    Logins of extensions that are no longer members are dropped. ValueError if another
    queue already answers on the queue's number.
    """
    with transaction(db):
        status = save_definition(db, "queues", ("queue", "queue"), cfg.name, cfg.number, cfg.to_dict(), source)
        if status != "unchanged":
            members = cfg.extensions
            db.execute(
                f"DELETE FROM agent_logins WHERE queue = ? AND extension NOT IN ({', '.join('?' * len(members))})",
                [cfg.name, *members],
            )
        return status


def get_queue(db: Database, name: str) -> QueueConfig | None:
    """The queue called name, or None."""
    row = query_one(db, "SELECT definition FROM queues WHERE name = ?", [name])
    return None if row is None else QueueConfig.from_dict(json.loads(row["definition"]))


def queue_by_number(db: Database, number: str) -> QueueConfig | None:
    """The queue an extension reaches by dialling number, or None."""
    row = query_one(db, "SELECT definition FROM queues WHERE number = ?", [number])
    return None if row is None else QueueConfig.from_dict(json.loads(row["definition"]))


def list_queues(db: Database) -> list[QueueConfig]:
    """All queues by name."""
    rows = query_all(db, "SELECT definition FROM queues ORDER BY name")
    return [QueueConfig.from_dict(json.loads(r["definition"])) for r in rows]


def delete_queue(db: Database, name: str) -> bool:
    """Remove a queue and its agents' logins; True if it existed."""
    with transaction(db):
        db.execute("DELETE FROM agent_logins WHERE queue = ?", [name])
        return db.execute("DELETE FROM queues WHERE name = ?", [name]).rowcount > 0
