"""Migration 4 and appliance.store.queues: definitions, agents, entries, offers, customers, statistics."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest
from office_text import ANN_AND_BOB

from appliance.calls.ivr_config import Action
from appliance.calls.queue_config import Member, QueueConfig
from appliance.config import load_provisioning
from appliance.store import callbacks, directory, migrations, queues
from appliance.calls import queue_definitions
from appliance.crm import customer_store
from appliance.store.db import open_database
from appliance.provisioning import apply_provisioning

T0 = 1_780_000_000.0  # epoch seconds, as the engine records them

SALES = QueueConfig("sales", number="600", members=(Member("201"), Member("202", 2)), service_level=30,
                    closed=Action("ivr", "main"))


def _columns(db, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}


# --- migration ---


def test_migration_4_from_a_version_3_database_keeps_callbacks(tmp_path, monkeypatch):
    path = tmp_path / "switchboard.db"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
    old = open_database(path)
    assert migrations.schema_version(old) == 3
    old_id = "cb-v3"
    old.execute("INSERT INTO callbacks (id, number, queue, requested_at, position_at) "
                "VALUES (?, '0612345678', 'sales', '2026-05-04T09:00:00.000Z', '2026-05-04T09:00:00.000Z')", [old_id])
    old.close()
    monkeypatch.undo()

    db = open_database(path)
    assert migrations.schema_version(db) == len(migrations.MIGRATIONS)
    row = callbacks.get_callback(db, old_id)
    assert row["state"] == "pending" and row["line"] is None and row["next_attempt_at"] is None
    assert {"line", "next_attempt_at", "last_status", "agent", "record_id"} <= _columns(db, "callbacks")
    assert _columns(db, "queues") == {"name", "number", "definition", "source"}
    assert _columns(db, "agent_logins") == {"extension", "queue", "logged_in_at"}
    assert _columns(db, "agent_pauses") == {"extension", "reason", "paused_at"}
    assert _columns(db, "queue_entries") == {
        "id", "queue", "call_id", "number", "name", "vip", "entered_at", "answered_at", "left_at", "ended_at",
        "outcome", "agent", "callback_id"}
    assert _columns(db, "queue_offers") == {
        "id", "queue", "entry_id", "callback_id", "agent", "rang_at", "ended_at", "outcome"}
    # migration 5 rebuilt m004's customers: phones live in their own table since
    assert _columns(db, "customer_phones") == {"phone", "customer_id", "position"}
    indexes = {row[1] for row in db.execute("SELECT * FROM sqlite_master WHERE type = 'index'").fetchall()}
    assert {"idx_queue_entries_queue_entered", "idx_queue_offers_agent_rang", "idx_queue_offers_queue_rang"} <= indexes
    db.close()


def test_schema_constraints(db):
    db.execute("INSERT INTO customers (id, created_at, updated_at) VALUES (1, 'now', 'now')")
    assert db.execute("SELECT segment FROM customers").fetchone()[0] == "new"
    db.execute("INSERT INTO customer_phones (phone, customer_id) VALUES ('+3312345678', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO customer_phones (phone, customer_id) VALUES ('+3312345678', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO queue_entries (id, queue) VALUES ('x', 'sales')")  # entered_at is required
    db.execute("INSERT INTO agent_logins VALUES ('201', 'sales', 'now')")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO agent_logins VALUES ('201', 'sales', 'later')")


# --- definitions ---


def test_save_get_list_delete(db):
    assert queue_definitions.save_queue(db, SALES) == "added"
    assert queue_definitions.save_queue(db, SALES) == "unchanged"
    assert queue_definitions.get_queue(db, "sales") == SALES
    assert queue_definitions.queue_by_number(db, "600") == SALES
    assert queue_definitions.queue_by_number(db, "601") is None
    changed = QueueConfig("sales", number="601", members=SALES.members)
    assert queue_definitions.save_queue(db, changed) == "updated"
    assert queue_definitions.queue_by_number(db, "601") == changed and queue_definitions.queue_by_number(db, "600") is None
    queue_definitions.save_queue(db, QueueConfig("alpha"), source="web")
    assert [q.name for q in queue_definitions.list_queues(db)] == ["alpha", "sales"]
    assert queue_definitions.delete_queue(db, "sales") is True
    assert queue_definitions.delete_queue(db, "sales") is False
    assert queue_definitions.get_queue(db, "sales") is None


def test_number_clash_between_queues_is_refused(db):
    queue_definitions.save_queue(db, SALES)
    with pytest.raises(ValueError, match='queue number 600 is already used by queue "sales"'):
        queue_definitions.save_queue(db, QueueConfig("support", number="600"))
    assert queue_definitions.get_queue(db, "support") is None


def test_logins_and_pauses(db):
    queue_definitions.save_queue(db, SALES)
    queues.set_login(db, "202", "sales", True)
    queues.set_login(db, "201", "sales", True)
    queues.set_login(db, "201", "sales", True)  # twice is once
    queues.set_login(db, "201", "support", True)
    assert queues.logins(db) == [("201", "sales"), ("201", "support"), ("202", "sales")]
    queues.set_login(db, "201", "support", False)
    assert queues.logins(db) == [("201", "sales"), ("202", "sales")]

    queues.set_pause(db, "201", True, "lunch")
    queues.set_pause(db, "202", True)
    queues.set_pause(db, "201", True, "meeting")
    assert queues.pauses(db) == {"201": "meeting", "202": ""}
    queues.set_pause(db, "202", False)
    assert queues.pauses(db) == {"201": "meeting"}


def test_logins_follow_membership_and_queue_removal(db):
    queue_definitions.save_queue(db, SALES)
    queues.set_login(db, "201", "sales", True)
    queues.set_login(db, "202", "sales", True)
    queue_definitions.save_queue(db, QueueConfig("sales", number="600", members=(Member("201"),)))
    assert queues.logins(db) == [("201", "sales")]
    queue_definitions.delete_queue(db, "sales")
    assert queues.logins(db) == []


# --- entries, offers ---


def test_entry_lifecycle_and_handling_times(db):
    answered = queues.enter_queue(db, queue="sales", call_id="c1", number="+3312345678", name="Zoe", vip=True,
                                  entered_at=T0)
    left = queues.enter_queue(db, queue="sales", call_id="c2", number="0611", name=None, vip=False,
                              entered_at=T0 + 1)
    assert answered != left and len(answered) == 32
    queues.entry_answered(db, answered, "201", T0 + 12)
    queues.entry_ended(db, answered, T0 + 72)
    queues.entry_left(db, left, "callback", T0 + 31, callback_id="cb1")
    rows = {r["id"]: r for r in db.query("SELECT * FROM queue_entries")}
    assert (rows[answered]["vip"], rows[answered]["agent"], rows[answered]["answered_at"]) == (1, "201", T0 + 12)
    assert (rows[left]["outcome"], rows[left]["left_at"], rows[left]["callback_id"]) == ("callback", T0 + 31, "cb1")
    assert queues.recent_handling_times(db, "sales") == [60.0]
    with pytest.raises(ValueError, match="unknown outcome"):
        queues.entry_left(db, left, "bored", T0)


def test_recent_handling_times_newest_first_and_limited(db):
    for i in range(25):
        entry = queues.enter_queue(db, queue="sales", call_id=None, number=None, name=None, vip=False,
                                   entered_at=T0 + 100 * i)
        queues.entry_answered(db, entry, "201", T0 + 100 * i)
        queues.entry_ended(db, entry, T0 + 100 * i + i)
    times = queues.recent_handling_times(db, "sales")
    assert times == [float(i) for i in range(24, 4, -1)]
    assert queues.recent_handling_times(db, "sales", limit=3) == [24.0, 23.0, 22.0]
    assert queues.recent_handling_times(db, "other") == []


def test_record_offer(db):
    queues.record_offer(db, queue="sales", agent="201", rang_at=T0, ended_at=T0 + 15, outcome="missed",
                        entry_id="e1")
    queues.record_offer(db, queue="sales", agent="202", rang_at=T0, ended_at=T0 + 3, outcome="answered",
                        callback_id="cb1")
    rows = list(db.query("SELECT agent, entry_id, callback_id, outcome FROM queue_offers ORDER BY id"))
    assert rows == [{"agent": "201", "entry_id": "e1", "callback_id": None, "outcome": "missed"},
                    {"agent": "202", "entry_id": None, "callback_id": "cb1", "outcome": "answered"}]
    with pytest.raises(ValueError, match="unknown outcome"):
        queues.record_offer(db, queue="sales", agent="201", rang_at=T0, ended_at=T0, outcome="maybe")


# --- customers ---


def test_customer_segment_exact_then_digits(db):
    vip = customer_store.upsert_customer(db, "+44 7700 900123", "Ann", "vip")
    customer_store.upsert_customer(db, "0612345678", segment="regular")
    assert customer_store.customer_segment(db, "+44 7700 900123") == "vip"
    assert customer_store.customer_segment(db, "447700900123") == "vip"
    assert customer_store.customer_segment(db, "+447700900123") == "vip"
    assert customer_store.customer_segment(db, "06 12 34 56 78") == "regular"
    assert customer_store.customer_segment(db, "4477009001") is None
    assert customer_store.customer_segment(db, "anonymous") is None
    # the same number in another spelling updates the customer, keeping the name
    assert customer_store.upsert_customer(db, "447700900123", segment="occasional") == vip
    row = db.execute("SELECT p.phone, c.name, c.segment_override FROM customers c JOIN customer_phones p "
                     "ON p.customer_id = c.id WHERE c.id = ?", [vip]).fetchone()
    assert row == ("+447700900123", "Ann", "occasional")
    with pytest.raises(ValueError, match="unknown segment"):
        customer_store.upsert_customer(db, "0611", segment="gold")


# --- statistics ---


def _entry(db, queue: str, entered: float, *, answered: float | None = None, ended: float | None = None,
           left: float | None = None, outcome: str = "abandoned", agent: str = "201") -> str:
    entry = queues.enter_queue(db, queue=queue, call_id=None, number=None, name=None, vip=False,
                               entered_at=T0 + entered)
    if answered is not None:
        queues.entry_answered(db, entry, agent, T0 + answered)
        if ended is not None:
            queues.entry_ended(db, entry, T0 + ended)
    elif left is not None:
        queues.entry_left(db, entry, outcome, T0 + left)
    return entry


def test_queue_stats(db):
    queue_definitions.save_queue(db, SALES)
    _entry(db, "sales", 0, answered=10, ended=70)     # wait 10, talk 60
    _entry(db, "sales", 0, answered=40, ended=160)    # wait 40 (> 30 s level), talk 120
    _entry(db, "sales", 0, answered=25)               # wait 25, still talking
    _entry(db, "sales", 0, left=50)                   # abandoned after 50
    _entry(db, "sales", 0, left=5, outcome="callback")
    _entry(db, "sales", 0)                            # still waiting: offered, no wait yet
    _entry(db, "sales", -1000, answered=-990, ended=-900)  # before `since`
    _entry(db, "support", 0, left=1)
    callbacks.request_callback(db, number="0611", queue="sales",
                               requested_at=datetime.fromtimestamp(T0, timezone.utc))
    done, _ = callbacks.request_callback(db, number="0612", queue="sales",
                                         requested_at=datetime.fromtimestamp(T0 + 5, timezone.utc))
    callbacks.claim(db, done)
    callbacks.complete(db, done, "201")
    callbacks.request_callback(db, number="0613", queue="sales",
                               requested_at=datetime.fromtimestamp(T0 - 5000, timezone.utc))

    (stats,) = queues.queue_stats(db, "sales", since=T0 - 1, service_levels={"sales": 30})
    assert stats["queue"] == "sales"
    assert (stats["offered"], stats["answered"], stats["abandoned"]) == (6, 3, 1)
    assert stats["abandon_rate"] == pytest.approx(1 / 6)
    assert stats["service_level"] == pytest.approx(2 / 6)  # 10 and 25 s are within 30 s
    waits = [10, 40, 25, 50, 5]
    assert stats["wait_avg"] == pytest.approx(sum(waits) / 5)
    assert stats["wait_p90"] == 50  # nearest rank: ceil(0.9 * 5) = 5th of 5
    assert stats["aht"] == pytest.approx(90)
    assert (stats["callbacks_requested"], stats["callbacks_completed"], stats["callbacks_failed"]) == (2, 1, 0)

    default_level = queues.queue_stats(db, "sales", since=T0 - 1)[0]
    assert default_level["service_level"] == pytest.approx(1 / 6)  # 20 s by default: only the 10 s wait
    everything = {s["queue"]: s for s in queues.queue_stats(db)}
    assert set(everything) == {"sales", "support"}
    assert everything["sales"]["offered"] == 7 and everything["sales"]["callbacks_requested"] == 3


def test_queue_stats_default_service_level_and_empty_queue(db):
    _entry(db, "sales", 0, answered=10, ended=20)
    _entry(db, "sales", 0, answered=25, ended=30)
    (stats,) = queues.queue_stats(db, "sales")
    assert stats["service_level"] == pytest.approx(1 / 2)  # 20 s by default: 10 yes, 25 no
    (empty,) = queues.queue_stats(db, "nobody")
    assert (empty["offered"], empty["abandon_rate"], empty["service_level"]) == (0, 0.0, 0.0)
    assert (empty["wait_avg"], empty["wait_p90"], empty["aht"]) == (None, None, None)


def test_p90_is_nearest_rank(db):
    for wait in range(1, 21):  # waits 1..20: the 18th smallest is the p90
        _entry(db, "sales", 0, answered=wait)
    assert queues.queue_stats(db, "sales")[0]["wait_p90"] == 18


def test_agent_stats(db):
    queues.record_offer(db, queue="sales", agent="201", rang_at=T0, ended_at=T0 + 15, outcome="missed")
    queues.record_offer(db, queue="sales", agent="201", rang_at=T0 + 20, ended_at=T0 + 25, outcome="answered")
    queues.record_offer(db, queue="sales", agent="202", rang_at=T0, ended_at=T0 + 2, outcome="cancelled")
    queues.record_offer(db, queue="support", agent="202", rang_at=T0, ended_at=T0 + 4, outcome="answered")
    queues.record_offer(db, queue="sales", agent="203", rang_at=T0 - 5000, ended_at=T0, outcome="answered")
    _entry(db, "sales", 0, answered=25, ended=85, agent="201")
    _entry(db, "support", 0, answered=4, ended=44, agent="202")

    stats = {a["agent"]: a for a in queues.agent_stats(db, since=T0 - 1)}
    assert set(stats) == {"201", "202"}
    assert stats["201"] == {"agent": "201", "offered": 2, "answered": 1, "missed": 1, "aht": 60.0}
    assert stats["202"] == {"agent": "202", "offered": 2, "answered": 1, "missed": 0, "aht": 40.0}
    sales = {a["agent"]: a for a in queues.agent_stats(db, queue="sales")}
    assert sales["202"] == {"agent": "202", "offered": 1, "answered": 0, "missed": 0, "aht": None}
    assert sales["203"]["answered"] == 1


# --- provisioning ---

FILE = ANN_AND_BOB + """
[[queue]]
name = "sales"
number = "600"
members = ["201", { extension = "202", tier = 2 }]

[[queue]]
name = "support"
number = "601"
members = ["202"]
"""


def test_provisioning_syncs_queues(tmp_path, db):
    path = tmp_path / "provision.toml"
    path.write_text(FILE)
    queue_definitions.save_queue(db, QueueConfig("web-made", number="699"), source="web")
    summary = apply_provisioning(db, load_provisioning(path), "switchboard")
    assert summary["queues"] == {"added": 2, "updated": 0, "removed": 0, "unchanged": 0}
    assert queue_definitions.get_queue(db, "sales").member("202") == Member("202", 2)
    again = apply_provisioning(db, load_provisioning(path), "switchboard")
    assert again["queues"] == {"added": 0, "updated": 0, "removed": 0, "unchanged": 2}

    # numbers swap, one queue goes, logins of the removed queue go with it
    queues.set_login(db, "202", "support", True)
    path.write_text(FILE.replace('"600"', '"X"').replace('"601"', '"600"').replace('"X"', '"601"')
                    .replace('[[queue]]\nname = "support"\nnumber = "600"\nmembers = ["202"]\n', ""))
    summary = apply_provisioning(db, load_provisioning(path), "switchboard")
    assert summary["queues"] == {"added": 0, "updated": 1, "removed": 1, "unchanged": 0}
    assert queue_definitions.queue_by_number(db, "601").name == "sales"
    assert [q.name for q in queue_definitions.list_queues(db)] == ["sales", "web-made"]
    assert queues.logins(db) == []
    assert directory.get_extension(db, "202") is not None


def test_migration_5_moves_version_4_customers_and_keeps_their_segments(tmp_path, monkeypatch):
    path = tmp_path / "switchboard.db"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
    old = open_database(path)
    old.execute("INSERT INTO customers (id, phone, name, segment, created_at) "
                "VALUES (7, '+447700900123', 'Ann', 'vip', '2026-05-04T09:00:00.000Z')")
    old.execute("INSERT INTO customers (id, phone, name) VALUES (8, '0612345678', NULL)")
    old.close()
    monkeypatch.undo()

    db = open_database(path)
    rows = db.execute("SELECT c.id, c.name, c.segment, c.segment_override, p.phone FROM customers c "
                      "JOIN customer_phones p ON p.customer_id = c.id ORDER BY c.id").fetchall()
    assert rows == [(7, "Ann", "vip", "vip", "+447700900123"), (8, "", "new", None, "0612345678")]
    assert customer_store.customer_segment(db, "+44 7700 900123") == "vip"
    db.close()
