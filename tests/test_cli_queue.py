"""`switchboard agent|queue|callback|customer`, in process, on a provisioned data folder.

Without a box the commands work on the store alone; with one (a real ControlServer with a
small handler on a loop in a thread) they tell it and print its reply.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from office_text import ANN_AND_BOB

from appliance import cli
from appliance.control import SOCKET_NAME, ControlServer
from appliance.store import callbacks, queues
from appliance.crm import customer_store
from appliance.store.db import from_iso, open_database

OFFICE = ANN_AND_BOB + """
[[extensions]]
number = "203"
name = "Cleo"
secret = "cle0-likes-jam"

[[queue]]
name = "sales"
number = "600"
members = ["201", { extension = "202", tier = 2 }]
service_level = 30

[[queue]]
name = "support"
strategy = "ring-all"
members = ["202"]
"""


class Box:
    """Stands in for the running box: a real control socket whose replies the test chooses."""

    def __init__(self, data: Path) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.reply: Callable[[str, dict], dict] = lambda command, args: {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ControlServer(data / SOCKET_NAME, self._handle)
        self._run(self.server.start())

    def _handle(self, command: str, args: dict) -> dict:
        self.requests.append((command, args))
        return self.reply(command, args)

    def _run(self, coro) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = tmp_path / "data"
    office = tmp_path / "office.toml"
    office.write_text(OFFICE)
    assert cli.main(["provision", str(office), "--data-dir", str(folder)]) == 0
    assert "queues: 2 added" in capsys.readouterr().out
    return folder


@pytest.fixture
def box(data: Path) -> Iterator[Box]:
    running = Box(data)
    yield running
    running.close()


def run(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--data-dir", str(data)])
    out, err = capsys.readouterr()
    return code, out, err


def store(data: Path):  # type: ignore[no-untyped-def]
    return open_database(data / "switchboard.db")


# --- agents ---


def test_agent_commands_without_a_box_write_the_store(data, capsys):
    code, out, _ = run(capsys, data, "agent", "login", "201")
    assert code == 0 and out.strip() == "201: logged in to sales (applies when the box starts)"
    code, out, _ = run(capsys, data, "agent", "login", "202")
    assert code == 0 and "202: logged in to sales, support" in out
    assert queues.logins(store(data)) == [("201", "sales"), ("202", "sales"), ("202", "support")]

    code, out, _ = run(capsys, data, "agent", "logout", "202", "--queue", "support")
    assert code == 0 and "202: logged out of support" in out
    code, out, _ = run(capsys, data, "agent", "pause", "201", "--reason", "lunch")
    assert code == 0 and "201: paused (lunch)" in out
    run(capsys, data, "agent", "pause", "202")
    assert queues.pauses(store(data)) == {"201": "lunch", "202": "paused"}
    code, out, _ = run(capsys, data, "agent", "unpause", "202")
    assert code == 0 and "202: unpaused" in out
    assert queues.pauses(store(data)) == {"201": "lunch"}
    code, out, _ = run(capsys, data, "agent", "logout", "201")
    assert code == 0 and "201: logged out of sales" in out
    assert queues.logins(store(data)) == [("202", "sales")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("agent", "login", "209"), 'no extension "209"'),
        (("agent", "login", "203"), "203 is not a member of any queue"),
        (("agent", "pause", "203"), "203 is not a member of any queue"),
        (("agent", "login", "201", "--queue", "support"), '201 is not a member of queue "support"'),
        (("agent", "login", "201", "--queue", "nope"), 'no queue "nope"'),
    ],
)
def test_agent_refusals(data, capsys, args, message):
    code, _, err = run(capsys, data, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert queues.logins(store(data)) == [] and queues.pauses(store(data)) == {}


def test_agent_login_tells_the_running_box(data, box, capsys):
    box.reply = lambda command, args: {"extension": args["extension"], "state": "available", "reason": "",
                                       "queues": ["sales"]}
    code, out, _ = run(capsys, data, "agent", "login", "201", "--queue", "sales")
    assert code == 0 and out.strip() == "201: available in sales"
    assert box.requests == [("agent", {"extension": "201", "action": "login", "queue": "sales", "reason": None})]
    assert queues.logins(store(data)) == [("201", "sales")]  # the store was written first

    box.reply = lambda command, args: {"extension": "201", "state": "paused", "reason": "lunch", "queues": ["sales"]}
    code, out, _ = run(capsys, data, "agent", "pause", "201", "--reason", "lunch")
    assert code == 0 and out.strip() == "201: paused (lunch) in sales"
    assert box.requests[-1] == ("agent", {"extension": "201", "action": "pause", "queue": None, "reason": "lunch"})


def test_box_refusal_is_an_error(data, box, capsys):
    def refuse(command: str, args: dict) -> dict:
        raise ValueError("the engine says no")

    box.reply = refuse
    code, _, err = run(capsys, data, "agent", "unpause", "201")
    assert code == 1 and "the engine says no" in err


# --- queue status and stats ---


def test_queue_status_without_a_box_comes_from_the_store(data, capsys):
    db = store(data)
    queues.set_login(db, "201", "sales", True)
    queues.set_login(db, "202", "sales", True)
    queues.set_pause(db, "202", True, "lunch")
    cb, _ = callbacks.request_callback(db, number="0612345678", queue="sales")
    code, out, _ = run(capsys, data, "queue", "status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["live"] is False
    sales, support = status["queues"]
    assert (sales["name"], sales["strategy"], sales["open"], sales["waiting"]) == ("sales", "longest-idle", True, [])
    assert sales["agents"] == [
        {"extension": "201", "state": "logged in", "reason": None, "answered_today": 0},
        {"extension": "202", "state": "paused", "reason": "lunch", "answered_today": 0},
    ]
    assert [c["id"] for c in sales["callbacks"]] == [cb] and sales["callbacks"][0]["state"] == "pending"
    assert support["agents"] == [{"extension": "202", "state": "logged_out", "reason": None, "answered_today": 0}]

    code, out, _ = run(capsys, data, "queue", "status", "sales")
    assert code == 0 and "box not running" in out
    assert "0612345678" in out and "lunch" in out and "support" not in out

    code, _, err = run(capsys, data, "queue", "status", "nope")
    assert code == 2 and 'no queue "nope"' in err


LIVE = {
    "live": True,
    "queues": [{
        "name": "sales", "strategy": "longest-idle", "open": True,
        "waiting": [{"id": "e1", "kind": "call", "number": "0699887766", "name": "Zoe", "vip": True, "position": 1,
                     "wait": 75.0, "ringing": ["201"]}],
        "agents": [{"extension": "201", "state": "ringing", "reason": "", "answered_today": 4}],
        "callbacks": [],
    }],
}


def test_queue_status_asks_the_running_box(data, box, capsys):
    box.reply = lambda command, args: LIVE
    code, out, _ = run(capsys, data, "queue", "status", "sales", "--json")
    assert code == 0 and json.loads(out) == {**LIVE, "ok": True}
    assert box.requests == [("queue_status", {"queue": "sales"})]
    code, out, _ = run(capsys, data, "queue", "status")
    assert code == 0 and "box not running" not in out
    assert "0699887766" in out and "1:15" in out and "ringing" in out
    assert box.requests[-1] == ("queue_status", {"queue": None})


def test_queue_stats(data, capsys):
    db = store(data)
    now = datetime.now(timezone.utc).timestamp()
    day_ago = now - 86400 * 3
    for entered, wait, talk, agent in ((now - 600, 10, 60, "201"), (now - 500, 40, 120, "202"),
                                       (day_ago, 5, 30, "201")):
        entry = queues.enter_queue(db, queue="sales", call_id=None, number=None, name=None, vip=False,
                                   entered_at=entered)
        queues.entry_answered(db, entry, agent, entered + wait)
        queues.entry_ended(db, entry, entered + wait + talk)
        queues.record_offer(db, queue="sales", agent=agent, rang_at=entered + 1, ended_at=entered + wait,
                            outcome="answered")
    code, out, _ = run(capsys, data, "queue", "stats", "sales", "--json")
    assert code == 0
    result = json.loads(out)
    (sales,) = result["queues"]
    assert (sales["offered"], sales["answered"]) == (3, 3)
    assert sales["service_level"] == pytest.approx(2 / 3)  # the queue's own 30 s: 10 and 5 yes, 40 no
    assert {a["agent"]: a["offered"] for a in result["agents"]} == {"201": 2, "202": 1}

    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    code, out, _ = run(capsys, data, "queue", "stats", "--since", since, "--json")
    result = json.loads(out)
    assert {q["queue"]: q["offered"] for q in result["queues"]} == {"sales": 2, "support": 0}
    assert result["queues"][0]["aht"] == pytest.approx(90)

    code, out, _ = run(capsys, data, "queue", "stats")
    assert code == 0 and "SERVICE %" in out and "1:10" in out  # all time: (60 + 120 + 30) / 3 s
    code, _, err = run(capsys, data, "queue", "stats", "--since", "yesterday")
    assert code == 2 and "--since" in err


# --- callbacks ---


def test_callback_add_now_and_at_a_time_without_a_box(data, capsys):
    code, out, _ = run(capsys, data, "callback", "add", "+33612345678", "--queue", "sales", "--name", "Zoe")
    assert code == 0 and "added" in out and "applies when the box starts" in out
    code, out, _ = run(capsys, data, "callback", "add", "0611223344", "--queue", "support", "--at", "14:00")
    assert code == 0
    rows = {r["number"]: r for r in callbacks.list_callbacks(store(data))}
    assert rows["+33612345678"]["name"] == "Zoe" and rows["+33612345678"]["source"] == "cli"
    due = from_iso(rows["0611223344"]["due_at"]).astimezone()
    assert (due.hour, due.minute) == (14, 0)
    assert timedelta(0) < due - datetime.now().astimezone() <= timedelta(days=1)
    assert rows["0611223344"]["position_at"] == rows["0611223344"]["due_at"]

    code, out, _ = run(capsys, data, "callback", "list", "--json")
    assert code == 0 and {r["number"] for r in json.loads(out)} == {"+33612345678", "0611223344"}
    code, out, _ = run(capsys, data, "callback", "list")
    assert code == 0 and "0611223344" in out and "support" in out


def test_callback_add_iso_time_tells_the_box(data, box, capsys):
    code, out, _ = run(capsys, data, "callback", "add", "0611223344", "--queue", "sales",
                       "--at", "2031-01-02T09:30:00+00:00")
    assert code == 0 and "applies when the box starts" not in out
    assert box.requests == [("reload", {})]
    (row,) = callbacks.list_callbacks(store(data))
    assert row["due_at"] == "2031-01-02T09:30:00.000Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("callback", "add", "06-12", "--queue", "sales"), "expected a number of digits"),
        (("callback", "add", "0612", "--queue", "nope"), 'no queue "nope"'),
        (("callback", "add", "0612", "--queue", "sales", "--at", "25:00"), "no such time"),
        (("callback", "add", "0612", "--queue", "sales", "--at", "soon"), 'expected "HH:MM"'),
        (("customer", "add", "call me"), "expected a phone number"),
    ],
)
def test_callback_and_customer_refusals(data, capsys, args, message):
    code, _, err = run(capsys, data, *args)
    assert code == 2 and message in err
    assert callbacks.list_callbacks(store(data)) == []


# --- customers and provisioning ---


def test_customer_add_sets_the_segment(data, capsys):
    code, out, _ = run(capsys, data, "customer", "add", "+44 7700 900123", "--name", "Ann", "--segment", "vip")
    assert code == 0 and "(vip)" in out
    assert customer_store.customer_segment(store(data), "447700900123") == "vip"
    run(capsys, data, "customer", "add", "447700900123", "--segment", "regular")
    assert customer_store.customer_segment(store(data), "+44 7700 900123") == "regular"


def test_provision_reloads_a_running_box(data, box, tmp_path, capsys):
    code, out, _ = run(capsys, data, "provision", str(tmp_path / "office.toml"))
    assert code == 0 and "queues: 0 added, 0 updated, 0 removed, 2 unchanged" in out
    assert box.requests == [("reload", {})]
    assert "box: reloaded" in out
