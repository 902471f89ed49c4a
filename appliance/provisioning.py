"""Sync the database with a provisioning file: the file owns what it provisioned."""

from __future__ import annotations

import dataclasses

from sqlite_utils import Database

from appliance.config import Provisioning
from appliance.crm.settings import SETTINGS_KEY as CRM_SETTINGS
from appliance.lines.modem_config import SETTINGS_KEY as MODEM_SETTINGS
from appliance.store import users
from appliance.store.db import transaction
from appliance.store.directory import (
    delete_extension,
    delete_trunk,
    set_setting,
    upsert_extension,
    upsert_trunk,
)
from appliance.calls.ivr_definitions import delete_hours, delete_menu, save_hours, save_menu
from appliance.calls.queue_definitions import delete_queue, save_queue

SOURCE = "provision"
ALLOW_INTERNATIONAL = "security.allow_international"
SECURITY_POLICY = {"allow_premium": "security.allow_premium", "allow_satellite": "security.allow_satellite",
                   "callbacks": "security.callbacks"}
PROMPT_VOICE = "prompts.voice"
PROMPT_TEXTS = "prompts.texts"


def _counts() -> dict[str, int]:
    return {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}


def apply_provisioning(db: Database, prov: Provisioning, realm: str) -> dict:
    """Upsert everything in `prov`, drop provisioned rows it no longer lists, all in one transaction.

    Rows created elsewhere (source other than "provision") are left alone unless the
    file names them, in which case the file takes them over.
    """
    summary = {
        "extensions": _counts(),
        "trunks": _counts(),
        "ivr": _counts(),
        "hours": _counts(),
        "queues": _counts(),
    }
    with transaction(db):
        for ext in prov.extensions:
            status = upsert_extension(
                db,
                ext.number,
                ext.name,
                ext.secret,
                realm,
                allow_external=ext.allow_external,
                allow_international=ext.allow_international,
                source=SOURCE,
            )
            summary["extensions"][status] += 1
        keep = {ext.number for ext in prov.extensions}
        for row in list(db.query("SELECT number FROM extensions WHERE source = ?", [SOURCE])):
            if row["number"] not in keep:
                delete_extension(db, row["number"])
                summary["extensions"]["removed"] += 1

        for trunk in prov.trunks:
            status = upsert_trunk(db, **dataclasses.asdict(trunk), source=SOURCE)
            summary["trunks"][status] += 1
        keep = {trunk.name for trunk in prov.trunks}
        for row in list(db.query("SELECT name FROM trunks WHERE source = ?", [SOURCE])):
            if row["name"] not in keep:
                delete_trunk(db, row["name"])
                summary["trunks"]["removed"] += 1

        keep = {hours.name for hours in prov.hours}
        for row in list(db.query("SELECT name FROM business_hours WHERE source = ?", [SOURCE])):
            if row["name"] not in keep:
                delete_hours(db, row["name"])
                summary["hours"]["removed"] += 1
        for hours in prov.hours:
            summary["hours"][save_hours(db, hours, SOURCE)] += 1

        # Menus dropped from the file go first and the file's numbers are released, so a number
        # can move to a renamed menu or two menus can swap numbers without a clash on the way.
        keep = {menu.name for menu in prov.ivrs}
        for row in list(db.query("SELECT name FROM ivr_menus WHERE source = ?", [SOURCE])):
            if row["name"] not in keep:
                delete_menu(db, row["name"])
                summary["ivr"]["removed"] += 1
        db.execute("UPDATE ivr_menus SET number = NULL WHERE source = ?", [SOURCE])
        for menu in prov.ivrs:
            summary["ivr"][save_menu(db, menu, SOURCE)] += 1

        # Same order as menus, so queue numbers can move and swap too.
        keep = {queue.name for queue in prov.queues}
        for row in list(db.query("SELECT name FROM queues WHERE source = ?", [SOURCE])):
            if row["name"] not in keep:
                delete_queue(db, row["name"])
                summary["queues"]["removed"] += 1
        db.execute("UPDATE queues SET number = NULL WHERE source = ?", [SOURCE])
        for queue in prov.queues:
            summary["queues"][save_queue(db, queue, SOURCE)] += 1

        set_setting(db, ALLOW_INTERNATIONAL, prov.security.allow_international)
        for field_name, key in SECURITY_POLICY.items():
            set_setting(db, key, getattr(prov.security, field_name))
        set_setting(db, PROMPT_VOICE, prov.prompt_voice)
        set_setting(db, PROMPT_TEXTS, prov.prompt_texts)
        if prov.crm is None:  # no [crm] table: back to the defaults
            db.execute("DELETE FROM settings WHERE key = ?", [CRM_SETTINGS])
        else:
            set_setting(db, CRM_SETTINGS, prov.crm.to_dict())
        set_setting(db, MODEM_SETTINGS, [modem.to_dict() for modem in prov.modems])
        if prov.admin is not None:
            # An installer's card may carry the first admin; an existing account is never overwritten.
            made = users.create_admin_from_hash(db, prov.admin.username, prov.admin.password_hash)
            summary["admin"] = {"added": int(made), "unchanged": int(not made)}
    return summary
