from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from appliance.store import calls, directory, migrations
from appliance.store.db import Checkpointer, db_lock, from_iso, open_connection, open_database, to_iso, transaction

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def db(tmp_path):
    database = open_database(tmp_path / "data" / "switchboard.db")
    yield database
    database.close()


def _call(db, **overrides) -> str:
    fields = dict(
        sip_call_id="c1@box",
        direction="internal",
        line="internal",
        from_number="201",
        from_name="Ann",
        to_number="202",
    )
    return calls.start_call(db, **{**fields, **overrides})


# --- database seam ---


def test_open_creates_parent_folder_and_tunes_connection(tmp_path):
    path = tmp_path / "deep" / "er" / "switchboard.db"
    db = open_database(path)
    assert path.exists()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a power cut keeps finished records
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    db.close()


def test_wal_is_really_on_in_the_file(tmp_path):
    path = tmp_path / "switchboard.db"
    db = open_database(path)
    directory.set_setting(db, "k", "v")
    assert (tmp_path / "switchboard.db-wal").exists()
    other = sqlite3.connect(path)  # an independent connection sees the persistent mode
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    db.close()


def test_schema_matches_spec(db):
    assert set(db.table_names()) >= {"extensions", "trunks", "calls", "settings"}
    assert db["calls"].columns_dict.keys() == {
        "id", "sip_call_id", "direction", "line", "from_number", "from_name", "to_number",
        "answered_by", "started_at", "answered_at", "ended_at", "disposition", "sip_status",
        "hangup_by", "duration", "extra", "ivr_path", "recording", "customer_id",
    }
    assert db["extensions"].pks == ["number"]
    assert db["trunks"].pks == ["name"]
    indexed = {tuple(i.columns) for i in db["calls"].indexes}
    assert {("started_at",), ("from_number",)} <= indexed
    assert "secret" not in db["extensions"].columns_dict


def test_migrations_are_idempotent(tmp_path):
    path = tmp_path / "switchboard.db"
    db = open_database(path)
    directory.set_setting(db, "kept", 1)
    assert migrations.migrate(db) == len(migrations.MIGRATIONS)
    assert migrations.migrate(db) == len(migrations.MIGRATIONS)
    db.close()
    again = open_database(path)
    assert again.execute("PRAGMA user_version").fetchone()[0] == len(migrations.MIGRATIONS)
    assert directory.get_setting(again, "kept") == 1
    again.close()


def test_failed_migration_rolls_back_with_its_version(db, monkeypatch):
    def broken(database):
        database.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration bug")

    released = len(migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        migrations.migrate(db)
    assert migrations.schema_version(db) == released
    assert "half_done" not in db.table_names()


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "switchboard.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        open_database(path)


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(ZeroDivisionError):
        with transaction(db):
            directory.set_setting(db, "a", 1)
            1 / 0
    assert directory.get_setting(db, "a") is None
    with transaction(db):
        directory.set_setting(db, "a", 2)
    assert directory.get_setting(db, "a") == 2


def test_connection_is_usable_from_several_threads(db):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                _call(db, sip_call_id=f"{n}-{i}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db["calls"].count == 200


def test_to_iso_is_utc_with_milliseconds():
    assert ISO.fullmatch(to_iso())
    local = datetime(2024, 5, 1, 11, 30, 0, 125999, tzinfo=timezone(timedelta(hours=2)))
    assert to_iso(local) == "2024-05-01T09:30:00.125Z"
    assert from_iso("2024-05-01T09:30:00.125Z") == datetime(2024, 5, 1, 9, 30, 0, 125000, tzinfo=timezone.utc)


# --- directory ---


def test_extension_stores_ha1_never_the_secret(tmp_path):
    path = tmp_path / "switchboard.db"
    db = open_database(path)
    assert directory.upsert_extension(db, "201", "Ann", "s3cret-201", "switchboard") == "added"
    row = db["extensions"].get("201")
    assert row["ha1_md5"] == hashlib.md5(b"201:switchboard:s3cret-201").hexdigest()
    assert row["ha1_sha256"] == hashlib.sha256(b"201:switchboard:s3cret-201").hexdigest()
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"s3cret-201" not in raw


def test_get_ha1_by_algorithm_and_realm(db):
    directory.upsert_extension(db, "201", "Ann", "s3cret-201", "switchboard")
    md5 = hashlib.md5(b"201:switchboard:s3cret-201").hexdigest()
    sha = hashlib.sha256(b"201:switchboard:s3cret-201").hexdigest()
    assert directory.get_ha1(db, "201", "MD5") == md5
    assert directory.get_ha1(db, "201", None) == md5
    assert directory.get_ha1(db, "201", "md5-sess") == md5
    assert directory.get_ha1(db, "201", "SHA-256") == sha
    assert directory.get_ha1(db, "201", "SHA-256-sess") == sha
    assert directory.get_ha1(db, "201", "SHA-512-256") is None
    assert directory.get_ha1(db, "999", "MD5") is None
    assert directory.get_ha1(db, "201", "MD5", realm="other") is None
    assert directory.get_ha1(db, "201", "MD5", realm="switchboard") == md5


def test_upsert_extension_reports_changes(db):
    assert directory.upsert_extension(db, "201", "Ann", "s3cret-201", "sb") == "added"
    stamp = directory.get_extension(db, "201")["updated_at"]
    assert directory.upsert_extension(db, "201", "Ann", "s3cret-201", "sb") == "unchanged"
    assert directory.get_extension(db, "201")["updated_at"] == stamp
    assert directory.upsert_extension(db, "201", "Ann", "n3w-secret!", "sb") == "updated"
    assert directory.upsert_extension(db, "201", "Ann B", "n3w-secret!", "sb") == "updated"
    assert directory.upsert_extension(db, "201", "Ann B", "n3w-secret!", "sb", allow_international=True) == "updated"
    with pytest.raises(ValueError):
        directory.upsert_extension(db, "202", "Bob", "", "sb")


def test_list_and_get_extensions_hide_hashes(db):
    directory.upsert_extension(db, "202", "Bob", "b0b-secret", "sb", allow_external=False, source="web")
    directory.upsert_extension(db, "201", "Ann", "s3cret-201", "sb")
    listed = directory.list_extensions(db)
    assert [e["number"] for e in listed] == ["201", "202"]
    for ext in listed:
        assert not any("ha1" in key or "secret" in key for key in ext)
    bob = directory.get_extension(db, "202")
    assert bob["allow_external"] is False and bob["allow_international"] is False
    assert bob["source"] == "web" and bob["name"] == "Bob"
    assert ISO.fullmatch(bob["updated_at"])
    assert directory.get_extension(db, "999") is None


def test_delete_extension(db):
    directory.upsert_extension(db, "201", "Ann", "s3cret-201", "sb")
    assert directory.delete_extension(db, "201") is True
    assert directory.delete_extension(db, "201") is False
    assert directory.get_extension(db, "201") is None


def test_trunk_crud_keeps_plain_secret_for_the_sip_layer(db):
    fields = dict(name="itsp", host="sip.example.net", port=5070, username="office",
                  secret="trunk-secret", register=True, inbound="201", outbound_prefix="0")
    assert directory.upsert_trunk(db, **fields) == "added"
    assert directory.upsert_trunk(db, **fields) == "unchanged"
    trunk = directory.get_trunk(db, "itsp", include_secret=True)
    assert trunk["secret"] == "trunk-secret"
    assert trunk["register"] is True and trunk["transport"] == "udp" and trunk["expires"] == 300
    assert trunk["source"] == "provision"
    public = directory.get_trunk(db, "itsp")
    assert "secret" not in public and public["has_secret"] is True
    assert [t["name"] for t in directory.list_trunks(db)] == ["itsp"]
    assert "secret" not in directory.list_trunks(db)[0]
    assert directory.list_trunks(db, include_secret=True)[0]["secret"] == "trunk-secret"


def test_upsert_trunk_partial_update_and_bad_fields(db):
    directory.upsert_trunk(db, name="itsp", host="a.example", port=5060, inbound="201")
    assert directory.upsert_trunk(db, name="itsp", port=5080) == "updated"
    trunk = directory.get_trunk(db, "itsp")
    assert (trunk["host"], trunk["port"]) == ("a.example", 5080)
    with pytest.raises(TypeError, match="hots"):
        directory.upsert_trunk(db, name="itsp", hots="typo")
    with pytest.raises(ValueError):
        directory.upsert_trunk(db, host="nameless")
    assert directory.delete_trunk(db, "itsp") is True
    assert directory.delete_trunk(db, "itsp") is False
    assert directory.get_trunk(db, "itsp") is None


def test_settings_round_trip(db):
    assert directory.get_setting(db, "nonce_secret") is None
    assert directory.get_setting(db, "nonce_secret", "fallback") == "fallback"
    directory.set_setting(db, "nonce_secret", "abc123")
    directory.set_setting(db, "flag", False)
    directory.set_setting(db, "nonce_secret", "def456")
    assert directory.get_setting(db, "nonce_secret") == "def456"
    assert directory.get_setting(db, "flag", True) is False


# --- call records ---


def test_answered_call_gets_duration(db):
    start = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
    call_id = _call(db, started_at=start, extra={"codec": "PCMU"})
    assert re.fullmatch(r"[0-9a-f]{32}", call_id)
    assert calls.mark_answered(db, call_id, "202", at=start + timedelta(seconds=4)) is True
    assert calls.finish_call(db, call_id, "answered", 200, "caller", at=start + timedelta(seconds=65.5)) is True
    record = calls.get_call(db, call_id)
    assert record["started_at"] == "2024-05-01T09:00:00.000Z"
    assert record["answered_at"] == "2024-05-01T09:00:04.000Z"
    assert record["ended_at"] == "2024-05-01T09:01:05.500Z"
    assert record["duration"] == pytest.approx(61.5)
    assert (record["disposition"], record["sip_status"], record["hangup_by"]) == ("answered", 200, "caller")
    assert record["answered_by"] == "202"
    assert record["extra"] == {"codec": "PCMU"}


def test_unanswered_call_has_no_duration_and_finishes_once(db):
    call_id = _call(db)
    assert calls.finish_call(db, call_id, "no-answer", 480) is True
    assert calls.finish_call(db, call_id, "cancelled", 487) is False
    assert calls.mark_answered(db, call_id, "202") is False
    record = calls.get_call(db, call_id)
    assert record["duration"] is None and record["disposition"] == "no-answer"
    assert record["answered_at"] is None and ISO.fullmatch(record["ended_at"])
    assert record["extra"] == {}


def test_first_answer_wins(db):
    call_id = _call(db)
    assert calls.mark_answered(db, call_id, "202") is True
    assert calls.mark_answered(db, call_id, "203") is False
    assert calls.get_call(db, call_id)["answered_by"] == "202"


def test_call_record_validation(db):
    with pytest.raises(ValueError):
        _call(db, direction="sideways")
    call_id = _call(db)
    with pytest.raises(ValueError):
        calls.finish_call(db, call_id, "hung-up")
    with pytest.raises(KeyError):
        calls.finish_call(db, "nope", "failed")
    with pytest.raises(KeyError):
        calls.mark_answered(db, "nope", "202")
    assert calls.get_call(db, "nope") is None
    assert set(calls.DISPOSITIONS) == {"answered", "busy", "no-answer", "cancelled", "failed",
                                       "callback", "abandoned", "handled"}  # the last three: only the box answered


def test_update_extra_merges(db):
    call_id = _call(db, extra={"a": 1})
    assert calls.update_extra(db, call_id, b=2) == {"a": 1, "b": 2}
    assert calls.get_call(db, call_id)["extra"] == {"a": 1, "b": 2}


def test_recent_calls_newest_first_with_limit(db):
    base = datetime(2024, 5, 1, tzinfo=timezone.utc)
    ids = [_call(db, sip_call_id=str(i), started_at=base + timedelta(minutes=i)) for i in (2, 0, 1)]
    recent = calls.recent_calls(db)
    assert [c["sip_call_id"] for c in recent] == ["2", "1", "0"]
    assert [c["id"] for c in calls.recent_calls(db, limit=1)] == [ids[0]]


def test_call_record_survives_reopen(tmp_path):
    path = tmp_path / "switchboard.db"
    db = open_database(path)
    call_id = _call(db, direction="inbound", line="itsp", from_number="+4930123", extra={"did": "301"})
    calls.mark_answered(db, call_id, "201")
    calls.finish_call(db, call_id, "answered", 200, "callee")
    db.close()
    reopened = open_database(path)
    record = calls.get_call(reopened, call_id)
    assert record["line"] == "itsp" and record["from_number"] == "+4930123"
    assert record["disposition"] == "answered" and record["duration"] is not None
    assert record["extra"] == {"did": "301"}
    reopened.close()


def test_records_left_open_by_a_crash_are_closed(db):
    ringing = calls.start_call(db, sip_call_id="a", direction="internal", line="internal",
                               from_number="201", from_name="Ann", to_number="202")
    talking = calls.start_call(db, sip_call_id="b", direction="internal", line="internal",
                               from_number="202", from_name="Bob", to_number="201")
    calls.mark_answered(db, talking, "201")
    done = calls.start_call(db, sip_call_id="c", direction="internal", line="internal",
                            from_number="201", from_name="Ann", to_number="203")
    calls.finish_call(db, done, "busy", sip_status=486)

    assert calls.close_interrupted(db) == 2

    assert calls.get_call(db, ringing)["disposition"] == "failed"
    assert calls.get_call(db, talking)["disposition"] == "answered"
    assert calls.get_call(db, talking)["extra"] == {"interrupted": True}
    assert calls.get_call(db, done)["disposition"] == "busy"
    assert calls.close_interrupted(db) == 0


def test_checkpointer_moves_the_wal_into_the_database(tmp_path):
    path = tmp_path / "box.db"
    db = open_database(path)
    checkpointer = Checkpointer(db, path, interval=0.05).start()
    with transaction(db):
        db.execute("CREATE TABLE filler (x TEXT)")
        db.conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,) for _ in range(2000)])
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 500_000  # the box's own connection no longer checkpoints
    checkpointer.stop()
    assert wal.stat().st_size == 0  # TRUNCATE on stop
    db.close()
    again = open_database(path)
    assert again.execute("SELECT count(*) FROM filler").fetchone()[0] == 2000


def test_a_long_web_read_holds_up_neither_the_loops_lock_nor_its_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 15: one process-wide lock made a CSV export stall the SIP loop's writes."""
    path = tmp_path / "switchboard.db"
    loop_db = open_database(path)
    web_db = open_connection(path)
    assert db_lock(loop_db) is not db_lock(web_db)
    wrote = threading.Event()

    def loop_writes() -> None:
        calls.start_call(loop_db, sip_call_id="c1", direction="inbound", line="itsp", from_number="1",
                         from_name="", to_number="201")
        wrote.set()

    with db_lock(web_db):  # a web read in progress: its lock held, a read transaction open
        web_db.execute("BEGIN")
        assert web_db.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
        writer = threading.Thread(target=loop_writes)
        writer.start()
        assert wrote.wait(5), "the loop's write waited for the web's read"
        # WAL: the reader keeps its snapshot until it ends its transaction.
        assert web_db.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
        web_db.execute("COMMIT")
    writer.join()
    assert web_db.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
