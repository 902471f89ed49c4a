"""Extensions, trunks and small settings: plain functions over the database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlite_utils import Database

from appliance.store.db import query_all, query_one, to_iso, transaction

# Columns a caller may set through upsert_trunk (name is the key).
TRUNK_FIELDS = (
    "host",
    "port",
    "transport",
    "username",
    "secret",
    "register",
    "inbound",
    "outbound_prefix",
    "expires",
    "from_domain",
    "source",
)

_EXTENSION_PUBLIC = "number, name, realm, allow_external, allow_international, source, updated_at"
_HA1_COLUMNS = {"MD5": "ha1_md5", "SHA-256": "ha1_sha256"}
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def ha1(number: str, realm: str, secret: str, algorithm: str = "MD5") -> str:
    """Digest HA1 = H(username:realm:password) as lowercase hex."""
    return _HASHES[algorithm](f"{number}:{realm}:{secret}".encode()).hexdigest()


def upsert_extension(
    db: Database,
    number: str,
    name: str,
    secret: str,
    realm: str,
    allow_external: bool = True,
    allow_international: bool = False,
    source: str = "provision",
) -> str:
    """Create or update an extension, storing only HA1 hashes; returns added/updated/unchanged."""
    if not secret:
        raise ValueError(f"extension {number}: empty secret")
    row = {
        "number": number,
        "name": name,
        "ha1_md5": ha1(number, realm, secret, "MD5"),
        "ha1_sha256": ha1(number, realm, secret, "SHA-256"),
        "realm": realm,
        "allow_external": int(bool(allow_external)),
        "allow_international": int(bool(allow_international)),
        "source": source,
    }
    with transaction(db):
        current = query_one(db, "SELECT * FROM extensions WHERE number = ?", [number])
        if current is not None and all(current[k] == v for k, v in row.items()):
            return "unchanged"
        db.table("extensions").upsert({**row, "updated_at": to_iso()}, pk="number")
        return "added" if current is None else "updated"


def get_ha1(db: Database, number: str, algorithm: str | None = "MD5", realm: str | None = None) -> str | None:
    """HA1 for digest auth; None for an unknown extension, algorithm or (if given) realm.

    `algorithm` is the RFC 8760 token ("MD5", "SHA-256", their "-sess" forms or
    None for MD5); the -sess variants start from the same stored HA1.
    """
    token = (algorithm or "MD5").upper().removesuffix("-SESS")
    column = _HA1_COLUMNS.get(token)
    if column is None:
        return None
    row = query_one(db, f"SELECT {column} AS ha1, realm FROM extensions WHERE number = ?", [number])
    if row is None or (realm is not None and row["realm"] != realm):
        return None
    return row["ha1"]


def list_extensions(db: Database) -> list[dict]:
    """All extensions by number, without hashes."""
    rows = query_all(db, f"SELECT {_EXTENSION_PUBLIC} FROM extensions ORDER BY number")
    return [_extension_out(r) for r in rows]


def get_extension(db: Database, number: str) -> dict | None:
    """One extension without hashes, or None."""
    row = query_one(db, f"SELECT {_EXTENSION_PUBLIC} FROM extensions WHERE number = ?", [number])
    return None if row is None else _extension_out(row)


def delete_extension(db: Database, number: str) -> bool:
    """Remove an extension; True if it existed."""
    with transaction(db):
        return db.execute("DELETE FROM extensions WHERE number = ?", [number]).rowcount > 0


def upsert_trunk(db: Database, **fields: Any) -> str:
    """Create or update a trunk by `name`; returns added/updated/unchanged.

    Fields left out keep their stored value on update (column default on insert);
    `source` defaults to "provision".
    """
    name = fields.pop("name", None)
    if not name:
        raise ValueError("upsert_trunk needs a name")
    unknown = set(fields) - set(TRUNK_FIELDS)
    if unknown:
        raise TypeError(f"upsert_trunk: unknown field(s) {', '.join(sorted(unknown))}")
    fields.setdefault("source", "provision")
    if "register" in fields:
        fields["register"] = int(bool(fields["register"]))
    with transaction(db):
        current = query_one(db, "SELECT * FROM trunks WHERE name = ?", [name])
        if current is not None and all(current[k] == v for k, v in fields.items()):
            return "unchanged"
        db.table("trunks").upsert({"name": name, **fields, "updated_at": to_iso()}, pk="name")
        return "added" if current is None else "updated"


def list_trunks(db: Database, include_secret: bool = False) -> list[dict]:
    """All trunks by name; the secret is replaced by `has_secret` unless asked for."""
    rows = query_all(db, "SELECT * FROM trunks ORDER BY name")
    return [_trunk_out(r, include_secret) for r in rows]


def get_trunk(db: Database, name: str, include_secret: bool = False) -> dict | None:
    """One trunk or None; the SIP layer passes include_secret=True to authenticate."""
    row = query_one(db, "SELECT * FROM trunks WHERE name = ?", [name])
    return None if row is None else _trunk_out(row, include_secret)


def delete_trunk(db: Database, name: str) -> bool:
    """Remove a trunk; True if it existed."""
    with transaction(db):
        return db.execute("DELETE FROM trunks WHERE name = ?", [name]).rowcount > 0


def get_setting(db: Database, key: str, default: Any = None) -> Any:
    """A stored setting (JSON-decoded), or `default` when absent."""
    row = query_one(db, "SELECT value FROM settings WHERE key = ?", [key])
    return default if row is None else json.loads(row["value"])


def set_setting(db: Database, key: str, value: Any) -> None:
    """Store a JSON-serialisable value under `key` (strings come back as strings)."""
    encoded = json.dumps(value)
    with transaction(db):
        db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, encoded],
        )






def _extension_out(row: dict) -> dict:
    flags = {key: bool(row[key]) for key in ("allow_external", "allow_international")}
    return {**row, **flags}


def _trunk_out(row: dict, include_secret: bool) -> dict:
    out = {**row, "register": bool(row["register"])}
    if not include_secret:
        out["has_secret"] = bool(out.pop("secret"))
    return out
