"""IVR menus and business hours in the store, as their dataclasses: stored whole as JSON definitions."""

from __future__ import annotations

import json

from sqlite_utils import Database

from appliance.calls.hours import BusinessHours
from appliance.calls.ivr_config import IvrMenu
from appliance.store.db import db_lock, query_one, transaction
from appliance.store.definitions import encode, save_definition


def save_menu(db: Database, menu: IvrMenu, source: str = "provision") -> str:
    """Create or replace a menu by name; returns added/updated/unchanged.

    ValueError if another menu already answers on the menu's number.
    """
    return save_definition(db, "ivr_menus", ("ivr", "menu"), menu.name, menu.number, menu.to_dict(), source)


def get_menu(db: Database, name: str) -> IvrMenu | None:
    """The menu called name, or None."""
    row = query_one(db, "SELECT definition FROM ivr_menus WHERE name = ?", [name])
    return None if row is None else IvrMenu.from_dict(json.loads(row["definition"]))


def menu_by_number(db: Database, number: str) -> IvrMenu | None:
    """The menu an extension reaches by dialling number, or None."""
    row = query_one(db, "SELECT definition FROM ivr_menus WHERE number = ?", [number])
    return None if row is None else IvrMenu.from_dict(json.loads(row["definition"]))


def list_menus(db: Database) -> list[IvrMenu]:
    """All menus by name."""
    with db_lock(db):
        rows = list(db.query("SELECT definition FROM ivr_menus ORDER BY name"))
    return [IvrMenu.from_dict(json.loads(r["definition"])) for r in rows]


def delete_menu(db: Database, name: str) -> bool:
    """Remove a menu; True if it existed."""
    with transaction(db):
        return db.execute("DELETE FROM ivr_menus WHERE name = ?", [name]).rowcount > 0


def save_hours(db: Database, hours: BusinessHours, source: str = "provision") -> str:
    """Create or replace business hours by name; returns added/updated/unchanged."""
    row = {"name": hours.name, "definition": encode(hours.to_dict()), "source": source}
    with transaction(db):
        current = query_one(db, "SELECT * FROM business_hours WHERE name = ?", [hours.name])
        if current is not None and all(current[k] == v for k, v in row.items()):
            return "unchanged"
        db["business_hours"].upsert(row, pk="name")
        return "added" if current is None else "updated"


def get_hours(db: Database, name: str) -> BusinessHours | None:
    """The business hours called name, or None."""
    row = query_one(db, "SELECT definition FROM business_hours WHERE name = ?", [name])
    return None if row is None else BusinessHours.from_dict(json.loads(row["definition"]))


def list_hours(db: Database) -> list[BusinessHours]:
    """All business hours by name."""
    with db_lock(db):
        rows = list(db.query("SELECT definition FROM business_hours ORDER BY name"))
    return [BusinessHours.from_dict(json.loads(r["definition"])) for r in rows]


def delete_hours(db: Database, name: str) -> bool:
    """Remove business hours; True if they existed."""
    with transaction(db):
        return db.execute("DELETE FROM business_hours WHERE name = ?", [name]).rowcount > 0
