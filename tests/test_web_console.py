"""The agent console's API and its event stream, on a real box in-process (Flask test client, real SQLite)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import PROVISION
from live_box import LiveBox
from web_client import csrf_from, login, make_user

from appliance.store import calls as store_calls
from appliance.crm import customer_store as store_customers
from appliance.store.db import db_lock
from web.app import create_app

QUEUE = """
[[queue]]
name = "sales"
number = "600"
members = ["201", "202"]
"""


@pytest.fixture
def office(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A box with a sales queue (201, 202), an admin, and agent ann on 201."""
    box = LiveBox(tmp_path / "box", PROVISION + QUEUE)
    make_user(box.db, "root", "admin")
    make_user(box.db, "ann", "agent", "201")
    yield box
    box.stop()


@pytest.fixture
def ann(office):  # type: ignore[no-untyped-def]
    """A test client logged in as ann, with the page's CSRF token as a header."""
    client = create_app(office.box.api, testing=True).test_client()
    assert login(client, "ann").status_code == 302
    client.token = csrf_from(client.get("/agent").data)
    return client


def post(client, url: str, body: dict, token: str | None = None):  # type: ignore[no-untyped-def]
    """A JSON POST with the CSRF header."""
    return client.post(url, json=body, headers={"X-CSRF-Token": token if token is not None else client.token})


def answered_call(db, caller: str = "+12125550123", agent: str = "201") -> str:  # type: ignore[no-untyped-def]
    """A finished inbound call from a customer, answered by agent."""
    customer_id = store_customers.caller_customer(db, caller, "US")
    call_id = store_calls.start_call(db, sip_call_id="c1", direction="inbound", line="itsp", from_number=caller,
                                     from_name="", to_number="600", customer_id=customer_id)
    store_calls.mark_answered(db, call_id, agent)
    store_calls.finish_call(db, call_id, "answered")
    return call_id


def one(db, sql: str) -> tuple:  # type: ignore[no-untyped-def]
    """The first row of a query, read under the store's lock (the box's loop shares the connection)."""
    with db_lock(db):
        return db.execute(sql).fetchone()


def read_events(response, until: str, limit: int = 20) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    """(event, data) frames from a streamed response until one named `until` arrives."""
    frames: list[tuple[str, dict]] = []
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if "event" in fields:
                frames.append((fields["event"], json.loads(fields["data"])))
                if fields["event"] == until:
                    return frames
        if len(frames) >= limit:
            break
    raise AssertionError(f"no {until!r} event in {frames}")


def test_agent_changes_state_from_the_page(ann) -> None:  # type: ignore[no-untyped-def]
    assert post(ann, "/api/agent/state", {"action": "login"}).get_json()["state"] == "available"
    paused = post(ann, "/api/agent/state", {"action": "pause", "reason": "lunch"}).get_json()
    assert (paused["state"], paused["reason"], paused["queues"]) == ("paused", "lunch", ["sales"])
    assert post(ann, "/api/agent/state", {"action": "unpause"}).get_json()["state"] == "available"
    refused = post(ann, "/api/agent/state", {"action": "dance"})
    assert refused.status_code == 400 and "unknown action" in refused.get_json()["error"]
    forged = post(ann, "/api/agent/state", {"action": "logout"}, token="forged")
    assert forged.status_code == 400
    assert post(ann, "/api/agent/state", {"action": "pause"}).get_json()["state"] == "paused"  # forged changed nothing


def test_wrapup_is_validated_then_stored_with_a_scheduled_callback(ann, office) -> None:  # type: ignore[no-untyped-def]
    call_id = answered_call(office.db)
    wrong = post(ann, "/api/wrapup", {"call_id": call_id, "outcome": "teleported", "moods": ["calm"]})
    assert wrong.status_code == 400 and "teleported" in wrong.get_json()["error"]
    assert one(office.db, "SELECT count(*) FROM wrapups")[0] == 0

    at = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    saved = post(ann, "/api/wrapup", {"call_id": call_id, "outcome": "follow-up needed", "moods": ["in a hurry"],
                                      "note": "wants a quote", "callback_at": at.isoformat()})
    body = saved.get_json()
    assert saved.status_code == 200, body
    assert body["callback_error"] is None and body["wrapup"]["callback_id"]
    row = one(office.db, "SELECT number, queue, due_at, state FROM callbacks")
    assert row[:2] == ("+12125550123", "sales") and row[3] == "pending"
    assert datetime.fromisoformat(row[2].replace("Z", "+00:00")) == at
    stored = one(office.db, "SELECT agent, outcome, moods, note, saved_by FROM wrapups")
    assert stored == ("201", "follow-up needed", '["in a hurry"]', "wants a quote", "ann")


def test_card_api_shows_the_customer_and_refuses_unknown_calls(ann, office) -> None:  # type: ignore[no-untyped-def]
    call_id = answered_call(office.db)
    card = ann.get(f"/api/card/{call_id}").get_json()
    assert card["number"] == "+12125550123" and card["customer"]["segment"] == "new"
    assert ann.get("/api/card/nope").status_code == 404


def test_click_to_call_says_why_it_cannot_call(ann) -> None:  # type: ignore[no-untyped-def]
    refused = post(ann, "/calls/dial", {"number": "+12125550123"})
    assert refused.status_code == 400 and "not registered" in refused.get_json()["error"]
    empty = post(ann, "/calls/dial", {"number": ""})
    assert empty.status_code == 400 and "enter a number" in empty.get_json()["error"]


def test_stream_pops_a_ringing_call_for_a_new_tab_and_replays_after_last_event_id(ann, office) -> None:  # type: ignore[no-untyped-def]
    call_id = answered_call(office.db)
    bus = office.box.bus
    ringing = bus.publish("call.ringing", call_id=call_id, extension="201", from_number="+12125550123",
                          direction="inbound")
    bus.publish("call.ringing", call_id="other", extension="202")  # someone else's call: never shown

    fresh = ann.get("/events", buffered=False)  # a tab opened while the phone rings gets the card
    frames = read_events(fresh, "card")
    fresh.close()
    assert frames[-1][1]["call_id"] == call_id and frames[-1][1]["customer"] is not None

    bus.publish("call.answered", call_id=call_id, extension="201", answered_by="201")
    ended = bus.publish("call.ended", call_id=call_id, extension="201", disposition="answered")
    resumed = ann.get("/events", headers={"Last-Event-ID": str(ringing.seq)}, buffered=False)
    frames = read_events(resumed, "ended")
    resumed.close()
    assert [name for name, _ in frames] == ["answered", "ended"]
    assert frames[0][1]["mine"] is True

    again = ann.get("/events", headers={"Last-Event-ID": str(ended.seq)}, buffered=False)
    bus.publish("agent.state", extension="201", state="paused", reason="lunch", queues=["sales"])
    frames = read_events(again, "agent")
    again.close()
    assert frames == [("agent", {"extension": "201", "state": "paused", "reason": "lunch", "queues": ["sales"]})]


def test_an_agent_cannot_tie_a_colleagues_call_to_a_customer(ann, office) -> None:  # type: ignore[no-untyped-def]
    """Every endpoint checks the object, not only the login: Bob's call is not Ann's to name."""
    bobs = answered_call(office.db, caller="+12125550177", agent="202")
    before = store_calls.get_call(office.db, bobs)["customer_id"]
    refused = post(ann, "/api/customers", {"number": "+12125550177", "name": "Mallory", "call_id": bobs})
    assert refused.status_code == 400 and "There is no call" in refused.get_json()["error"]
    assert store_calls.get_call(office.db, bobs)["customer_id"] == before
    mine = answered_call(office.db, caller="+12125550178", agent="201")
    assert post(ann, "/api/customers", {"number": "+12125550178", "name": "Dana", "call_id": mine}).status_code in (200, 201)
