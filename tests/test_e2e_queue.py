"""The queue end to end: SIPp callers ring in from trunks, SIPp agents answer, the box decides who rings.

Ring order is read from the box's queue_offers table and checked against what each agent's SIPp
actually received; agents log in and pause with the command line and with feature codes.
"""
from __future__ import annotations

import time
from pathlib import Path

from peers import SCENARIOS, start_box
from queue_office import Office, queue_table
from queue_peers import answering, query, wait_for


def answered_by(office: Office, count: int) -> list[str]:
    """Which agent answered each caller, in the callers' arrival order."""
    rows = office.wait_entries(count)
    return [row["agent"] for row in rows]


def test_longest_idle_rings_the_agent_idle_longest(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="longest-idle", wrapup=30))
    for number in ("201", "202", "203"):
        office.phones.start(number, answering(workdir, f"agent_{number}", talk_ms=1500))
    office.login("203", "201", "202", gap=0.3)
    callers = []
    for i in range(3):
        callers.append(office.call(f"49301000{i}", trunk=i, callee_hangs_up=True))
        time.sleep(0.5)  # arrival order is what the test is about
    assert answered_by(office, 3) == ["203", "201", "202"]
    for caller in callers:
        assert caller.wait(30) == 0


def test_round_robin_goes_round_the_members_in_order(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="round-robin"))
    for number in ("201", "202", "203"):
        office.phones.start(number, answering(workdir, f"agent_{number}", talk_ms=500), calls=2)
    office.login("203", "202", "201")  # login order must not matter: member order does
    for i in range(4):
        assert office.call(f"4930200{i}", callee_hangs_up=True).wait(30) == 0
    assert answered_by(office, 4) == ["201", "202", "203", "201"]


def test_fewest_calls_prefers_the_agent_with_fewest_answered_today(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="fewest-calls"))
    for number in ("201", "202", "203"):
        office.phones.start(number, answering(workdir, f"agent_{number}", talk_ms=400), calls=3)
    office.login("201")
    for i in range(2):
        assert office.call(f"4930300{i}", callee_hangs_up=True).wait(30) == 0
    office.login("202", "203", gap=0.3)
    for i in range(2, 5):
        assert office.call(f"4930300{i}", callee_hangs_up=True).wait(30) == 0
    # 201 has two calls; 202 and 203 none: they go first, the longer idle of them before the other.
    assert answered_by(office, 5) == ["201", "201", "202", "203", "202"]


def test_tiered_offers_the_top_tier_first(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="tiered", wrapup=30,
                                        members='[{ extension = "201", tier = 2 }, { extension = "202", tier = 1 }, '
                                                '{ extension = "203", tier = 2 }]'))
    for number in ("201", "202", "203"):
        office.phones.start(number, answering(workdir, f"agent_{number}", talk_ms=3000))
    office.login("203", "201", "202", gap=0.3)
    callers = [office.call(f"49304000{i}", trunk=i, callee_hangs_up=True) for i in range(2)]
    # 202 is the only tier 1 agent; then tier 2, the longer idle first (203 logged in before 201).
    assert answered_by(office, 2) == ["202", "203"]
    for caller in callers:
        assert caller.wait(30) == 0


def test_ring_all_rings_everyone_and_cancels_the_others(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="ring-all", ring_timeout=10))
    office.phones.start("201", answering(workdir, "agent_201", ring_ms=1000, talk_ms=800))
    office.phones.start("202", SCENARIOS / "call_uas_ring.xml")
    office.phones.start("203", SCENARIOS / "call_uas_ring.xml")
    office.login("201", "202", "203")
    assert office.call("493050000", callee_hangs_up=True).wait(30) == 0
    assert answered_by(office, 1) == ["201"]
    offers = {row["agent"]: row["outcome"] for row in office.offers()}
    assert offers == {"201": "answered", "202": "cancelled", "203": "cancelled"}
    for number in ("202", "203"):  # each rang, got CANCEL, answered 487 and saw the ACK
        code, output = office.phones.phones[number].finish(10)
        assert code == 0, output


def test_an_agent_who_does_not_answer_is_skipped_then_paused(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="round-robin", ring_timeout=2, max_misses=2,
                                        members=["201", "202"]))
    office.phones.start("201", SCENARIOS / "call_uas_ring.xml", calls=2)
    office.phones.start("202", answering(workdir, "agent_202", talk_ms=300), calls=2)
    office.login("201", "202")
    for i in range(2):
        assert office.call(f"4930600{i}", callee_hangs_up=True).wait(40) == 0
    assert answered_by(office, 2) == ["202", "202"]
    missed = [row["agent"] for row in office.offers() if row["outcome"] == "missed"]
    assert missed == ["201", "201"]
    state = office.agent_state("201")
    assert state["state"] == "paused" and "missed" in state["reason"]
    assert query(office.box, "SELECT reason FROM agent_pauses WHERE extension = '201'")  # survives a restart


def test_vip_jumps_the_line_only_when_the_queue_says_so(office_factory, workdir: Path) -> None:
    for vip_priority, expected in ((True, ["4930700002", "4930700001"]), (False, ["4930700001", "4930700002"])):
        office = office_factory(queue_table(vip_priority=vip_priority, members=["201"]), name=f"box_{vip_priority}")
        office.cli_ok("customer", "add", "4930700002", "--segment", "vip", "--name", "Big Client")
        office.phones.start("201", answering(workdir, f"agent_201_{vip_priority}", talk_ms=300), calls=2)
        office.login("201")
        office.cli_ok("agent", "pause", "201", "--reason", "meeting")
        regular = office.call("4930700001", trunk=0, callee_hangs_up=True)
        wait_for(lambda: len(office.entries()) == 1, 10, "the regular caller to wait")
        vip = office.call("4930700002", trunk=1, callee_hangs_up=True)
        wait_for(lambda: len(office.entries()) == 2, 10, "the VIP caller to wait")
        office.cli_ok("agent", "unpause", "201")
        assert regular.wait(40) == 0 and vip.wait(40) == 0
        served = [row["number"] for row in sorted(office.entries(), key=lambda r: r["answered_at"])]
        assert served == expected, (vip_priority, served)
        office.stop()


def test_vip_callers_are_offered_to_the_vip_tier_first(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(strategy="longest-idle", vip_tier=1, wrapup=30,
                                        members='[{ extension = "201", tier = 2 }, { extension = "202", tier = 1 }]'))
    office.cli_ok("customer", "add", "+4930800001", "--segment", "vip")
    for number in ("201", "202"):
        office.phones.start(number, answering(workdir, f"agent_{number}", talk_ms=500))
    office.login("201", "202", gap=0.3)  # 201 has been idle longer: a regular caller would ring 201
    assert office.call("+4930800001", callee_hangs_up=True).wait(30) == 0
    assert answered_by(office, 1) == ["202"]


def test_feature_codes_log_in_pause_and_log_out(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201", "202"]))
    assert office.agent_state("201")["state"] == "logged_out"
    office.dial_feature("201", "*45")
    assert office.agent_state("201")["state"] == "available"
    office.dial_feature("201", "*47")
    assert office.agent_state("201")["state"] == "paused"
    office.dial_feature("201", "*48")
    assert office.agent_state("201")["state"] == "available"
    office.dial_feature("201", "*46")
    assert office.agent_state("201")["state"] == "logged_out"
    assert query(office.box, "SELECT * FROM agent_logins WHERE extension = '201'") == []
    events = office.box.log()
    assert "agent 201: login from the phone" in events and "agent 201: logout from the phone" in events


def test_logins_and_pauses_survive_a_restart(box_factory, workdir: Path) -> None:
    office = Office(box_factory, workdir, queue_table(members=["201", "202"]))
    office.login("201", "202")
    office.cli_ok("agent", "pause", "202", "--reason", "lunch")
    office.box.stop()
    office.box = start_box(office.box.data_dir, office.text)
    try:
        assert office.agent_state("201")["state"] == "available"
        assert (office.agent_state("202")["state"], office.agent_state("202")["reason"]) == ("paused", "lunch")
    finally:
        office.box.stop()


def test_caller_hears_position_and_wait_then_hangs_up_counted_as_abandoned(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201"], announce_every=10, announce_position=True,
                                        announce_wait=True))
    office.login("201")
    office.cli_ok("agent", "pause", "201")
    assert office.call("4930900001", hold_ms=4500).wait(30) == 0
    rows = office.wait_entries(1, "abandoned")
    assert rows[0]["agent"] is None and rows[0]["left_at"] - rows[0]["entered_at"] > 4
    stats = office.box.cli_json("queue", "stats", "sales")
    sales = next(q for q in stats["queues"] if q["queue"] == "sales")  # type: ignore[index]
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (1, 0, 1)
    assert sales["abandon_rate"] == 1.0


def test_nobody_logged_in_offers_a_callback(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201"], empty="callback"))
    assert office.call("4930910001", keys="*1", wait_ms=2500, box_hangs_up=True).wait(40) == 0
    rows = office.wait_entries(1, "empty")
    assert rows[0]["number"] == "4930910001"
    pending = query(office.box, "SELECT * FROM callbacks WHERE state = 'pending'")
    assert [row["number"] for row in pending] == ["4930910001"] and pending[0]["queue"] == "sales"
    assert pending[0]["line"] == "itsp0"


def test_after_hours_the_closed_destination_applies(office_factory, workdir: Path) -> None:
    hours = '\n[[hours]]\nname = "office"\ntimezone = "Europe/Paris"\n'  # no open day: always closed
    office = office_factory(queue_table(members=["201"], hours="office", closed="hangup"), hours=hours)
    office.login("201")
    assert office.call("4930920001", box_hangs_up=True, hold_ms=20000).wait(30) == 0
    assert office.wait_entries(1, "closed")[0]["number"] == "4930920001"


def test_an_ivr_key_sends_the_caller_to_the_queue(office_factory, workdir: Path) -> None:
    menu = '\n[[ivr]]\nname = "main"\ngreeting = ""\ntimeout = 5\n[ivr.options]\n"1" = { to = "queue:sales", label = "sales" }\n'
    office = office_factory(queue_table(members=["201"]) + menu, last_inbound="ivr:main")
    office.phones.start("201", answering(workdir, "agent_201", talk_ms=800))
    office.login("201")
    assert office.call("4930930001", trunk=3, keys="1", wait_ms=1500, callee_hangs_up=True).wait(40) == 0
    assert office.wait_entries(1)[0]["agent"] == "201"
    record = office.box.calls()[0]
    assert record["answered_by"] == "201" and record["extra"]["queue"] == "sales"
    assert {"menu": "main", "key": "1", "action": "queue:sales", "label": "sales"} in record["ivr_path"]


def test_nobody_waits_forever_max_wait_sends_the_caller_on(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201"], max_wait=10, timeout="hangup"))
    office.login("201")
    office.cli_ok("agent", "pause", "201")
    assert office.call("4930940001", box_hangs_up=True, hold_ms=30000).wait(40) == 0
    row = office.wait_entries(1, "timeout")[0]
    assert row["left_at"] - row["entered_at"] >= 10


def test_a_full_queue_offers_the_next_caller_a_callback(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201"], max_length=1, full="callback"))
    office.login("201")
    office.cli_ok("agent", "pause", "201")
    first = office.call("4930950001", trunk=0, hold_ms=20000)
    wait_for(lambda: len(office.entries()) == 1, 10, "the first caller to wait")
    assert office.call("4930950002", trunk=1, keys="*1", wait_ms=2500, box_hangs_up=True).wait(40) == 0
    outcomes = {row["number"]: row["outcome"] for row in office.entries()}
    assert outcomes["4930950002"] == "full"
    assert [row["number"] for row in query(office.box, "SELECT number FROM callbacks")] == ["4930950002"]
    first.kill()
    first.wait(5)
