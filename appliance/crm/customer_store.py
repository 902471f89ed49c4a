"""Customers and their phones (E.164): create, update, search, match callers, store segments."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlite_utils import Database

from appliance.crm.phones import display, normalise
from appliance.crm.segments import computed_segment, effective_segment, lookback_days
from appliance.crm.settings import CrmSettings, load_crm_settings
from appliance.store.db import db_lock, from_iso, query_all, query_one, to_iso, transaction

SEGMENTS = ("new", "occasional", "regular", "vip")
FIELDS = ("name", "company", "phones", "email", "segment_override", "tags", "notes")
MAX_TEXT = 200  # name, company
MAX_EMAIL = 254
MAX_NOTES = 10_000
MAX_TAG = 40
MAX_TAGS = 30
MAX_PHONES = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@.]+")


class CustomerError(ValueError):
    """A customer change that cannot be made, with a message fit to show the user."""


# --- validation ---


def clean_phones(phones: Iterable[str] | str, region: str) -> list[str]:
    """The phones as E.164, duplicates dropped, in the given order; CustomerError for one that is not a number."""
    if isinstance(phones, str):
        phones = [phones]
    result: list[str] = []
    for raw in phones:
        if not isinstance(raw, str) or not raw.strip():
            continue
        e164 = normalise(raw, region)
        if e164 is None:
            raise CustomerError(f"not a phone number: {raw.strip()[:40]!r}")
        if e164 not in result:
            result.append(e164)
    if len(result) > MAX_PHONES:
        raise CustomerError(f"at most {MAX_PHONES} phones per customer")
    return result


def _text(field: str, value: Any, limit: int, multiline: bool = False) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CustomerError(f"{field} must be text")
    value = value.strip()
    if len(value) > limit:
        raise CustomerError(f"{field} is longer than {limit} characters")
    if _CONTROL.search(value) or (not multiline and ("\n" in value or "\t" in value)):
        raise CustomerError(f"{field} contains control characters")
    return value


def _email(value: Any) -> str:
    email = _text("email", value, MAX_EMAIL)
    if email and not _EMAIL.fullmatch(email):
        raise CustomerError(f"not an email address: {email!r}")
    return email


def _segment(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value not in SEGMENTS:
        raise CustomerError(f"unknown segment {value!r}: expected one of {', '.join(SEGMENTS)}")
    return value


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[;,]", value)
    result: list[str] = []
    for tag in value:
        tag = _text("a tag", tag, MAX_TAG)
        if re.search(r"[;,|]", tag):
            raise CustomerError(f"a tag cannot contain ; , or |: {tag!r}")
        if tag and tag.lower() not in (t.lower() for t in result):
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise CustomerError(f"at most {MAX_TAGS} tags per customer")
    return result


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Validated column values for the given fields (phones excluded)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise CustomerError(f"unknown customer field {unknown[0]!r}")
    checks = {
        "name": lambda v: _text("name", v, MAX_TEXT),
        "company": lambda v: _text("company", v, MAX_TEXT),
        "email": _email,
        "segment_override": _segment,
        "tags": lambda v: json.dumps(_tags(v)),
        "notes": lambda v: _text("notes", v, MAX_NOTES, multiline=True),
    }
    return {key: checks[key](value) for key, value in fields.items() if key != "phones"}


# --- changes ---


def create_customer(db: Database, *, region: str, name: str = "", company: str = "", phones: Iterable[str] = (),
                    email: str = "", segment_override: str | None = None, tags: Iterable[str] = (),
                    notes: str = "") -> int:
    """Add a customer and return its id; CustomerError when a field is wrong or a phone is taken."""
    columns = _columns({"name": name, "company": company, "email": email, "segment_override": segment_override,
                        "tags": tags, "notes": notes})
    numbers = clean_phones(phones, region)
    now = to_iso()
    with transaction(db):
        customer_id = db["customers"].insert(
            {**columns, "segment": "new", "created_at": now, "updated_at": now}
        ).last_pk
        _set_phones(db, customer_id, numbers)
    return customer_id


def update_customer(db: Database, customer_id: int, *, region: str, **fields: Any) -> None:
    """Change some fields of a customer; `phones` replaces the whole list."""
    columns = _columns(fields)
    numbers = clean_phones(fields["phones"], region) if "phones" in fields else None
    with transaction(db):
        if not _exists(db, customer_id):
            raise CustomerError(f"no customer #{customer_id}")
        columns["updated_at"] = to_iso()
        assignments = ", ".join(f"{key} = ?" for key in columns)
        db.execute(f"UPDATE customers SET {assignments} WHERE id = ?", [*columns.values(), customer_id])
        if numbers is not None:
            _set_phones(db, customer_id, numbers)


def add_phones(db: Database, customer_id: int, phones: Iterable[str], region: str) -> None:
    """Give a customer more phones, keeping the ones it has."""
    numbers = clean_phones(phones, region)
    with transaction(db):
        current = [r["phone"] for r in db.query(
            "SELECT phone FROM customer_phones WHERE customer_id = ? ORDER BY position", [customer_id])]
        merged = current + [n for n in numbers if n not in current]
        if len(merged) > MAX_PHONES:
            raise CustomerError(f"at most {MAX_PHONES} phones per customer")
        _set_phones(db, customer_id, merged)


def delete_customer(db: Database, customer_id: int) -> bool:
    """Remove a customer, its phones and alerts; its calls and wrap-ups stay, unlinked. True if it existed."""
    with transaction(db):
        if not _exists(db, customer_id):
            return False
        db.execute("DELETE FROM customer_phones WHERE customer_id = ?", [customer_id])
        db.execute("DELETE FROM crm_alerts WHERE customer_id = ?", [customer_id])
        db.execute("UPDATE calls SET customer_id = NULL WHERE customer_id = ?", [customer_id])
        db.execute("UPDATE wrapups SET customer_id = NULL WHERE customer_id = ?", [customer_id])
        db.execute("DELETE FROM customers WHERE id = ?", [customer_id])
        return True


def set_call_customer(db: Database, call_id: str, customer_id: int | None) -> None:
    """Link a call record to a customer (None unlinks it); KeyError when there is no such call."""
    with transaction(db):
        if not db.execute("UPDATE calls SET customer_id = ? WHERE id = ?", [customer_id, call_id]).rowcount:
            raise KeyError(f"no call record {call_id!r}")


def _set_phones(db: Database, customer_id: int, numbers: list[str]) -> None:
    """Replace the customer's phones; CustomerError naming the owner of one that is taken."""
    for number in numbers:
        owner = query_one(db, "SELECT customer_id FROM customer_phones WHERE phone = ?", [number])
        if owner is not None and owner["customer_id"] != customer_id:
            raise CustomerError(f"{display(number)} already belongs to {_label(db, owner['customer_id'])}")
    db.execute("DELETE FROM customer_phones WHERE customer_id = ?", [customer_id])
    for position, number in enumerate(numbers):
        db.execute("INSERT INTO customer_phones (phone, customer_id, position) VALUES (?, ?, ?)",
                   [number, customer_id, position])


def _label(db: Database, customer_id: int) -> str:
    row = query_one(db, "SELECT name, company FROM customers WHERE id = ?", [customer_id])
    who = (row["name"] or row["company"]) if row else ""
    return f"customer #{customer_id} ({who})" if who else f"customer #{customer_id}"


# --- reads ---


def get_customer(db: Database, customer_id: int) -> dict | None:
    """One customer with its phones, or None."""
    with db_lock(db):
        row = query_one(db, "SELECT * FROM customers WHERE id = ?", [customer_id])
        return None if row is None else _with_phones(db, [row])[0]


def customer_by_phone(db: Database, e164: str) -> dict | None:
    """The customer owning this E.164 number, or None."""
    with db_lock(db):
        row = query_one(db, "SELECT customer_id FROM customer_phones WHERE phone = ?", [e164])
        return None if row is None else get_customer(db, row["customer_id"])


def customers_named(db: Database, name: str) -> list[int]:
    """Ids of the customers with exactly this name (ignoring case), oldest first."""
    rows = query_all(db, "SELECT id FROM customers WHERE name = ? COLLATE NOCASE ORDER BY id", [name.strip()])
    return [r["id"] for r in rows]


def search_customers(db: Database, query: str, limit: int = 50) -> list[dict]:
    """Customers whose name, company or email contains the query, or whose phone contains its digits."""
    text = (query or "").strip()
    if not text:
        return list_customers(db, limit)
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
    where = ["name LIKE ? ESCAPE '\\'", "company LIKE ? ESCAPE '\\'", "email LIKE ? ESCAPE '\\'"]
    params: list[Any] = [pattern, pattern, pattern]
    digits = re.sub(r"\D", "", text)
    phones = []
    if len(digits) >= 3:
        phones.append(f"%{digits}%")
        if digits.startswith("0") and len(digits.lstrip("0")) >= 3:
            phones.append(f"%{digits.lstrip('0')}%")  # national form: "06 12 34" finds +33612345678
    if re.fullmatch(r"[\d\s+().-]+", text):
        e164 = normalise(text, load_crm_settings(db).region)
        if e164:
            phones.append(e164)  # a whole number in any spelling the region allows
    for like in phones:
        where.append("id IN (SELECT customer_id FROM customer_phones WHERE phone LIKE ?)")
        params.append(like)
    with db_lock(db):
        rows = query_all(db, f"SELECT * FROM customers WHERE {' OR '.join(where)} "
                        "ORDER BY name = '', name COLLATE NOCASE, id LIMIT ?", [*params, limit])
        return _with_phones(db, rows)


def list_customers(db: Database, limit: int = 100, offset: int = 0) -> list[dict]:
    """Customers by name (nameless ones last), with their phones."""
    with db_lock(db):
        rows = query_all(db, "SELECT * FROM customers ORDER BY name = '', name COLLATE NOCASE, id LIMIT ? OFFSET ?",
                    [limit, offset])
        return _with_phones(db, rows)


def count_customers(db: Database) -> int:
    """How many customers there are."""
    return query_one(db, "SELECT count(*) AS n FROM customers", [])["n"]


def all_customers(db: Database) -> list[dict]:
    """Every customer by id, with its phones (for export)."""
    with db_lock(db):
        return _with_phones(db, query_all(db, "SELECT * FROM customers ORDER BY id"))


def _with_phones(db: Database, rows: list[dict]) -> list[dict]:
    phones: dict[int, list[str]] = {r["id"]: [] for r in rows}
    ids = list(phones)
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        for p in query_all(db, f"SELECT phone, customer_id FROM customer_phones WHERE customer_id IN "
                          f"({', '.join('?' * len(chunk))}) ORDER BY customer_id, position", chunk):
            phones[p["customer_id"]].append(p["phone"])
    return [_out(r, phones[r["id"]]) for r in rows]


def _out(row: dict, phones: list[str]) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "company": row["company"],
        "email": row["email"],
        "segment": effective_segment(row["segment_override"], row["segment"]),
        "segment_computed": row["segment"],
        "segment_override": row["segment_override"],
        "tags": json.loads(row["tags"] or "[]"),
        "notes": row["notes"],
        "phones": phones,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# --- callers and segments ---


def caller_customer(db: Database, raw_number: str, region: str, create: bool = True) -> int | None:
    """The customer a caller ID belongs to; an unknown valid number becomes a "new" customer when create."""
    e164 = normalise(raw_number, region)
    if e164 is None:
        return None
    with db_lock(db):
        row = query_one(db, "SELECT customer_id FROM customer_phones WHERE phone = ?", [e164])
        if row is not None or not create:
            return None if row is None else row["customer_id"]
        now = to_iso()
        try:
            with transaction(db):
                customer_id = db.execute(
                    "INSERT INTO customers (name, segment, created_at, updated_at) VALUES ('', 'new', ?, ?)",
                    [now, now],
                ).lastrowid
                db.execute("INSERT INTO customer_phones (phone, customer_id, position) VALUES (?, ?, 0)",
                           [e164, customer_id])
        except sqlite3.IntegrityError:  # another process (the CLI, an import) added it meanwhile
            row = query_one(db, "SELECT customer_id FROM customer_phones WHERE phone = ?", [e164])
            return None if row is None else row["customer_id"]
        return customer_id


def refresh_segment(db: Database, customer_id: int, settings: CrmSettings, now: datetime | None = None) -> str:
    """Recompute the segment from the customer's calls, store it, and return the effective segment."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    since = to_iso(now - timedelta(days=lookback_days(settings)))
    with transaction(db):
        row = query_one(db, "SELECT segment, segment_override, created_at FROM customers WHERE id = ?", [customer_id])
        if row is None:
            raise CustomerError(f"no customer #{customer_id}")
        times = [from_iso(r["started_at"]) for r in db.query(
            "SELECT started_at FROM calls WHERE customer_id = ? AND started_at >= ?", [customer_id, since])]
        computed = computed_segment(from_iso(row["created_at"]), times, settings, now)
        if computed != row["segment"]:
            db.execute("UPDATE customers SET segment = ? WHERE id = ?", [computed, customer_id])
        return effective_segment(row["segment_override"], computed)


def _exists(db: Database, customer_id: int) -> bool:
    return query_one(db, "SELECT 1 AS x FROM customers WHERE id = ?", [customer_id]) is not None






# --- by any spelling of a phone number (the queue's VIP check, the CLI) ---


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _find_customer(db: Database, phone: str) -> tuple[str, dict | None]:
    """The number as E.164 ("" when it is not a phone number) and the customer owning it, if any."""
    e164 = normalise(phone, load_crm_settings(db).region) if _digits(phone) else None
    if e164 is None:
        return "", None
    return e164, customer_by_phone(db, e164)


def customer_segment(db: Database, number: str) -> str | None:
    """The effective segment of the customer owning this number (in any spelling of it), or None."""
    e164 = normalise(number, load_crm_settings(db).region) if _digits(number) else None
    if e164 is None:
        return None
    row = query_one(db, "SELECT COALESCE(c.segment_override, c.segment) AS segment FROM customer_phones p "
                   "JOIN customers c ON c.id = p.customer_id WHERE p.phone = ?", [e164])
    return None if row is None else row["segment"]


def upsert_customer(db: Database, phone: str, name: str | None = None, segment: str = "new") -> int:
    """Create or update the customer with this phone; returns its id.

    A segment other than "new" becomes a manual override; "new" hands the segment back to the
    rules. A name of None keeps the stored name. ValueError (CustomerError) for a bad phone or segment.
    """
    if segment not in SEGMENTS:
        raise CustomerError(f"unknown segment {segment!r}: expected one of {', '.join(SEGMENTS)}")
    override = None if segment == "new" else segment
    settings = load_crm_settings(db)
    with transaction(db):
        e164, row = _find_customer(db, phone)
        if not e164:
            raise CustomerError(f"not a phone number: {phone!r}")
        if row is None:
            customer_id = create_customer(db, region=settings.region, name=name or "", phones=[e164],
                                                    segment_override=override)
        else:
            customer_id = row["id"]
            fields = {"segment_override": override} if name is None else {"segment_override": override, "name": name}
            update_customer(db, customer_id, region=settings.region, **fields)
        refresh_segment(db, customer_id, settings)
        return customer_id
