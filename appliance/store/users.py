"""The web's users: argon2 password hashes, roles, the first-admin setup code, the Flask secret.

Hashing happens outside the database lock (it takes a tenth of a second on purpose), and
`authenticate` does the same hashing work whether or not the username exists, so the time
a failed login takes does not tell an attacker which usernames are real.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlite_utils import Database

from appliance.store import directory
from appliance.store.db import db_lock, to_iso, transaction

ROLES = ("admin", "supervisor", "agent")

SETUP_CODE_KEY = "web.setup_code"
SECRET_KEY_KEY = "web.secret_key"

MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 copes with more; nobody types more, and it bounds the work per request
_USERNAME = re.compile(r"[A-Za-z0-9._-]{2,32}")
# No 0/O, 1/I/L: the code is read off a log line and typed by hand.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

# SIP secrets and passwords nobody may choose (config.py checks provisioned secrets against them too).
WEAK_SECRETS = frozenset(
    {
        "password", "password1", "passw0rd", "12345678", "123456789", "1234567890",
        "87654321", "qwertyui", "qwerty123", "qwertyuiop", "azertyui", "letmein1",
        "iloveyou", "changeme", "changeit", "secret12", "welcome1", "switchboard",
        "abc12345", "admin123", "trustno1",
    }
)

# Well-known passwords of at least MIN_PASSWORD characters (shorter ones are refused anyway).
_COMMON = frozenset(WEAK_SECRETS) | frozenset(
    {
        "password123", "password12", "password1!", "passw0rd123", "1234567890", "0987654321",
        "12345678910", "1234567890a", "qwertyuiop", "qwerty1234", "qwerty12345", "1q2w3e4r5t",
        "1qaz2wsx3edc", "azertyuiop", "asdfghjkl1", "administrator", "admin12345", "letmein123",
        "welcome123", "changeme123", "iloveyou12", "switchboard", "switchboard1", "sunshine12",
        "football12", "monkey1234", "dragon1234", "baseball12", "superman12", "trustno123",
        "abcdefghij", "abcd123456", "zaq12wsxcde", "p@ssw0rd123", "p@ssword123",
    }
)

# argon2-cffi's defaults (argon2id, 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended
# profile) take about 0.1 s here and on a Raspberry Pi 4. That is cheap for a person logging in
# and expensive for an offline guesser, and the library keeps them current: when a later release
# raises them, check_needs_rehash() lets authenticate() upgrade stored hashes at the next login.
_HASHER = PasswordHasher()

_PUBLIC = "id, username, role, extension, disabled, session_epoch, created_at"


class UserError(ValueError):
    """A refused user change; the message is fit to show the person who asked for it."""


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash nobody's password matches, verified for unknown users to spend the same time."""
    return _HASHER.hash(secrets.token_hex(16))


def _public(row: dict) -> dict:
    return {
        "id": row["id"],
        "username": row["username"],
        "role": row["role"],
        "extension": row["extension"],
        "disabled": bool(row["disabled"]),
        "session_epoch": row["session_epoch"],
        "created_at": row["created_at"],
    }


def _rows(db: Database, sql: str, params: list) -> list[dict]:
    with db_lock(db):
        return list(db.query(sql, params))


def _check_username(username: str) -> str:
    name = (username or "").strip()
    if not _USERNAME.fullmatch(name):
        raise UserError("A username is 2 to 32 characters: letters, digits, dots, underscores or hyphens.")
    return name


def _check_password(password: str, username: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UserError(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"The password must be at most {MAX_PASSWORD} characters long.")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise UserError("The password must not contain the username.")
    if lowered in _COMMON or lowered.strip("!.?1") in _COMMON:
        raise UserError("That password is too well known; choose another one.")
    if len(set(lowered)) < 4:
        raise UserError("The password needs more different characters.")
    steps = {ord(b) - ord(a) for a, b in zip(lowered, lowered[1:])}
    if steps in ({1}, {-1}):
        raise UserError("The password must not be a simple sequence.")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}: choose admin, supervisor or agent.")
    return role


def _check_extension(db: Database, role: str, extension: str | None) -> str | None:
    ext = (extension or "").strip() or None
    if ext is not None and directory.get_extension(db, ext) is None:
        raise UserError(f"There is no extension {ext}.")
    if role == "agent" and ext is None:
        raise UserError("An agent needs the extension of their phone.")
    return ext


def _enabled_admins(db: Database) -> int:
    return _rows(db, "SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0", [])[0]["n"]


def _row(db: Database, user_id: int) -> dict:
    rows = _rows(db, "SELECT * FROM users WHERE id = ?", [user_id])
    if not rows:
        raise UserError("There is no such user.")
    return rows[0]


def create_admin_from_hash(db: Database, username: str, password_hash: str) -> bool:
    """Create an admin from a ready argon2 hash (a provisioning file's [admin]); False if the name exists."""
    name = _check_username(username)
    now = to_iso()
    with transaction(db):
        if _rows(db, "SELECT 1 FROM users WHERE username = ?", [name]):
            return False
        db.execute("INSERT INTO users (username, password_hash, role, extension, disabled, session_epoch,"
                   " created_at, updated_at) VALUES (?, ?, 'admin', NULL, 0, 0, ?, ?)",
                   [name, password_hash, now, now])
        db.execute("DELETE FROM settings WHERE key = ?", [SETUP_CODE_KEY])
    return True


def hash_password(password: str, username: str = "") -> str:
    """An argon2id hash of a password that passes the same rules as the web's (for [admin] in a provisioning file)."""
    _check_password(password, username)
    return _HASHER.hash(password)


def create_user(db: Database, username: str, password: str, role: str, extension: str | None = None) -> int:
    """Add a user and return their id; UserError says what is wrong with the request."""
    name = _check_username(username)
    _check_role(role)
    ext = _check_extension(db, role, extension)
    _check_password(password, name)
    password_hash = _HASHER.hash(password)  # outside the lock: it is slow on purpose
    now = to_iso()
    try:
        with transaction(db):
            if _rows(db, "SELECT 1 FROM users WHERE username = ?", [name]):
                raise UserError(f"The username {name} is taken.")
            cursor = db.execute(
                "INSERT INTO users (username, password_hash, role, extension, disabled, session_epoch,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
                [name, password_hash, role, ext, now, now],
            )
            if role == "admin":
                db.execute("DELETE FROM settings WHERE key = ?", [SETUP_CODE_KEY])
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)
    except sqlite3.IntegrityError:  # a concurrent create took the name
        raise UserError(f"The username {name} is taken.") from None


def authenticate(db: Database, username: str, password: str) -> dict | None:
    """The user's public dict when the password is right and the account enabled, else None.

    An unknown or disabled username costs the same hash verification as a wrong password.
    """
    name = (username or "").strip()
    rows = _rows(db, "SELECT * FROM users WHERE username = ?", [name]) if _USERNAME.fullmatch(name) else []
    row = rows[0] if rows else None
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        password = ""
    if row is None or row["disabled"]:
        try:
            _HASHER.verify(_dummy_hash(), password)
        except VerificationError:
            pass
        return None
    try:
        _HASHER.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if _HASHER.check_needs_rehash(row["password_hash"]):
        fresh = _HASHER.hash(password)
        with transaction(db):
            db.execute("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                       [fresh, row["id"], row["password_hash"]])
    return _public(row)


def get_user(db: Database, user_id: int) -> dict | None:
    """{id, username, role, extension, disabled, session_epoch, created_at}, or None."""
    rows = _rows(db, f"SELECT {_PUBLIC} FROM users WHERE id = ?", [user_id])
    return _public(rows[0]) if rows else None


def list_users(db: Database) -> list[dict]:
    """Every user, by username."""
    return [_public(r) for r in _rows(db, f"SELECT {_PUBLIC} FROM users ORDER BY username COLLATE NOCASE", [])]


def set_password(db: Database, user_id: int, password: str) -> None:
    """Replace a user's password and log out their other sessions (session_epoch + 1)."""
    row = _row(db, user_id)
    _check_password(password, row["username"])
    password_hash = _HASHER.hash(password)
    with transaction(db):
        db.execute(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1, updated_at = ? WHERE id = ?",
            [password_hash, to_iso(), user_id],
        )


def end_sessions(db: Database, user_id: int) -> None:
    """Log the user out everywhere (logout): every cookie issued before now stops working."""
    with transaction(db):
        db.execute("UPDATE users SET session_epoch = session_epoch + 1, updated_at = ? WHERE id = ?",
                   [to_iso(), user_id])


def set_disabled(db: Database, user_id: int, disabled: bool) -> None:
    """Disable (logging them out) or re-enable a user; the last enabled admin stays enabled."""
    with transaction(db):
        row = _row(db, user_id)
        if disabled and row["role"] == "admin" and not row["disabled"] and _enabled_admins(db) <= 1:
            raise UserError("This is the last admin; make another admin before disabling this one.")
        if bool(row["disabled"]) == bool(disabled):
            return
        db.execute(
            "UPDATE users SET disabled = ?, session_epoch = session_epoch + ?, updated_at = ? WHERE id = ?",
            [int(bool(disabled)), 1 if disabled else 0, to_iso(), user_id],
        )


def update_user(db: Database, user_id: int, *, role: str | None = None, extension: str | None = None) -> None:
    """Change a user's role and/or extension (None keeps it, "" clears the extension)."""
    with transaction(db):
        row = _row(db, user_id)
        new_role = row["role"] if role is None else _check_role(role)
        new_ext = row["extension"] if extension is None else extension
        new_ext = _check_extension(db, new_role, new_ext)
        if row["role"] == "admin" and new_role != "admin" and not row["disabled"] and _enabled_admins(db) <= 1:
            raise UserError("This is the last admin; make another admin before changing this one's role.")
        if new_role == row["role"] and new_ext == row["extension"]:
            return
        db.execute("UPDATE users SET role = ?, extension = ?, updated_at = ? WHERE id = ?",
                   [new_role, new_ext, to_iso(), user_id])


def has_admin(db: Database) -> bool:
    """True once an enabled admin exists."""
    return _enabled_admins(db) > 0


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def setup_code(db: Database) -> str | None:
    """The one-time code /setup asks for while no admin exists (made on first need), else None."""
    stored = directory.get_setting(db, SETUP_CODE_KEY)
    if has_admin(db):
        if stored is not None:
            with transaction(db):
                db.execute("DELETE FROM settings WHERE key = ?", [SETUP_CODE_KEY])
        return None
    if stored:
        return stored
    with transaction(db):  # re-read inside: another thread may have just made one
        stored = directory.get_setting(db, SETUP_CODE_KEY)
        if not stored:
            stored = _new_code()
            directory.set_setting(db, SETUP_CODE_KEY, stored)
    return stored


def secret_key(db: Database) -> str:
    """The Flask SECRET_KEY: 32 random bytes in hex, made once and kept in settings."""
    stored = directory.get_setting(db, SECRET_KEY_KEY)
    if stored:
        return stored
    with transaction(db):
        stored = directory.get_setting(db, SECRET_KEY_KEY)
        if not stored:
            stored = secrets.token_hex(32)
            directory.set_setting(db, SECRET_KEY_KEY, stored)
    return stored
