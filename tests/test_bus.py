from __future__ import annotations

import logging
import threading
import time

import pytest

from appliance.bus import Event, EventBus


def test_publish_numbers_events_in_order():
    bus = EventBus()
    before = time.time()
    first = bus.publish("call.ringing", call_id="a", to="201")
    second = bus.publish("call.answered", call_id="a")
    assert isinstance(first, Event)
    assert (first.seq, second.seq) == (1, 2)
    assert first.topic == "call.ringing"
    assert first.data == {"call_id": "a", "to": "201"}
    assert before <= first.ts <= time.time()
    assert bus.last_seq == 2


def test_event_is_frozen():
    event = EventBus().publish("trunk.state", up=True)
    with pytest.raises(AttributeError):
        event.seq = 5  # type: ignore[misc]


def test_empty_topic_is_rejected():
    with pytest.raises(ValueError):
        EventBus().publish("")


def test_subscribers_get_only_their_prefix():
    bus = EventBus()
    calls: list[str] = []
    everything: list[str] = []
    bus.subscribe(lambda e: calls.append(e.topic), prefix="call.")
    bus.subscribe(lambda e: everything.append(e.topic))
    bus.publish("call.ringing")
    bus.publish("registration.changed")
    bus.publish("call.ended")
    assert calls == ["call.ringing", "call.ended"]
    assert everything == ["call.ringing", "registration.changed", "call.ended"]


def test_callbacks_run_in_publisher_thread():
    bus = EventBus()
    seen: list[int] = []
    bus.subscribe(lambda e: seen.append(threading.get_ident()))
    worker = threading.Thread(target=bus.publish, args=("call.ringing",))
    worker.start()
    worker.join()
    assert seen == [worker.ident]


def test_unsubscribe_stops_delivery_and_is_idempotent():
    bus = EventBus()
    seen: list[int] = []
    unsubscribe = bus.subscribe(lambda e: seen.append(e.seq))
    bus.publish("call.ringing")
    unsubscribe()
    unsubscribe()
    bus.publish("call.ringing")
    assert seen == [1]


def test_same_callback_twice_unsubscribes_independently():
    bus = EventBus()
    seen: list[int] = []
    first = bus.subscribe(seen.append)
    bus.subscribe(seen.append)
    first()
    event = bus.publish("call.ended")
    assert seen == [event]


def test_failing_subscriber_is_logged_and_isolated(caplog):
    bus = EventBus()
    seen: list[int] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append(e.seq))
    with caplog.at_level(logging.ERROR, logger="appliance.bus"):
        event = bus.publish("security.ban", ip="192.0.2.1")
    assert event.seq == 1
    assert seen == [1]
    assert "security.ban" in caplog.text and "boom" in caplog.text


def test_since_replays_after_seq_with_prefix():
    bus = EventBus()
    for topic in ("call.ringing", "trunk.state", "call.answered", "call.ended"):
        bus.publish(topic)
    assert [e.seq for e in bus.since(0)] == [1, 2, 3, 4]
    assert [e.seq for e in bus.since(1, prefix="call.")] == [3, 4]
    assert bus.since(4) == []


def test_ring_keeps_last_500():
    bus = EventBus()
    for i in range(600):
        bus.publish("call.ringing", i=i)
    replay = bus.since(0)
    assert len(replay) == 500
    assert replay[0].seq == 101 and replay[-1].seq == 600


def test_concurrent_publishers_get_unique_consecutive_seqs():
    bus = EventBus(history=10_000)
    delivered: list[int] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            delivered.append(event.seq)

    bus.subscribe(record)

    def worker() -> None:
        for _ in range(500):
            bus.publish("call.ringing")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delivered) == list(range(1, 4001))
    assert [e.seq for e in bus.since(0)] == list(range(1, 4001))


def test_publish_from_callback_keeps_seq_order_for_everyone():
    bus = EventBus()
    later: list[int] = []

    def chain(event: Event) -> None:
        if event.topic == "call.answered":
            bus.publish("call.screenpop", parent=event.seq)

    bus.subscribe(chain)
    bus.subscribe(lambda e: later.append(e.seq))
    bus.publish("call.answered")
    assert later == [1, 2]


def test_subscriber_may_unsubscribe_itself_during_delivery():
    bus = EventBus()
    seen: list[int] = []
    holder: dict = {}

    def once(event: Event) -> None:
        seen.append(event.seq)
        holder["unsubscribe"]()

    holder["unsubscribe"] = bus.subscribe(once)
    bus.publish("call.ringing")
    bus.publish("call.ringing")
    assert seen == [1]
