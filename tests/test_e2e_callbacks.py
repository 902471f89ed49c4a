"""Callbacks end to end: the caller keeps their place, the agent rings first and hears who it is,
the customer is dialled on the trunk the call came in on, failures are retried, and a kill -9 loses
nothing and runs nothing twice.

Callers and customers are SIPp on the trunks' ports (the box dials a callback back out through the
trunk, so the customer's SIPp listens where the caller's did); agents are registered SIPp uas.
"""
from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from peers import SCENARIOS, start_box
from queue_office import Office, queue_table
from queue_peers import answering, query, refusing, wait_for


@pytest.fixture
def office(office_factory) -> Office:  # type: ignore[no-untyped-def]
    """One agent (201) in queue sales, logged in and paused; callbacks retried every 5 s."""
    made = office_factory(queue_table(members=["201"], callback_attempts=2, callback_retry=5, ring_timeout=4))
    made.login("201")
    made.cli_ok("agent", "pause", "201", "--reason", "setting up")
    return made


def callback(office: Office, number: str) -> dict:
    """The callbacks row for number."""
    rows = query(office.box, "SELECT * FROM callbacks WHERE number = ?", (number,))
    assert len(rows) == 1, rows
    return rows[0]


def test_callback_keeps_the_callers_place_and_bridges_agent_and_customer(office: Office, workdir: Path) -> None:
    first = office.call("4930111111", trunk=0, keys="*1", wait_ms=3500, box_hangs_up=True)
    wait_for(lambda: len(office.entries()) == 1, 10, "the first caller to wait")
    second = office.call("4930222222", trunk=1, callee_hangs_up=True, hold_ms=90000)
    assert first.wait(40) == 0  # pressed 1 (callback), 1 (this number is right); the box said so and hung up
    third = office.call("4930333333", trunk=2, callee_hangs_up=True, hold_ms=90000)
    wait_for(lambda: len(office.entries()) == 3, 10, "the third caller to wait")
    row = callback(office, "4930111111")
    entries = office.entries()
    assert row["state"] == "pending" and row["line"] == "itsp0"
    second_entered = next(e["entered_at"] for e in entries if e["number"] == "4930222222")
    first_entered = next(e["entered_at"] for e in entries if e["number"] == "4930111111")
    assert datetime.fromisoformat(row["position_at"]).timestamp() == pytest.approx(first_entered, abs=0.01)
    assert first_entered < second_entered
    customer = office.customer(answering(workdir, "customer", ring_ms=300, talk_ms=None), 1)
    # The agent stays on long enough to hear the whisper and talk to the customer, then hangs up.
    agent = office.phones.start("201", answering(workdir, "agent_201", ring_ms=200, talk_ms=9000), calls=3)
    office.cli_ok("agent", "unpause", "201")
    assert second.wait(60) == 0 and third.wait(60) == 0
    code, output = customer.finish(30)
    assert code == 0, output + office.box.log()[-3000:]
    # The callback was served first: it kept the 9:00 place of a caller who came before the others.
    served = [(o["callback_id"] is not None, o["outcome"]) for o in office.offers() if o["outcome"] == "answered"]
    assert served == [(True, "answered"), (False, "answered"), (False, "answered")]
    done = wait_for(lambda: callback(office, "4930111111")["state"] == "completed" and
                    callback(office, "4930111111"), 20, "the callback to complete")
    assert (done["attempts"], done["agent"], done["outcome"]) == (1, "201", "answered")
    record = next(c for c in office.box.calls() if c["id"] == done["record_id"])
    assert record["direction"] == "callback" and record["answered_by"] == "201"
    # The agent's phone showed who the callback is for, and the customer got a call to their own number.
    invites = agent.received("INVITE")
    assert "4930111111" in invites[0].split("From:")[1].splitlines()[0]
    assert "whisper" in office.box.log()


def test_customer_busy_is_retried_then_failed(office: Office, workdir: Path) -> None:
    office.cli_ok("callback", "add", "4930444444", "--queue", "sales")
    customer = office.customer(refusing(workdir, "busy_customer"), 2)
    office.phones.start("201", answering(workdir, "agent_201", ring_ms=200, talk_ms=None), calls=2)
    office.cli_ok("agent", "unpause", "201")
    failed = wait_for(lambda: callback(office, "4930444444")["state"] == "failed" and
                      callback(office, "4930444444"), 40, "the callback to fail")
    assert (failed["attempts"], failed["outcome"]) == (2, "busy")
    code, output = customer.finish(10)
    assert code == 0, output  # it was dialled exactly twice
    attempts = [c for c in office.box.calls() if c["direction"] == "callback"]
    assert [(c["sip_status"], c["extra"]["callback_outcome"]) for c in attempts] == [(486, "busy"), (486, "busy")]
    listed = office.cli_ok("calls")
    assert listed.count("callback busy") == 2  # a failed callback is visible in the call records


def test_a_second_request_updates_the_first(office: Office, workdir: Path) -> None:
    office.cli_ok("callback", "add", "4930555555", "--queue", "sales", "--name", "First")
    office.cli_ok("callback", "add", "4930555555", "--queue", "sales", "--name", "Second")
    assert office.call("4930555555", trunk=1, keys="*1", wait_ms=3500, box_hangs_up=True).wait(40) == 0
    rows = query(office.box, "SELECT * FROM callbacks WHERE number = '4930555555'")
    assert len(rows) == 1 and rows[0]["state"] == "pending"
    status = office.status()
    pending = status["queues"][0]["callbacks"]
    assert [c["number"] for c in pending] == ["4930555555"]


def test_a_scheduled_callback_is_dialled_at_its_time(office: Office, workdir: Path) -> None:
    # That it is not dialled before its time, even with a free agent, is proved on a fake clock in
    # test_queue_engine.py (a callback not yet due); here the wire path of a scheduled one.
    at = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() + 3))
    office.cli_ok("callback", "add", "4930666666", "--queue", "sales", "--at", at)
    customer = office.customer(answering(workdir, "customer", talk_ms=None), 1)
    office.phones.start("201", answering(workdir, "agent_201", talk_ms=9000))  # the whisper takes ~5 s
    office.cli_ok("agent", "unpause", "201")
    wait_for(lambda: callback(office, "4930666666")["state"] == "completed", 30, "the scheduled callback")
    assert customer.finish(10)[0] == 0


def test_pending_callbacks_survive_kill_9_and_each_runs_once(workdir: Path) -> None:
    # Not the shared fixture: that one insists every box it started exits cleanly, and this one is killed.
    office = Office(lambda text, name, **kwargs: start_box(workdir.parent / name, text, **kwargs), workdir,
                    queue_table(members=["201"], callback_attempts=2, callback_retry=5, ring_timeout=4))
    office.login("201")
    office.cli_ok("agent", "pause", "201", "--reason", "setting up")
    numbers = ["4930700001", "4930700002", "4930700003"]
    for number in numbers:
        office.cli_ok("callback", "add", number, "--queue", "sales")
    # The agent's phone rings and never answers: the box has claimed the first callback when it dies.
    office.phones.start("201", SCENARIOS / "call_uas_ring.xml")
    office.cli_ok("agent", "unpause", "201")
    wait_for(lambda: callback(office, numbers[0])["state"] == "dialing", 15, "the first callback to be dialled")
    office.box.process.send_signal(signal.SIGKILL)
    office.box.process.wait(10)
    office.phones.stop()
    office.cli_ok("agent", "pause", "201", "--reason", "restarting")  # the store takes it with the box down
    office.box = start_box(office.box.data_dir, office.text)
    try:
        office.phones.box = office.box
        assert callback(office, numbers[0])["state"] == "pending"  # the interrupted attempt waits again
        customer = office.customer(answering(workdir, "customer", ring_ms=200, talk_ms=None), 3)
        office.phones.start("201", answering(workdir, "agent_after", ring_ms=200, talk_ms=8000), calls=3)
        office.cli_ok("agent", "unpause", "201")
        for number in numbers:
            wait_for(lambda n=number: callback(office, n)["state"] == "completed", 60, f"callback {number}")
        code, output = customer.finish(15)
        assert code == 0, output
        dialled = [block.split("To:")[1].splitlines()[0] for block in customer.received("INVITE")]
        assert sorted(n for d in dialled for n in numbers if n in d) == numbers  # each customer once
        def answered() -> list[str]:
            return sorted(c["from_number"] for c in office.box.calls() if c["direction"] == "callback"
                          and c["answered_by"] == "201" and c.get("disposition") == "answered")
        # The last call's record is closed just after the customer's side hangs up: wait for it, not past it.
        wait_for(lambda: answered() == numbers, 15, f"three answered callback records (have {answered()})")
    finally:
        office.stop()
        office.box.stop()
