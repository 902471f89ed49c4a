"""QueueCaller's rules of time and keys, against a fake queue service (queue_hosts.CallerHost) and a fake clock.

The end-to-end queue tests drive the same caller over SIP with SIPp; here each time rule is proved
to the tenth of a second without waiting for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from fake_loop import FakeLoop

from appliance.calls.ivr_config import Action
from appliance.calls.outbound_policy import Decision
from appliance.calls.queue_caller import CONFIRM_SECONDS, DIGIT_SECONDS, OFFER_SECONDS, QueueCaller
from appliance.calls.queue_config import Member, QueueConfig


class FakeChannel:
    """The box's end of the caller's media: what it was asked to play."""

    closed = False
    connected = False

    def __init__(self) -> None:
        self.digit_handler: Any = None
        self.played: list[Any] = []

    def set_digit_handler(self, handler: Any) -> None:
        self.digit_handler = handler

    def play(self, prompt: Any, then: Any = None, loop: bool = False) -> None:
        self.played.append(prompt)

    def stop(self) -> None:
        pass


@dataclass
class FakeCall:
    """A caller the box answered."""

    from_number: str = "0612345678"
    state: str = "answered"
    channel: FakeChannel = field(default_factory=FakeChannel)
    on_finish: list = field(default_factory=list)
    transfers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.info = SimpleNamespace(record_id="call-1", from_number=self.from_number, line="itsp")

    def transfer(self, targets: list, **callbacks: Any) -> None:
        self.transfers.append((targets, callbacks))

    def cancel_transfer(self) -> None:
        pass

    def hangup(self, by: Any) -> None:
        self.state = "ended"
        for callback in self.on_finish:
            callback()


class FakeSpeech:
    """Says nothing: every sentence is 'already played', so what follows runs on the next tick."""

    def __init__(self) -> None:
        self.said: list[list] = []

    def say(self, parts: list, play: Any) -> None:
        self.said.append(list(parts))
        play(None)


class FakeHost:
    """The queue service as QueueCaller sees it (appliance.calls.queue_hosts.CallerHost)."""

    def __init__(self, allowed: bool = True) -> None:
        self.loop = FakeLoop()
        self.now = self.loop.time
        self.bus = SimpleNamespace(publish=lambda *a, **k: None)
        self.engine = SimpleNamespace(position=lambda entry_id: 1, expected_wait=lambda queue, position: 90.0)
        self.speech = FakeSpeech()
        self.ringback_region = "eu"
        self.allowed = allowed
        self.events: list[tuple] = []

    def refusal(self, cfg: QueueConfig) -> None:
        return None

    def note_refused(self, caller: QueueCaller, outcome: str) -> None:
        self.events.append(("refused", outcome))

    def enter_line(self, caller: QueueCaller) -> None:
        caller.entry = SimpleNamespace(id="entry-1")
        self.events.append(("entered",))

    def leave_line(self, caller: QueueCaller, outcome: str, callback_id: str | None = None) -> None:
        self.events.append(("left", outcome))

    def targets_for(self, agents: tuple[str, ...], entry: Any) -> tuple[list, tuple[str, ...]]:
        return [("sip:201@phone", None, a, None) for a in agents], agents

    def caller_answered(self, caller: QueueCaller, agent: str) -> None:
        self.events.append(("answered", agent))

    def offers_missed(self, caller: QueueCaller, agents: tuple[str, ...], status: int) -> None:
        self.events.append(("missed", agents, status))

    def offers_cancelled(self, caller: QueueCaller, agents: tuple[str, ...]) -> None:
        self.events.append(("cancelled", agents))

    def caller_finished(self, caller: QueueCaller) -> None:
        self.events.append(("finished",))

    def callback_decision(self, number: str, line: str | None, dial_as: str | None = None) -> Decision:
        return Decision(self.allowed, number, "national" if self.allowed else "premium")

    def store_callback(self, caller: QueueCaller, number: str) -> str:
        self.events.append(("callback", number))
        return "cb-1"

    def hold_music(self, cfg: QueueConfig) -> None:
        return None

    def to_ivr(self, caller: QueueCaller, menu: str) -> None:
        self.events.append(("to_ivr", menu))

    def to_queue(self, caller: QueueCaller, name: str) -> None:
        self.events.append(("to_queue", name))


def waiting(host: FakeHost, call: FakeCall | None = None, **cfg: Any) -> tuple[QueueCaller, FakeCall]:
    """A caller waiting in queue `sales` (members 201)."""
    call = call or FakeCall()
    caller = QueueCaller(host, call, QueueConfig("sales", members=(Member("201"),), **cfg))  # type: ignore[arg-type]
    caller.start()
    host.loop.advance(0)
    return caller, call


def press(call: FakeCall, host: FakeHost, keys: str) -> None:
    for key in keys:
        call.channel.digit_handler(key, "rfc4733")
        host.loop.advance(0)


def test_max_wait_sends_the_caller_on_exactly_at_its_time() -> None:
    host = FakeHost()
    caller, _ = waiting(host, max_wait=60, timeout=Action("queue", "overflow"))
    host.loop.advance(59.9)
    assert ("left", "timeout") not in host.events and caller.state == "waiting"
    host.loop.advance(0.2)
    assert host.events[-2:] == [("left", "timeout"), ("to_queue", "overflow")]
    assert caller.state == "left"


def test_announcements_come_every_announce_every_seconds() -> None:
    host = FakeHost()
    waiting(host, announce_every=30)
    first = len(host.speech.said)
    host.loop.advance(29.9)
    assert len(host.speech.said) == first
    host.loop.advance(0.2)
    assert len(host.speech.said) == first + 1 and "queue_position" in host.speech.said[-1]


def test_the_callback_question_goes_back_to_holding_after_its_silence() -> None:
    host = FakeHost()
    caller, call = waiting(host)
    press(call, host, "1")
    assert caller.mode == "confirm" and "callback_confirm" in host.speech.said[-1]
    host.loop.advance(CONFIRM_SECONDS - 0.1)
    assert caller.mode == "confirm"
    host.loop.advance(0.2)
    assert caller.mode == "hold" and caller.state == "waiting"


def test_confirming_the_caller_id_keeps_the_place_as_a_callback() -> None:
    host = FakeHost()
    caller, call = waiting(host)
    press(call, host, "11")
    assert ("callback", "0612345678") in host.events and caller.state == "left"
    host.loop.advance(0)
    assert call.state == "ended"  # "we will call you back", then goodbye


def test_a_typed_number_ends_with_digit_silence_as_with_hash() -> None:
    host = FakeHost()
    caller, call = waiting(host, call=FakeCall(from_number="anonymous"))
    press(call, host, "1")
    assert caller.mode == "enter"
    press(call, host, "0698765432")
    host.loop.advance(DIGIT_SECONDS - 0.1)
    assert not [e for e in host.events if e[0] == "callback"]
    host.loop.advance(0.2)
    assert ("callback", "0698765432") in host.events


@pytest.mark.parametrize("typed", ["0698765432#", "12#"])
def test_a_number_the_policy_refuses_or_too_short_is_never_stored(typed: str) -> None:
    host = FakeHost(allowed=typed == "12#")
    caller, call = waiting(host, call=FakeCall(from_number="anonymous"))
    press(call, host, "1" + typed)
    assert not [e for e in host.events if e[0] == "callback"]
    assert caller.mode == "enter" and "invalid" in host.speech.said[-1]


def test_an_offered_callback_that_gets_no_key_says_goodbye() -> None:
    host = FakeHost()
    caller, call = waiting(host, max_wait=10, timeout=Action("callback"))
    host.loop.advance(10)
    assert caller.mode == "offer"
    host.loop.advance(OFFER_SECONDS + 0.1)
    assert call.state == "ended" and host.speech.said[-1] == ["goodbye"]


def test_hanging_up_while_waiting_is_abandoned_and_releases_the_offer() -> None:
    host = FakeHost()
    caller, call = waiting(host)
    caller.offer(("201",))
    assert caller.state == "ringing"
    call.hangup(None)
    assert host.events[-2:] == [("cancelled", ("201",)), ("left", "abandoned")]
