"""QueueEngine: agent states, the line, the five strategies, VIPs, callbacks, misses and expected wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from appliance.calls.queue import Agent, Entry, QueueEngine


@dataclass(frozen=True)
class Member:
    extension: str
    tier: int = 1


@dataclass(frozen=True)
class Queue:
    """Just what the engine reads of a queue_config.QueueConfig."""

    name: str
    strategy: str = "longest-idle"
    members: tuple[Member, ...] = ()
    vip_priority: bool = False
    vip_tier: int = 1
    max_misses: int = 3

    def member(self, extension: str) -> Member | None:
        return next((m for m in self.members if m.extension == extension), None)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float = 1.0) -> None:
        self.t += seconds


def queue(name: str = "sales", *members: str | Member, **kwargs) -> Queue:
    found = tuple(m if isinstance(m, Member) else Member(m) for m in members)
    return Queue(name, members=found, **kwargs)


def make(*queues: Queue, clock: Clock | None = None, **kwargs) -> tuple[QueueEngine, Clock]:
    clock = clock or Clock()
    return QueueEngine({q.name: q for q in queues}, now=clock, **kwargs), clock


def login(engine: QueueEngine, clock: Clock, *extensions: str, queue: str = "sales") -> None:
    """Log in one after the other, a second apart: the first is idle longest."""
    for extension in extensions:
        engine.login(extension, queue)
        clock.tick()


def call(entry_id: str, at: float, queue: str = "sales", **kwargs) -> Entry:
    return Entry(entry_id, queue, kwargs.pop("kind", "call"), kwargs.pop("number", "0712"), at, **kwargs)


def offered(engine: QueueEngine) -> list[tuple[str, tuple[str, ...]]]:
    return [(o.entry.id, o.agents) for o in engine.dispatch()]


def serve(engine: QueueEngine, clock: Clock, entry_id: str, extension: str) -> None:
    """Answer, talk, wrap up: the agent is available again, idle from now."""
    engine.offer_answered(entry_id, extension)
    clock.tick(30)
    engine.call_ended(extension)
    clock.tick(5)
    engine.wrapup_done(extension)
    clock.tick()


def ring_order(engine: QueueEngine, clock: Clock, calls: int) -> list[str]:
    """Who gets each of `calls` callers arriving one at a time, each served in turn."""
    order = []
    for n in range(calls):
        engine.add(call(f"c{n}", clock()))
        [(entry_id, (agent,))] = offered(engine)
        order.append(agent)
        serve(engine, clock, entry_id, agent)
    return order


# --- agents ---


def test_agent_state_follows_busy_then_logins_then_pause() -> None:
    agent = Agent("201")
    assert agent.state == "logged_out"
    agent.queues.add("sales")
    assert agent.state == "available"
    agent.paused = True
    assert agent.state == "paused"
    agent.busy = "on_call"
    assert agent.state == "on_call"
    agent.queues.clear()
    assert agent.state == "on_call"


def test_login_checks_queue_and_membership_and_says_if_it_changed_anything() -> None:
    engine, _ = make(queue("sales", "201"))
    with pytest.raises(ValueError, match="no queue"):
        engine.login("201", "support")
    with pytest.raises(ValueError, match="not a member"):
        engine.login("202", "sales")
    assert "202" not in engine.agents
    assert engine.login("201", "sales") is True
    assert engine.login("201", "sales") is False
    assert engine.agent("201").state == "available"


def test_logout_of_one_queue_or_all() -> None:
    engine, clock = make(queue("sales", "201"), queue("support", "201"))
    login(engine, clock, "201", queue="sales")
    login(engine, clock, "201", queue="support")
    assert engine.logout("201", "sales") is True
    assert engine.agent("201").queues == {"support"}
    assert engine.logout("201", "sales") is False
    assert engine.logout("201") is True
    assert engine.agent("201").state == "logged_out"
    assert engine.logout("999") is False


def test_configure_drops_logins_to_vanished_queues_and_of_former_members_but_keeps_entries() -> None:
    engine, clock = make(queue("sales", "201", "202"), queue("support", "201"))
    login(engine, clock, "201", "202")
    login(engine, clock, "201", queue="support")
    engine.add(call("c1", clock(), queue="support"))
    engine.configure({"sales": queue("sales", "201")})
    assert engine.agent("201").queues == {"sales"}
    assert engine.agent("202").state == "logged_out"
    assert engine.entry("c1") is not None
    assert engine.members_logged_in("sales") == [engine.agent("201")]
    assert offered(engine) == []  # the support caller has no queue to be offered in


def test_on_agent_is_called_once_per_change_and_never_for_no_change() -> None:
    seen: list[tuple[str, str, str]] = []
    engine, clock = make(
        queue("sales", "201"), queue("support", "201"),
        on_agent=lambda a: seen.append((a.extension, a.state, a.reason)),
    )
    engine.login("201", "sales")
    engine.login("201", "sales")
    engine.login("201", "support")  # still available, but its queues changed
    engine.pause("201", "lunch")
    engine.pause("201", "lunch")
    engine.unpause("201")
    engine.unpause("201")
    engine.add(call("c1", clock()))
    engine.dispatch()
    engine.dispatch()
    engine.offer_answered("c1", "201")
    engine.wrapup_done("201")  # not in wrap-up: nothing happens
    engine.call_ended("201")
    engine.call_ended("201")
    engine.wrapup_done("201")
    engine.set_busy("201", "")
    engine.set_busy("201", "on_call")
    engine.set_busy("201", "")
    engine.set_busy("555", "on_call")  # not a member of any queue: not an agent
    engine.logout("201")
    engine.logout("201")
    assert seen == [
        ("201", "available", ""),
        ("201", "available", ""),
        ("201", "paused", "lunch"),
        ("201", "available", ""),
        ("201", "ringing", ""),
        ("201", "on_call", ""),
        ("201", "wrap_up", ""),
        ("201", "available", ""),
        ("201", "on_call", ""),
        ("201", "available", ""),
        ("201", "logged_out", ""),
    ]


def test_auto_pause_after_a_miss_is_one_notification() -> None:
    seen: list[str] = []
    engine, clock = make(queue("sales", "201", max_misses=1), on_agent=lambda a: seen.append(a.state))
    login(engine, clock, "201")
    engine.add(call("c1", clock()))
    engine.dispatch()
    assert engine.offer_missed("c1", "201") is True
    assert seen == ["available", "ringing", "paused"]


def test_staffed_counts_logged_in_members_that_are_not_paused() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    login(engine, clock, "201", "202")
    engine.pause("202")
    engine.set_busy("201", "on_call")
    assert engine.staffed("sales") == 1
    assert [a.extension for a in engine.members_logged_in("sales")] == ["201", "202"]
    assert engine.members_logged_in("nope") == [] and engine.staffed("nope") == 0


def test_idle_time_starts_at_the_first_login_not_at_each_one() -> None:
    engine, clock = make(queue("sales", "201"), queue("support", "201"))
    login(engine, clock, "201", queue="sales")
    start = engine.agent("201").idle_since
    login(engine, clock, "201", queue="support")
    assert engine.agent("201").idle_since == start
    engine.logout("201")
    login(engine, clock, "201", queue="support")
    assert engine.agent("201").idle_since == clock() - 1


def test_unpause_resets_misses_and_idle_time() -> None:
    engine, clock = make(queue("sales", "201", "202", max_misses=5))
    login(engine, clock, "201", "202")
    engine.add(call("c1", clock()))
    engine.dispatch()
    engine.offer_missed("c1", "201")
    engine.pause("201")
    clock.tick(60)
    assert engine.unpause("201") is True
    agent = engine.agent("201")
    assert (agent.misses_in_row, agent.idle_since, agent.state) == (0, clock(), "available")


# --- strategies ---


def test_ring_all_rings_every_free_member_and_answering_frees_the_others_without_a_miss() -> None:
    engine, clock = make(queue("sales", "201", "202", "203", strategy="ring-all"))
    login(engine, clock, "201", "202", "203")
    engine.set_busy("202", "on_call")
    engine.add(call("c1", clock()))
    assert offered(engine) == [("c1", ("201", "203"))]
    assert engine.offer_answered("c1", "203") == ["201"]
    assert engine.entry("c1") is None
    first, third = engine.agent("201"), engine.agent("203")
    assert (first.state, first.misses_in_row) == ("available", 0)
    assert (third.state, third.answered_today) == ("on_call", 1)


def test_longest_idle_rings_whoever_waited_longest_for_a_call() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    login(engine, clock, "202", "201", "203")
    assert ring_order(engine, clock, 5) == ["202", "201", "203", "202", "201"]


def test_longest_idle_ties_go_to_member_order_and_each_agent_gets_one_entry() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    for extension in ("203", "202", "201"):
        engine.login(extension, "sales")  # same instant
    for n in range(4):
        engine.add(call(f"c{n}", clock() + n))
    assert offered(engine) == [("c0", ("201",)), ("c1", ("202",)), ("c2", ("203",))]


def test_round_robin_goes_on_after_the_last_offered_member_and_wraps() -> None:
    engine, clock = make(queue("sales", "201", "202", "203", strategy="round-robin"))
    login(engine, clock, "203", "202", "201")  # idle time does not matter
    assert ring_order(engine, clock, 4) == ["201", "202", "203", "201"]
    engine.set_busy("202", "on_call")
    assert ring_order(engine, clock, 2) == ["203", "201"]


def test_fewest_calls_rings_who_answered_least_today_ties_by_longest_idle() -> None:
    engine, clock = make(queue("sales", "201", "202", "203", strategy="fewest-calls"))
    login(engine, clock, "201", "202", "203")
    assert ring_order(engine, clock, 3) == ["201", "202", "203"]
    engine.set_busy("201", "on_call")
    assert ring_order(engine, clock, 1) == ["202"]
    engine.set_busy("201", "")  # 201 and 203 answered one each; 203 has been idle longer
    assert ring_order(engine, clock, 2) == ["203", "201"]


def test_fewest_calls_counts_start_again_each_day() -> None:
    days = ["2024-05-06"]
    engine, clock = make(queue("sales", "201", "202", strategy="fewest-calls"), today=lambda: days[0])
    login(engine, clock, "201", "202")
    assert ring_order(engine, clock, 3) == ["201", "202", "201"]
    assert engine.snapshot("sales")[0]["agents"][0]["answered_today"] == 2
    days[0] = "2024-05-07"
    assert engine.snapshot("sales")[0]["agents"][0]["answered_today"] == 0
    # Yesterday 201 answered more; today both start at zero, so the longest idle (202) goes first.
    assert ring_order(engine, clock, 2) == ["202", "201"]
    assert engine.agent("201").answered_today == 1


def test_default_day_is_the_local_date_of_the_injected_clock() -> None:
    engine, clock = make(queue("sales", "201"), clock=Clock(0.0))
    login(engine, clock, "201")
    ring_order(engine, clock, 1)
    assert engine.agent("201").day == date.fromtimestamp(0.0).isoformat()


def test_tiered_rings_the_lowest_tier_with_a_free_agent_longest_idle_within_it() -> None:
    engine, clock = make(queue("sales", Member("201", 2), Member("202", 1), Member("203", 1), strategy="tiered"))
    login(engine, clock, "201", "203", "202")
    assert ring_order(engine, clock, 3) == ["203", "202", "203"]
    engine.set_busy("202", "on_call")
    engine.set_busy("203", "on_call")
    assert ring_order(engine, clock, 1) == ["201"]


# --- VIPs and line order ---


def test_vip_is_offered_to_the_vip_tier_first_then_to_anyone() -> None:
    engine, clock = make(queue("sales", "201", Member("202", 2), vip_tier=2, strategy="longest-idle"))
    login(engine, clock, "201", "202")
    engine.add(call("vip", clock(), vip=True))
    assert offered(engine) == [("vip", ("202",))]
    engine.offer_missed("vip", "202")
    clock.tick()
    assert offered(engine) == [("vip", ("201",))]  # no vip-tier candidate left: anyone


def test_vip_tier_first_also_narrows_ring_all() -> None:
    engine, clock = make(queue("sales", "201", Member("202", 2), Member("203", 2), strategy="ring-all", vip_tier=2))
    login(engine, clock, "201", "202", "203")
    engine.add(call("vip", clock(), vip=True))
    engine.add(call("c2", clock() + 1))
    assert offered(engine) == [("vip", ("202", "203")), ("c2", ("201",))]


def test_with_vip_priority_vips_are_ahead_in_line_and_served_first() -> None:
    engine, clock = make(queue("sales", "201", vip_priority=True))
    engine.add(call("c1", 100.0))
    engine.add(call("c2", 200.0))
    assert engine.add(call("vip", 300.0, vip=True)) == 1
    engine.add(call("vip2", 250.0, vip=True))
    assert [e.id for e in engine.waiting("sales")] == ["vip2", "vip", "c1", "c2"]
    assert engine.position("c1") == 3
    login(engine, clock, "201")
    assert offered(engine) == [("vip2", ("201",))]


def test_without_vip_priority_a_vip_does_not_jump_ahead() -> None:
    engine, clock = make(queue("sales", "201"))
    engine.add(call("c1", 100.0))
    assert engine.add(call("vip", 300.0, vip=True)) == 2
    login(engine, clock, "201")
    assert offered(engine) == [("c1", ("201",))]


def test_same_position_time_keeps_arrival_order_and_entered_at_defaults_to_it() -> None:
    engine, _ = make(queue("sales", "201"))
    engine.add(call("b", 100.0))
    engine.add(call("a", 100.0))
    assert [e.id for e in engine.waiting("sales")] == ["b", "a"]
    assert engine.entry("a").entered_at == 100.0
    with pytest.raises(ValueError, match="already in line"):
        engine.add(call("a", 50.0))


def test_a_callback_keeps_its_place_between_earlier_and_later_callers() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    engine.add(call("early", 100.0))
    engine.add(call("caller", 200.0))
    engine.add(call("late", 300.0))
    engine.remove("caller")  # pressed the callback key at 350
    assert engine.add(call("cb", 200.0, kind="callback", entered_at=350.0)) == 2
    assert [e.id for e in engine.waiting("sales")] == ["early", "cb", "late"]
    login(engine, clock, "201", "202", "203")
    assert offered(engine) == [("early", ("201",)), ("cb", ("202",)), ("late", ("203",))]


def test_a_callback_not_yet_due_keeps_a_place_but_does_not_block_those_behind() -> None:
    engine, clock = make(queue("sales", "201"))
    due = clock() + 600
    engine.add(call("cb", clock() - 100, kind="callback", eligible_at=due))
    engine.add(call("c1", clock()))
    assert engine.position("c1") == 2
    login(engine, clock, "201")
    assert offered(engine) == [("c1", ("201",))]
    serve(engine, clock, "c1", "201")
    assert offered(engine) == []
    clock.t = due
    assert offered(engine) == [("cb", ("201",))]


def test_callbacks_wait_while_the_queue_is_closed_but_callers_do_not() -> None:
    open_now = [False]
    engine, clock = make(queue("sales", "201", "202"), is_open=lambda q: open_now[0])
    login(engine, clock, "201", "202")
    engine.add(call("cb", 100.0, kind="callback"))
    engine.add(call("c1", 200.0))
    assert offered(engine) == [("c1", ("201",))]
    assert offered(engine) == []
    open_now[0] = True
    assert offered(engine) == [("cb", ("202",))]


def test_one_agent_in_two_queues_gets_one_entry_the_oldest_across_queues() -> None:
    engine, clock = make(queue("sales", "201"), queue("support", "201"))
    login(engine, clock, "201", queue="sales")
    login(engine, clock, "201", queue="support")
    engine.add(call("s1", 200.0, queue="sales"))
    engine.add(call("t1", 100.0, queue="support"))
    assert offered(engine) == [("t1", ("201",))]
    assert offered(engine) == []


# --- misses ---


def test_a_missed_entry_goes_to_the_next_agent_and_the_misser_takes_the_next_entry() -> None:
    engine, clock = make(queue("sales", "201", "202"))
    login(engine, clock, "201", "202")
    engine.set_busy("202", "on_call")
    engine.add(call("c1", 100.0))
    engine.add(call("c2", 200.0))
    assert offered(engine) == [("c1", ("201",))]
    assert engine.offer_missed("c1", "201") is False
    assert engine.entry("c1").tried == {"201"} and not engine.entry("c1").ringing
    assert offered(engine) == [("c2", ("201",))]  # c1 does not block c2
    engine.set_busy("202", "")
    assert offered(engine) == [("c1", ("202",))]


def test_when_every_agent_missed_an_entry_a_new_round_starts_only_at_a_later_dispatch() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    login(engine, clock, "201", "202", "203")
    engine.pause("203")  # paused agents do not hold up a new round
    engine.add(call("c1", 100.0))
    for extension in ("201", "202"):
        assert offered(engine) == [("c1", (extension,))]
        engine.offer_missed("c1", extension)
    assert offered(engine) == []  # not rung straight back
    assert engine.entry("c1").tried == set()
    assert offered(engine) == [("c1", ("201",))]


def test_auto_pause_after_max_misses_in_a_row_and_an_answer_resets_the_count() -> None:
    engine, clock = make(queue("sales", "201", max_misses=2))
    login(engine, clock, "201")
    for n in range(3):
        engine.add(call(f"c{n}", 100.0 + n))

    def miss(entry_id: str) -> bool:
        assert offered(engine) == [(entry_id, ("201",))]
        return engine.offer_missed(entry_id, "201")

    assert miss("c0") is False
    assert offered(engine) == [("c1", ("201",))]  # c0 is skipped for 201, c1 is not
    serve(engine, clock, "c1", "201")
    assert engine.agent("201").misses_in_row == 0
    assert miss("c0") is False  # a new round for c0: the count started again
    assert miss("c2") is True
    agent = engine.agent("201")
    assert (agent.state, agent.reason, agent.misses_in_row) == ("paused", "missed calls", 2)
    assert offered(engine) == []


def test_the_lowest_max_misses_of_any_logged_in_queue_pauses_and_zero_never_does() -> None:
    engine, clock = make(queue("sales", "201", max_misses=0), queue("support", "201", max_misses=1))
    login(engine, clock, "201", queue="sales")
    engine.add(call("c1", 100.0))
    for _ in range(4):
        assert offered(engine) == [("c1", ("201",))]
        assert engine.offer_missed("c1", "201") is False
        assert offered(engine) == []  # the new round starts at the dispatch after this one
    assert engine.agent("201").misses_in_row == 4
    login(engine, clock, "201", queue="support")
    assert offered(engine) == [("c1", ("201",))]
    assert engine.offer_missed("c1", "201") is True


def test_a_cancelled_offer_is_not_a_miss() -> None:
    engine, clock = make(queue("sales", "201", max_misses=1))
    login(engine, clock, "201")
    engine.add(call("c1", 100.0))
    engine.dispatch()
    assert engine.offer_missed("c1", "201", miss=False) is False
    agent = engine.agent("201")
    assert (agent.state, agent.misses_in_row, engine.entry("c1").tried) == ("available", 0, set())
    assert offered(engine) == [("c1", ("201",))]


def test_remove_leaves_the_ringing_agents_to_the_caller() -> None:
    engine, clock = make(queue("sales", "201"))
    login(engine, clock, "201")
    engine.add(call("c1", 100.0))
    engine.dispatch()
    assert engine.remove("c1").id == "c1"
    assert engine.remove("c1") is None
    assert engine.agent("201").state == "ringing"
    engine.offer_missed("c1", "201", miss=False)
    assert engine.agent("201").state == "available"


# --- positions and expected wait ---


def test_positions_count_everyone_ahead_and_move_up_when_someone_leaves() -> None:
    engine, _ = make(queue("sales", "201"), queue("support", "201"))
    engine.add(call("c1", 100.0))
    engine.add(call("cb", 150.0, kind="callback", eligible_at=10**10))
    engine.add(call("x", 120.0, queue="support"))
    assert engine.add(call("c2", 200.0)) == 3
    engine.remove("c1")
    assert [engine.position(i) for i in ("cb", "c2", "x", "gone")] == [1, 2, 1, 0]


def test_expected_wait_is_ceil_of_position_over_staffed_times_aht() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"))
    assert engine.expected_wait("sales", 3) == 3 * 120.0  # nobody staffed counts as one
    login(engine, clock, "201", "202", "203")
    engine.pause("203")
    assert [engine.expected_wait("sales", p) for p in (1, 2, 3, 4)] == [120.0, 120.0, 240.0, 240.0]
    engine.record_handling("sales", 60.0)
    assert engine.expected_wait("sales", 3) == 120.0


def test_aht_is_120_then_the_mean_of_the_last_20_talk_times() -> None:
    engine, _ = make(queue("sales", "201"), queue("support", "201"))
    assert engine.aht("sales") == 120.0
    engine.seed_handling("sales", [10.0] * 10 + [50.0] * 10 + [1000.0] * 5)  # newest first, as stored
    assert engine.aht("sales") == 30.0
    for _ in range(10):
        engine.record_handling("sales", 90.0)  # pushes out the oldest: the 50s
    assert engine.aht("sales") == 50.0
    assert engine.aht("support") == 120.0
    for seconds in range(1, 26):
        engine.record_handling("support", float(seconds))
    assert engine.aht("support") == sum(range(6, 26)) / 20


# --- snapshot ---


def test_snapshot_shows_the_line_and_each_members_state_in_this_queue() -> None:
    engine, clock = make(queue("sales", "201", "202", "203"), queue("support", "203"))
    login(engine, clock, "201", "202")
    login(engine, clock, "203", queue="support")
    engine.pause("202", "lunch")
    engine.add(call("c1", clock() - 40, name="Ann", vip=True))
    engine.add(call("cb", clock() - 30, kind="callback", entered_at=clock() - 5))
    engine.dispatch()
    assert engine.snapshot("nope") == []
    assert [q["name"] for q in engine.snapshot()] == ["sales", "support"]
    [view] = engine.snapshot("sales")
    assert view["strategy"] == "longest-idle"
    assert view["waiting"] == [
        {"id": "c1", "kind": "call", "number": "0712", "name": "Ann", "vip": True,
         "position": 1, "wait": 40.0, "ringing": ["201"]},
        {"id": "cb", "kind": "callback", "number": "0712", "name": "", "vip": False,
         "position": 2, "wait": 5.0, "ringing": []},
    ]
    assert view["agents"] == [
        {"extension": "201", "state": "ringing", "reason": "", "answered_today": 0},
        {"extension": "202", "state": "paused", "reason": "lunch", "answered_today": 0},
        {"extension": "203", "state": "logged_out", "reason": "", "answered_today": 0},
    ]
