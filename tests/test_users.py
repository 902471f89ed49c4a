"""Web users in the store: argon2 hashes, password rules, roles, the setup code, the secret key."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.store import directory, users
from appliance.store.db import db_lock, open_database

GOOD = "plum-orchard-42"


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = open_database(tmp_path / "switchboard.db")
    directory.upsert_extension(database, "201", "Ann", "s3cret-201", "switchboard")
    yield database
    database.conn.close()


def stored_hash(db, user_id: int) -> str:  # type: ignore[no-untyped-def]
    with db_lock(db):
        return list(db.query("SELECT password_hash FROM users WHERE id = ?", [user_id]))[0]["password_hash"]


def test_password_is_stored_as_an_argon2id_hash(db) -> None:  # type: ignore[no-untyped-def]
    uid = users.create_user(db, "ann", GOOD, "agent", "201")
    hashed = stored_hash(db, uid)
    assert hashed.startswith("$argon2id$")
    assert GOOD not in hashed
    user = users.authenticate(db, "ann", GOOD)
    assert user is not None and user["id"] == uid and user["role"] == "agent" and user["extension"] == "201"
    assert "password_hash" not in user


def test_unknown_user_and_wrong_password_look_the_same(db) -> None:  # type: ignore[no-untyped-def]
    users.create_user(db, "boss", GOOD, "admin")
    assert users.authenticate(db, "boss", GOOD + "x") is None
    assert users.authenticate(db, "nobody", GOOD) is None
    assert users.authenticate(db, "", "") is None
    assert users.authenticate(db, "BOSS", GOOD) is not None  # usernames ignore case


def test_disabled_user_cannot_log_in(db) -> None:  # type: ignore[no-untyped-def]
    users.create_user(db, "boss", GOOD, "admin")
    uid = users.create_user(db, "sue", GOOD, "supervisor")
    users.set_disabled(db, uid, True)
    assert users.authenticate(db, "sue", GOOD) is None
    users.set_disabled(db, uid, False)
    assert users.authenticate(db, "sue", GOOD) is not None


@pytest.mark.parametrize(("password", "why"), [
    ("short1!", "at least 10"),
    ("xx-boss-xx-yy", "username"),
    ("password123", "well known"),
    ("qwertyuiop", "well known"),
    ("aaaaaaaaaaaa", "different characters"),
    ("abcdefghijklm", "well known|sequence"),
])
def test_weak_passwords_are_refused(db, password: str, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(users.UserError, match=why):
        users.create_user(db, "boss", password, "admin")
    assert users.list_users(db) == []


@pytest.mark.parametrize("name", ["a", "x" * 33, "ann smith", "ann/..", "anné", ""])
def test_bad_usernames_are_refused(db, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(users.UserError, match="username"):
        users.create_user(db, name, GOOD, "admin")


def test_usernames_are_unique_ignoring_case(db) -> None:  # type: ignore[no-untyped-def]
    users.create_user(db, "Boss", GOOD, "admin")
    with pytest.raises(users.UserError, match="taken"):
        users.create_user(db, "boss", GOOD, "supervisor")


def test_agent_needs_an_existing_extension(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(users.UserError, match="extension"):
        users.create_user(db, "ann", GOOD, "agent")
    with pytest.raises(users.UserError, match="no extension 999"):
        users.create_user(db, "ann", GOOD, "agent", "999")
    with pytest.raises(users.UserError, match="role"):
        users.create_user(db, "ann", GOOD, "root")
    uid = users.create_user(db, "sue", GOOD, "supervisor")
    with pytest.raises(users.UserError, match="extension"):
        users.update_user(db, uid, role="agent")
    users.update_user(db, uid, role="agent", extension="201")
    assert users.get_user(db, uid)["role"] == "agent"


def test_last_admin_stays(db) -> None:  # type: ignore[no-untyped-def]
    boss = users.create_user(db, "boss", GOOD, "admin")
    with pytest.raises(users.UserError, match="last admin"):
        users.set_disabled(db, boss, True)
    with pytest.raises(users.UserError, match="last admin"):
        users.update_user(db, boss, role="supervisor")
    other = users.create_user(db, "deputy", GOOD, "admin")
    users.set_disabled(db, boss, True)
    assert users.has_admin(db)
    with pytest.raises(users.UserError, match="last admin"):
        users.set_disabled(db, other, True)


def test_set_password_bumps_the_session_epoch(db) -> None:  # type: ignore[no-untyped-def]
    uid = users.create_user(db, "boss", GOOD, "admin")
    epoch = users.get_user(db, uid)["session_epoch"]
    users.set_password(db, uid, "new-harbour-77")
    assert users.get_user(db, uid)["session_epoch"] == epoch + 1
    assert users.authenticate(db, "boss", GOOD) is None
    assert users.authenticate(db, "boss", "new-harbour-77") is not None
    with pytest.raises(users.UserError):
        users.set_password(db, uid, "short")


def test_old_hash_parameters_are_upgraded_at_login(db) -> None:  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    uid = users.create_user(db, "boss", GOOD, "admin")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    with db_lock(db):
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [weak, uid])
    assert users.authenticate(db, "boss", GOOD) is not None
    assert stored_hash(db, uid) != weak
    assert "m=65536" in stored_hash(db, uid)


def test_setup_code_lives_until_an_admin_exists(db) -> None:  # type: ignore[no-untyped-def]
    code = users.setup_code(db)
    assert code is not None and re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert not set(code) & set("01ILO")
    assert users.setup_code(db) == code  # stable until used
    assert directory.get_setting(db, "web.setup_code") == code
    users.create_user(db, "sue", GOOD, "supervisor")
    assert users.setup_code(db) == code  # a supervisor is not an admin
    users.create_user(db, "boss", GOOD, "admin")
    assert users.has_admin(db)
    assert users.setup_code(db) is None
    assert directory.get_setting(db, "web.setup_code") is None


def test_secret_key_is_made_once(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = users.secret_key(db)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert users.secret_key(db) == key
    db.conn.close()
    again = open_database(tmp_path / "switchboard.db")
    try:
        assert users.secret_key(again) == key
    finally:
        again.conn.close()


def test_list_and_get_users(db) -> None:  # type: ignore[no-untyped-def]
    b = users.create_user(db, "boss", GOOD, "admin")
    users.create_user(db, "ann", GOOD, "agent", "201")
    assert [u["username"] for u in users.list_users(db)] == ["ann", "boss"]
    user = users.get_user(db, b)
    assert set(user) == {"id", "username", "role", "extension", "disabled", "session_epoch", "created_at"}
    assert user["disabled"] is False
    assert users.get_user(db, 9999) is None
