"""Migration 3: IVR menus, business hours and callbacks in the store, and the new call-record fields."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from appliance.calls.hours import BusinessHours, parse_day
from appliance.calls.ivr_config import Action, IvrMenu
from appliance.calls import ivr_definitions as ivr
from appliance.store import callbacks, calls, directory, migrations
from appliance.store.db import open_database

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)


def _call(db, **overrides) -> str:
    fields = dict(sip_call_id="c1@box", direction="inbound", line="itsp", from_number="+3312345678",
                  from_name=None, to_number="500")
    return calls.start_call(db, **{**fields, **overrides})


MAIN = IvrMenu("main", number="500", options={"1": Action("queue", "sales", "sales")}, hours="office",
               night=Action("ivr", "closed"), record=True)
OFFICE = BusinessHours("office", "Europe/Paris", {0: parse_day("09:00-17:00")}, frozenset({"01-01"}))


# --- migration ---


def test_migration_3_from_a_version_2_database_keeps_everything(tmp_path, monkeypatch):
    path = tmp_path / "switchboard.db"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
    old = open_database(path)
    assert migrations.schema_version(old) == 2
    directory.upsert_extension(old, "201", "Ann", "s3cret-201", "switchboard")
    directory.set_setting(old, "nonce_secret", "abc")
    call_id = _call(old, extra={"did": "500"})
    calls.mark_answered(old, call_id, "201")
    calls.finish_call(old, call_id, "answered", 200, "caller")
    old.execute("INSERT INTO registrations (aor, contact) VALUES ('201', 'sip:201@192.0.2.1')")
    old.close()
    monkeypatch.undo()

    db = open_database(path)
    assert migrations.schema_version(db) == len(migrations.MIGRATIONS) >= 3
    assert directory.get_extension(db, "201")["name"] == "Ann"
    assert directory.get_setting(db, "nonce_secret") == "abc"
    record = calls.get_call(db, call_id)
    assert record["disposition"] == "answered" and record["extra"] == {"did": "500"}
    assert record["ivr_path"] == [] and record["recording"] is None
    assert db.execute("SELECT count(*) FROM registrations").fetchone()[0] == 1
    assert {"ivr_menus", "business_hours", "callbacks"} <= set(db.table_names())
    # and the new tables work on the migrated file
    calls.set_ivr_path(db, call_id, [{"menu": "main", "key": "1"}])
    assert calls.get_call(db, call_id)["ivr_path"] == [{"menu": "main", "key": "1"}]
    db.close()


def test_new_schema(db):
    assert db["ivr_menus"].pks == ["name"]
    assert db["business_hours"].pks == ["name"]
    assert db["callbacks"].pks == ["id"]
    assert set(db["callbacks"].columns_dict) == {
        "id", "number", "name", "queue", "source", "call_id", "requested_at", "position_at", "due_at",
        "state", "attempts", "last_attempt_at", "outcome", "updated_at",
        # added for the queue's callback runs (migration 4)
        "line", "next_attempt_at", "last_status", "agent", "record_id",
        # whose dialling rights a callback has (migration 6)
        "dial_as",
    }
    assert db["bans"].pks == ["source"]
    assert {"ivr_path", "recording"} <= set(db["calls"].columns_dict)


def test_only_one_pending_callback_per_number_and_queue_even_in_raw_sql(db):
    insert = ("INSERT INTO callbacks (id, number, queue, requested_at, position_at, state) "
              "VALUES (?, '0612345678', 'sales', 'x', 'x', ?)")
    db.execute(insert, ["a", "pending"])
    db.execute(insert, ["b", "done"])  # finished ones do not count
    db.execute(insert, ["c", "done"])
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(insert, ["d", "pending"])
    row = db.execute("SELECT queue, attempts, state FROM callbacks WHERE id = 'b'").fetchone()
    assert row == ("sales", 0, "done")


def test_menu_numbers_are_unique_in_the_table(db):
    db.execute("INSERT INTO ivr_menus (name, number, definition) VALUES ('a', '500', '{}')")
    db.execute("INSERT INTO ivr_menus (name, number, definition) VALUES ('b', NULL, '{}')")
    db.execute("INSERT INTO ivr_menus (name, number, definition) VALUES ('c', NULL, '{}')")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO ivr_menus (name, number, definition) VALUES ('d', '500', '{}')")


# --- menus and hours ---


def test_menu_crud(db):
    assert ivr.get_menu(db, "main") is None and ivr.list_menus(db) == []
    assert ivr.save_menu(db, MAIN, "provision") == "added"
    assert ivr.save_menu(db, MAIN, "provision") == "unchanged"
    assert ivr.get_menu(db, "main") == MAIN
    assert ivr.menu_by_number(db, "500") == MAIN
    assert ivr.menu_by_number(db, "501") is None
    closed = IvrMenu("closed", greeting=None, menu="closed")
    assert ivr.save_menu(db, closed, "web") == "added"
    assert ivr.list_menus(db) == [closed, MAIN]
    assert ivr.save_menu(db, IvrMenu("main", number="501"), "provision") == "updated"
    assert ivr.menu_by_number(db, "500") is None
    assert ivr.menu_by_number(db, "501").name == "main"
    assert ivr.save_menu(db, IvrMenu("main", number="501"), "web") == "updated"  # a new owner is a change
    assert ivr.delete_menu(db, "main") is True
    assert ivr.delete_menu(db, "main") is False
    assert ivr.list_menus(db) == [closed]


def test_a_number_belongs_to_one_menu(db):
    ivr.save_menu(db, MAIN)
    with pytest.raises(ValueError, match='ivr number 500 is already used by menu "main"'):
        ivr.save_menu(db, IvrMenu("other", number="500"))
    assert ivr.get_menu(db, "other") is None


def test_a_cleared_number_column_is_restored_without_counting_as_a_change(db):
    ivr.save_menu(db, MAIN)
    db.execute("UPDATE ivr_menus SET number = NULL")
    assert ivr.save_menu(db, MAIN) == "unchanged"
    assert ivr.menu_by_number(db, "500") == MAIN


def test_hours_crud(db):
    assert ivr.get_hours(db, "office") is None
    assert ivr.save_hours(db, OFFICE, "provision") == "added"
    assert ivr.save_hours(db, OFFICE, "provision") == "unchanged"
    stored = ivr.get_hours(db, "office")
    assert stored == OFFICE
    assert stored.is_open(datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc))  # Monday 10:00 in Paris
    later = BusinessHours("office", "Europe/Paris", {0: parse_day("10:00-17:00")})
    assert ivr.save_hours(db, later, "provision") == "updated"
    assert ivr.get_hours(db, "office") == later
    assert ivr.list_hours(db) == [later]
    assert ivr.delete_hours(db, "office") is True
    assert ivr.delete_hours(db, "office") is False
    assert ivr.get_hours(db, "office") is None


# --- callbacks ---


def test_callback_request_and_dedup(db):
    first, created = callbacks.request_callback(
        db, number="0612345678", name="Zoe", queue="sales", source="ivr:main", call_id="call-1",
        requested_at=T0 + timedelta(minutes=5), position_at=T0,
    )
    assert created is True
    row = callbacks.get_callback(db, first)
    assert row["state"] == "pending" and row["attempts"] == 0
    assert (row["position_at"], row["requested_at"]) == ("2026-05-04T09:00:00.000Z", "2026-05-04T09:05:00.000Z")
    assert (row["name"], row["queue"], row["source"], row["call_id"], row["due_at"]) == (
        "Zoe", "sales", "ivr:main", "call-1", None)

    again, created = callbacks.request_callback(
        db, number="0612345678", queue="sales", call_id="call-2",
        requested_at=T0 + timedelta(minutes=30), position_at=T0 + timedelta(minutes=25),
        due_at=T0 + timedelta(hours=2),
    )
    assert (again, created) == (first, False)
    row = callbacks.get_callback(db, first)
    assert row["position_at"] == "2026-05-04T09:00:00.000Z"  # keeps the place in line
    assert row["requested_at"] == "2026-05-04T09:30:00.000Z"
    assert row["call_id"] == "call-2" and row["name"] == "Zoe"  # newer details win, missing ones stay
    assert row["due_at"] == "2026-05-04T11:00:00.000Z"
    assert len(callbacks.pending_callbacks(db)) == 1


def test_same_number_other_queue_is_another_request(db):
    a, _ = callbacks.request_callback(db, number="0612345678", queue="sales", requested_at=T0)
    b, created = callbacks.request_callback(db, number="0612345678", queue="support", requested_at=T0)
    c, created_c = callbacks.request_callback(db, number="0612345678", requested_at=T0)
    assert created and created_c and len({a, b, c}) == 3
    assert callbacks.get_callback(db, c)["queue"] == ""


def test_a_finished_callback_does_not_block_a_new_one(db):
    old, _ = callbacks.request_callback(db, number="0612345678", queue="sales", requested_at=T0)
    db.execute("UPDATE callbacks SET state = 'done' WHERE id = ?", [old])
    new, created = callbacks.request_callback(db, number="0612345678", queue="sales", requested_at=T0)
    assert created and new != old
    assert [r["id"] for r in callbacks.pending_callbacks(db, "sales")] == [new]


def test_pending_callbacks_in_line_order(db):
    def ask(number: str, queue: str, minutes: int, **kw) -> str:
        return callbacks.request_callback(
            db, number=number, queue=queue, requested_at=T0 + timedelta(minutes=minutes), **kw)[0]

    late = ask("0600000003", "sales", 9)
    early = ask("0600000001", "sales", 8, position_at=T0)  # held since 9:00, then asked
    middle = ask("0600000002", "sales", 3)
    other = ask("0600000004", "support", 0)
    assert [r["id"] for r in callbacks.pending_callbacks(db, "sales")] == [early, middle, late]
    assert [r["id"] for r in callbacks.pending_callbacks(db, "support")] == [other]
    assert {r["id"] for r in callbacks.pending_callbacks(db)} == {early, middle, late, other}
    assert callbacks.pending_callbacks(db, "nobody") == []


def test_callback_defaults_and_errors(db):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    cb, _ = callbacks.request_callback(db, number="0612345678")
    row = callbacks.get_callback(db, cb)
    assert row["position_at"] == row["requested_at"]
    assert datetime.fromisoformat(row["requested_at"]) >= before
    assert callbacks.get_callback(db, "nope") is None
    with pytest.raises(ValueError, match="needs a number"):
        callbacks.request_callback(db, number="")


# --- call-record fields ---


def test_ivr_path_and_recording(db):
    call_id = _call(db)
    assert calls.get_call(db, call_id)["ivr_path"] == []
    path = [{"menu": "main", "key": "1", "at": "2026-05-04T09:00:03.000Z"}, {"menu": "sales", "key": None}]
    calls.set_ivr_path(db, call_id, path)
    calls.set_recording(db, call_id, "recordings/2026/05/04/abc.wav")
    record = calls.get_call(db, call_id)
    assert record["ivr_path"] == path
    assert record["recording"] == "recordings/2026/05/04/abc.wav"
    assert calls.recent_calls(db)[0]["ivr_path"] == path
    with pytest.raises(KeyError):
        calls.set_ivr_path(db, "nope", [])
    with pytest.raises(KeyError):
        calls.set_recording(db, "nope", "a.wav")
    with pytest.raises(TypeError):
        calls.set_ivr_path(db, call_id, {"menu": "main"})


@pytest.mark.parametrize("bad", ["", "/var/lib/switchboard/x.wav", "../x.wav", "recordings/../../x.wav"])
def test_recording_path_must_stay_in_the_data_folder(db, bad):
    call_id = _call(db)
    with pytest.raises(ValueError, match="relative to the data folder"):
        calls.set_recording(db, call_id, bad)
    assert calls.get_call(db, call_id)["recording"] is None


def test_set_answered_by_hands_over_an_answered_call(db):
    call_id = _call(db)
    with pytest.raises(ValueError, match="not answered"):
        calls.set_answered_by(db, call_id, "202")
    calls.mark_answered(db, call_id, "ivr:main")
    calls.set_answered_by(db, call_id, "202")
    record = calls.get_call(db, call_id)
    assert record["answered_by"] == "202" and record["answered_at"] is not None
    with pytest.raises(KeyError):
        calls.set_answered_by(db, "nope", "202")
