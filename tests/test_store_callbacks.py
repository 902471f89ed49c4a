"""Callback rows through their life: request, schedule, claim, release, retry, fail, complete, recover."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest

from appliance.store import callbacks
from appliance.store.db import open_database, to_iso

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)


def _request(db, number: str = "0612345678", queue: str = "sales", minutes: int = 0, **kw) -> str:
    return callbacks.request_callback(db, number=number, queue=queue,
                                      requested_at=T0 + timedelta(minutes=minutes), **kw)[0]


def test_request_stores_the_line_and_a_refresh_keeps_it(db):
    cb = _request(db, line="itsp")
    assert callbacks.get_callback(db, cb)["line"] == "itsp"
    again = _request(db, minutes=3)
    assert again == cb and callbacks.get_callback(db, cb)["line"] == "itsp"
    _request(db, minutes=4, line="extension")
    assert callbacks.get_callback(db, cb)["line"] == "extension"


def test_schedule_takes_its_place_at_its_time(db):
    early = _request(db, number="0611", minutes=0)
    late = _request(db, number="0613", minutes=60)
    at = T0 + timedelta(minutes=30)
    scheduled, created = callbacks.schedule_callback(db, number="0612", queue="sales", at=at, name="Zoe",
                                                     line="itsp")
    assert created
    row = callbacks.get_callback(db, scheduled)
    assert (row["position_at"], row["due_at"], row["source"], row["name"], row["line"]) == (
        to_iso(at), to_iso(at), "cli", "Zoe", "itsp")
    assert [r["id"] for r in callbacks.list_callbacks(db)] == [early, scheduled, late]
    # scheduling the same number again moves it
    moved, created = callbacks.schedule_callback(db, number="0612", queue="sales", at=T0 + timedelta(hours=2))
    assert (moved, created) == (scheduled, False)
    assert [r["id"] for r in callbacks.list_callbacks(db)] == [early, late, scheduled]
    assert callbacks.get_callback(db, scheduled)["due_at"] == to_iso(T0 + timedelta(hours=2))


def test_claim_only_once(db):
    cb = _request(db)
    row = callbacks.claim(db, cb)
    assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("dialing", 1, None)
    assert row["last_attempt_at"] is not None
    assert callbacks.claim(db, cb) is None
    assert callbacks.claim(db, "unknown") is None
    assert callbacks.get_callback(db, cb)["attempts"] == 1


def _claim_all(path: str, ids: list[str]) -> list[str]:
    database = open_database(path)
    try:
        return [cb for cb in ids if callbacks.claim(database, cb) is not None]
    finally:
        database.close()


def test_claim_races_between_processes_one_winner(tmp_path):
    # Separate processes, as a second box or a script would be: only the conditional UPDATE keeps them apart.
    path = tmp_path / "switchboard.db"
    database = open_database(path)
    cbs = [_request(database, number=f"06{i:08d}") for i in range(40)]
    database.close()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        wins = pool.starmap(_claim_all, [(str(path), cbs), (str(path), cbs[::-1])])
    assert sorted(wins[0] + wins[1]) == sorted(cbs)
    assert not set(wins[0]) & set(wins[1])


def test_release_gives_the_attempt_back(db):
    cb = _request(db)
    callbacks.claim(db, cb)
    callbacks.release(db, cb)
    row = callbacks.get_callback(db, cb)
    assert (row["state"], row["attempts"]) == ("pending", 0)
    callbacks.release(db, cb)  # not dialing: nothing happens
    assert callbacks.get_callback(db, cb)["attempts"] == 0


def test_attempt_failed_retries_then_fails(db):
    cb = _request(db)
    callbacks.claim(db, cb)
    retry = T0 + timedelta(minutes=5)
    assert callbacks.attempt_failed(db, cb, "busy", retry) == "pending"
    row = callbacks.get_callback(db, cb)
    assert (row["state"], row["attempts"], row["last_status"], row["next_attempt_at"]) == (
        "pending", 1, "busy", to_iso(retry))
    assert callbacks.claim(db, cb)["next_attempt_at"] is None
    assert callbacks.attempt_failed(db, cb, "no-answer", None) == "failed"
    row = callbacks.get_callback(db, cb)
    assert (row["state"], row["outcome"], row["last_status"], row["attempts"]) == (
        "failed", "no-answer", "no-answer", 2)
    assert callbacks.claim(db, cb) is None
    assert callbacks.attempt_failed(db, cb, "busy", retry) == "failed"  # a finished row stays finished
    with pytest.raises(KeyError):
        callbacks.attempt_failed(db, "unknown", "busy", None)


def test_complete_and_record(db):
    cb = _request(db)
    callbacks.claim(db, cb)
    callbacks.set_record(db, cb, "rec-1")
    assert callbacks.get_callback(db, cb)["record_id"] == "rec-1"
    callbacks.complete(db, cb, "201")
    row = callbacks.get_callback(db, cb)
    assert (row["state"], row["outcome"], row["agent"], row["record_id"]) == ("completed", "answered", "201", "rec-1")
    other = _request(db, number="0699")
    callbacks.claim(db, other)
    callbacks.complete(db, other, "202", "rec-2")
    assert callbacks.get_callback(db, other)["record_id"] == "rec-2"
    assert callbacks.list_callbacks(db) == []
    assert {r["id"] for r in callbacks.list_callbacks(db, states=("completed",))} == {cb, other}


def test_recover_interrupted_keeps_the_attempt(db):
    a, b, c = _request(db, number="0611"), _request(db, number="0612"), _request(db, number="0613")
    callbacks.claim(db, a)
    callbacks.claim(db, b)
    assert callbacks.recover_interrupted(db) == 2
    for cb in (a, b):
        row = callbacks.get_callback(db, cb)
        assert (row["state"], row["attempts"], row["outcome"]) == ("pending", 1, "interrupted")
    assert callbacks.get_callback(db, c)["outcome"] is None
    assert callbacks.recover_interrupted(db) == 0


def test_asking_again_while_being_dialled_keeps_one_pending_row(db):
    cb = _request(db, minutes=0)
    callbacks.claim(db, cb)
    twin = _request(db, minutes=10)  # the customer calls again and asks again meanwhile
    assert twin != cb
    callbacks.release(db, cb)  # must not break the one-pending-per-number rule
    pending = callbacks.list_callbacks(db, states=("pending",))
    assert [r["id"] for r in pending] == [cb]
    assert pending[0]["position_at"] == to_iso(T0)
    assert callbacks.get_callback(db, twin)["state"] == "cancelled"
    assert callbacks.claim(db, twin) is None


def test_cancel_only_pending(db):
    cb = _request(db)
    assert callbacks.cancel_callback(db, cb) is True
    assert callbacks.get_callback(db, cb)["state"] == "cancelled"
    assert callbacks.cancel_callback(db, cb) is False
    dialing = _request(db, number="0699")
    callbacks.claim(db, dialing)
    assert callbacks.cancel_callback(db, dialing) is False
    assert callbacks.cancel_callback(db, "unknown") is False


def test_list_callbacks_in_line_order_by_state_and_queue(db):
    late = _request(db, number="0613", minutes=20)
    early = _request(db, number="0611", minutes=0)
    middle = _request(db, number="0612", minutes=10)
    other = _request(db, number="0614", queue="support", minutes=5)
    callbacks.claim(db, middle)
    assert [r["id"] for r in callbacks.list_callbacks(db)] == [early, other, middle, late]
    assert [r["id"] for r in callbacks.list_callbacks(db, queue="sales")] == [early, middle, late]
    assert [r["id"] for r in callbacks.list_callbacks(db, states=("pending",), queue="sales")] == [early, late]
    assert callbacks.list_callbacks(db, states=("failed",)) == []
