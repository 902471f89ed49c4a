"""Named definitions stored whole as JSON (IVR menus, queues), each with an optional number to dial."""
from __future__ import annotations

import json

from sqlite_utils import Database

from appliance.store.db import transaction

__all__ = ["encode", "save_definition"]


def encode(definition: dict) -> str:
    """Canonical JSON: sorted keys make an unchanged definition byte-identical, so saves can say "unchanged"."""
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


def save_definition(db: Database, table: str, label: tuple[str, str], name: str, number: str | None,
                    definition: dict, source: str) -> str:
    """Create or replace row name of table; returns added/updated/unchanged.

    label is (number's owner, noun) for the error, e.g. ("ivr", "menu"). ValueError if another
    row already answers on number.
    """
    encoded = encode(definition)
    with transaction(db):
        rows = list(db.query(f"SELECT * FROM {table} WHERE name = ?", [name]))
        current = rows[0] if rows else None
        if number is not None:
            holders = list(db.query(f"SELECT name FROM {table} WHERE number = ? AND name != ?", [number, name]))
            if holders:
                raise ValueError(f'{label[0]} number {number} is already used by {label[1]} "{holders[0]["name"]}"')
        # The number column only mirrors the definition (provisioning clears it to move numbers
        # between rows), so it is rewritten when it differs but never makes a save "updated".
        same = current is not None and current["definition"] == encoded and current["source"] == source
        if same and current is not None and current["number"] == number:
            return "unchanged"
        db.table(table).upsert({"name": name, "number": number, "definition": encoded, "source": source}, pk="name")
        return "added" if current is None else "unchanged" if same else "updated"
