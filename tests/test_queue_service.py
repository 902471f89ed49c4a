"""QueueService against a real SQLite file on a fake clock: agent actions survive a restart, and callbacks
pass the outbound policy before they are stored (no SIP, no media)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_loop import FakeLoop

from appliance.bus import EventBus
from appliance.calls.handover import Handover
from appliance.calls.outbound_policy import OutboundPolicy, PolicySettings
from appliance.calls.queue_service import QueueService
from appliance.calls.records import CallInfo
from appliance.config import load_provisioning
from appliance.provisioning import apply_provisioning
from appliance.store import callbacks as store_callbacks
from appliance.store import queues as store_queues
from appliance.store.db import open_database

OFFICE = """
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-201-queue"

[[queue]]
name = "sales"
members = ["201"]

[crm]
region = "DE"
"""


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "office.toml"
    path.write_text(OFFICE)
    database = open_database(tmp_path / "switchboard.db")
    apply_provisioning(database, load_provisioning(path), "switchboard")
    yield database
    database.conn.close()


def service(db, bus: EventBus | None = None) -> QueueService:  # type: ignore[no-untyped-def]
    loop = FakeLoop()
    policy = OutboundPolicy(lambda: PolicySettings(), lambda: "DE")
    return QueueService(loop, SimpleNamespace(), db, SimpleNamespace(), bus or EventBus(), SimpleNamespace(),  # type: ignore[arg-type]
                        Handover(), trunk_by_name=lambda name: None, policy=policy, now=loop.time,
                        line_names=lambda: ["itsp"])


def test_logins_and_pauses_are_stored_first_and_come_back_after_a_restart(db) -> None:  # type: ignore[no-untyped-def]
    first = service(db)
    first.reload()
    assert first.agent_action("201", "login")["state"] == "available"
    assert first.agent_action("201", "pause", reason="lunch")["state"] == "paused"
    assert store_queues.logins(db) == [("201", "sales")] and store_queues.pauses(db) == {"201": "lunch"}
    again = service(db)  # a restart: the engine is rebuilt from the store
    again.reload()
    agent = again.engine.agent("201")
    assert agent is not None and agent.state == "paused" and agent.reason == "lunch"


def test_unknown_agents_and_queues_are_refused_with_reasons(db) -> None:  # type: ignore[no-untyped-def]
    svc = service(db)
    svc.reload()
    with pytest.raises(ValueError, match="no extension 299"):
        svc.agent_action("299", "login")
    with pytest.raises(ValueError, match="no queue named support"):
        svc.agent_action("201", "login", queue="support")


def test_an_ivr_callback_passes_the_outbound_policy_before_it_is_stored(db) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    requested: list = []
    bus.subscribe(lambda event: requested.append(event.data["number"]), "callback.requested")
    svc = service(db, bus)
    svc.reload()
    info = CallInfo("rec1", "sip1", "inbound", "itsp", "+4930123456", "", "500")
    with pytest.raises(ValueError):
        svc.callback_from_ivr(info, "+88216123456", "sales", "ivr:main")  # a satellite number
    assert store_callbacks.list_callbacks(db) == []
    callback_id = svc.callback_from_ivr(info, "030123456", "sales", "ivr:main")
    [row] = store_callbacks.list_callbacks(db)
    assert row["id"] == callback_id and row["queue"] == "sales" and requested == ["030123456"]
    assert svc.engine.entry(callback_id) is not None  # it keeps a place in the line at once
