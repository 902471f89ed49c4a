"""The LED policy driven by real bus events, read back from MockFactory pins."""
from __future__ import annotations

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.bus import EventBus
from appliance.status_leds import StatusLedPolicy
from hw.leds import StatusLeds

PINS = {"power": 5, "trunk": 6, "modem": 13, "calls": 19}


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def leds(factory):
    made = StatusLeds(PINS, pin_factory=factory)
    yield made
    made.close()


@pytest.fixture
def policy(bus, leds):
    made = StatusLedPolicy(bus, leds)
    yield made
    made.close()


def shown(leds: StatusLeds, factory: MockFactory, name: str) -> str:
    """The LED's pattern, checked against its pin: lit or dark for on/off, toggling for a blink."""
    pattern = leds.state()[name]
    pin = factory.pin(PINS[name])
    if pattern in ("on", "off"):
        assert pin.state is (pattern == "on"), f"{name} is {pattern} but its pin is {pin.state}"
        return pattern
    mark = len(pin.states)
    deadline = time.monotonic() + 10
    while len(pin.states) < mark + 2:
        assert time.monotonic() < deadline, f"{name} is {pattern} but its pin does not toggle"
        time.sleep(0.02)
    return pattern


def call(bus: EventBus, topic: str, call_id: str, **data) -> None:
    bus.publish(topic, call_id=call_id, direction="inbound", line="ext", from_number="201", **data)


# --- power ------------------------------------------------------------------------------------------
def test_power_blinks_while_starting_then_steady(bus, leds, factory, policy):
    assert shown(leds, factory, "power") == "blink"
    assert policy.state()["power"]["words"] == "blinking (starting)"
    bus.publish("box.ready", sip_port=5060)
    assert shown(leds, factory, "power") == "on"
    assert policy.state()["power"]["words"] == "on (all fine)"


def test_power_fast_blinks_while_any_fault_is_active(bus, leds, factory, policy):
    bus.publish("box.ready", sip_port=5060)
    bus.publish("box.fault", fault="disk full", active=True)
    assert shown(leds, factory, "power") == "fast_blink"
    bus.publish("box.fault", fault="modem gone", active=True)
    bus.publish("box.fault", fault="disk full", active=False)
    assert leds.state()["power"] == "fast_blink"
    assert policy.state()["power"]["words"] == "blinking fast (fault: modem gone)"
    bus.publish("box.fault", fault="modem gone", active=False)
    assert shown(leds, factory, "power") == "on"


def test_a_fault_while_starting_wins_and_clearing_it_goes_back_to_starting(bus, leds, policy):
    bus.publish("box.fault", fault="store", active=True)
    assert leds.state()["power"] == "fast_blink"
    bus.publish("box.fault", fault="store", active=False)
    assert leds.state()["power"] == "blink"


# --- trunk ------------------------------------------------------------------------------------------
def test_trunk_off_without_trunks_then_blink_while_registering_then_on(bus, leds, factory, policy):
    assert shown(leds, factory, "trunk") == "off"
    assert policy.state()["trunk"]["words"] == "off (no trunk registers)"
    bus.publish("trunk.state", trunk="carrier", state="registering", error=None)
    assert shown(leds, factory, "trunk") == "blink"
    bus.publish("trunk.state", trunk="carrier", state="registered", error=None)
    assert shown(leds, factory, "trunk") == "on"


def test_trunk_blinks_when_only_some_are_registered_and_is_off_when_none_is(bus, leds, factory, policy):
    bus.publish("trunk.state", trunk="a", state="registered", error=None)
    bus.publish("trunk.state", trunk="b", state="failed", error="403 Forbidden")
    assert leds.state()["trunk"] == "blink"
    assert policy.state()["trunk"]["words"] == "blinking (1 of 2 trunks registered)"
    bus.publish("trunk.state", trunk="a", state="unreachable", error="no answer to OPTIONS")
    assert shown(leds, factory, "trunk") == "off"
    bus.publish("trunk.state", trunk="a", state="registering", error=None)
    assert leds.state()["trunk"] == "blink"
    bus.publish("trunk.state", trunk="a", state="registered", error=None)
    bus.publish("trunk.state", trunk="b", state="registered", error=None)
    assert leds.state()["trunk"] == "on"
    bus.publish("trunk.state", trunk="b", state="unregistered", error=None)
    assert leds.state()["trunk"] == "blink"


def test_only_trunks_that_register_count(bus, leds):
    registering = {"carrier": "registered"}
    policy = StatusLedPolicy(bus, leds, trunks=lambda: dict(registering))
    try:
        assert leds.state()["trunk"] == "on"  # read at start: the trunk registered before the policy existed
        bus.publish("trunk.state", trunk="peering", state="failed", error="cannot resolve")  # register = false
        assert leds.state()["trunk"] == "on"
        registering["late"] = "unregistered"
        bus.publish("trunk.state", trunk="late", state="registering", error=None)
        assert leds.state()["trunk"] == "blink"
    finally:
        policy.close()


# --- modem ------------------------------------------------------------------------------------------
def test_modem_off_when_absent_blink_while_starting_or_weak_on_when_good(bus, leds, factory, policy):
    assert shown(leds, factory, "modem") == "off"
    assert policy.state()["modem"]["words"] == "off (no modem)"
    bus.publish("modem.state", line="gsm", state="initialising")
    assert shown(leds, factory, "modem") == "blink"
    bus.publish("modem.state", line="gsm", state="ready")
    assert leds.state()["modem"] == "blink"  # up, but no signal reading yet
    bus.publish("modem.signal", line="gsm", csq=5, registered=True)
    assert leds.state()["modem"] == "blink"
    assert "weak signal (csq 5)" in policy.state()["modem"]["words"]
    bus.publish("modem.signal", line="gsm", csq=18, registered=True)
    assert shown(leds, factory, "modem") == "on"
    bus.publish("modem.signal", line="gsm", csq=99, registered=True)
    assert leds.state()["modem"] == "blink"
    bus.publish("modem.signal", line="gsm", csq=20, registered=False)
    assert leds.state()["modem"] == "blink"
    bus.publish("modem.signal", line="gsm", csq=10, registered=True)
    assert leds.state()["modem"] == "on"


def test_modem_unplugged_goes_off_and_a_stale_reading_does_not_relight_it(bus, leds, factory, policy):
    bus.publish("modem.state", line="gsm", state="ready")
    bus.publish("modem.signal", line="gsm", csq=25, registered=True)
    assert leds.state()["modem"] == "on"
    bus.publish("modem.state", line="gsm", state="down")
    assert shown(leds, factory, "modem") == "off"
    bus.publish("modem.state", line="gsm", state="ready")
    assert leds.state()["modem"] == "blink"
    bus.publish("modem.signal", line="gsm", csq=25, registered=True)
    assert leds.state()["modem"] == "on"
    bus.publish("modem.state", line="gsm", state="absent")
    assert leds.state()["modem"] == "off"


def test_two_modems_that_disagree_blink(bus, leds, policy):
    bus.publish("modem.signal", line="gsm", csq=25, registered=True)
    bus.publish("modem.state", line="fxo", state="down")
    assert leds.state()["modem"] == "blink"
    assert policy.state()["modem"]["words"].startswith("blinking (fxo: modem down; gsm: ")
    bus.publish("modem.signal", line="fxo", csq=None, registered=True)  # stale: the line is still down
    assert leds.state()["modem"] == "blink"
    bus.publish("modem.state", line="fxo", state="ready")
    bus.publish("modem.signal", line="fxo", csq=None, registered=True)  # an analog line: nothing to measure
    assert leds.state()["modem"] == "on"
    assert policy.state()["modem"]["words"] == "on (fxo: line up; gsm: registered, signal good (csq 25))"


# --- calls ------------------------------------------------------------------------------------------
def test_calls_on_while_a_call_is_up(bus, leds, factory, policy):
    call(bus, "call.started", "c1", to_number="202")
    call(bus, "call.ringing", "c1", to_number="202")
    assert shown(leds, factory, "calls") == "off"  # ringing is not up
    call(bus, "call.answered", "c1", answered_by="202")
    assert shown(leds, factory, "calls") == "on"
    call(bus, "call.started", "c2", to_number="500")
    call(bus, "call.answered", "c2", answered_by="ivr")  # the box answered: an IVR call is up too
    call(bus, "call.ended", "c1", disposition="answered")
    assert leds.state()["calls"] == "on"
    assert policy.state()["calls"]["words"] == "on (1 call up)"
    call(bus, "call.ended", "c2", disposition="answered")
    assert shown(leds, factory, "calls") == "off"


def test_calls_blink_while_a_caller_waits_in_a_queue(bus, leds, factory, policy):
    call(bus, "call.answered", "talk", answered_by="201")
    call(bus, "call.answered", "w1", answered_by="ivr")
    bus.publish("queue.joined", queue="sales", call_id="w1", number="0611", vip=False, position=1)
    assert shown(leds, factory, "calls") == "blink"  # waiting wins over a call up
    assert policy.state()["calls"]["words"] == "blinking (1 caller waiting, 2 calls up)"
    bus.publish("queue.answered", queue="sales", call_id="w1", agent="202", wait=3.0)
    assert shown(leds, factory, "calls") == "on"
    bus.publish("queue.joined", queue="sales", call_id="w2", number="0612", vip=False, position=1)
    assert leds.state()["calls"] == "blink"
    bus.publish("queue.left", queue="sales", call_id="w2", outcome="callback", wait=9.0)
    assert leds.state()["calls"] == "on"
    bus.publish("queue.joined", queue="sales", call_id="w3", number="0613", vip=False, position=1)
    call(bus, "call.ended", "w3", disposition="answered")  # hung up while waiting
    for call_id in ("talk", "w1"):
        call(bus, "call.ended", call_id, disposition="answered")
    assert shown(leds, factory, "calls") == "off"


def test_calls_and_waiters_already_there_at_start(bus, leds):
    policy = StatusLedPolicy(bus, leds, active_calls=lambda: ["a"], waiting_calls=lambda: ["b"])
    try:
        assert leds.state()["calls"] == "blink"
        bus.publish("queue.left", queue="sales", call_id="b", outcome="abandoned", wait=1.0)
        assert leds.state()["calls"] == "on"
        call(bus, "call.ended", "a", disposition="answered")
        assert leds.state()["calls"] == "off"
    finally:
        policy.close()


def test_events_from_many_threads_at_once(bus, leds, factory, policy):
    def caller(n: int) -> None:
        for i in range(50):
            call(bus, "call.answered", f"{n}-{i}", answered_by="201")
            bus.publish("queue.joined", queue="q", call_id=f"{n}-{i}", number="1", vip=False, position=1)
            bus.publish("queue.answered", queue="q", call_id=f"{n}-{i}", agent="201", wait=0.0)
            call(bus, "call.ended", f"{n}-{i}", disposition="answered")

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    call(bus, "call.answered", "long", answered_by="201")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shown(leds, factory, "calls") == "on"
    assert policy.state()["calls"]["words"] == "on (1 call up)"
    call(bus, "call.ended", "long", disposition="answered")
    assert shown(leds, factory, "calls") == "off"


# --- the whole ---------------------------------------------------------------------------------------
def test_state_lists_every_led_with_pattern_words_and_pin(bus, factory):
    leds = StatusLeds({"power": 5, "calls": None}, pin_factory=factory)
    policy = StatusLedPolicy(bus, leds)
    try:
        bus.publish("box.ready", sip_port=5060)
        state = policy.state()
        assert list(state) == ["power", "trunk", "modem", "calls"]
        assert state["power"] == {"pattern": "on", "words": "on (all fine)", "pin": 5}
        assert state["calls"] == {"pattern": "off", "words": "off (no calls)", "pin": None}
    finally:
        policy.close()
        leds.close()


def test_close_stops_listening(bus, leds, policy):
    policy.close()
    bus.publish("box.ready", sip_port=5060)
    call(bus, "call.answered", "x", answered_by="201")
    assert leds.state()["power"] == "blink" and leds.state()["calls"] == "off"


def test_other_events_change_nothing(bus, leds, policy):
    before = leds.state()
    bus.publish("callback.requested", callback_id="1", number="0611", queue="sales")
    bus.publish("registration.changed", extension="201", contacts=[])
    bus.publish("call.answered", answered_by="201")  # no call_id: ignored, not counted forever
    assert leds.state() == before


# --- settings ---------------------------------------------------------------------------------------
def test_led_settings_from_switchboard_toml(tmp_path):
    from appliance.config import load_settings

    assert (load_settings(tmp_path).led_power_pin, load_settings(tmp_path).led_pin_factory) == (None, "auto")
    (tmp_path / "switchboard.toml").write_text('[box]\nled_power_pin = 17\nled_calls_pin = 0\n'
                                               'led_pin_factory = "lgpio"\n')
    settings = load_settings(tmp_path)
    assert (settings.led_power_pin, settings.led_trunk_pin, settings.led_modem_pin, settings.led_calls_pin,
            settings.led_pin_factory) == (17, None, None, 0, "lgpio")


@pytest.mark.parametrize("line, problem", [
    ("led_power_pin = 28", "box.led_power_pin: expected an integer 0-27, got 28"),
    ("led_trunk_pin = -1", "box.led_trunk_pin: expected an integer 0-27"),
    ('led_modem_pin = "17"', 'box.led_modem_pin: expected an integer 0-27, got "17"'),
    ("led_calls_pin = true", "box.led_calls_pin: expected an integer 0-27, got true"),
    ('led_pin_factory = "wiringpi"', "box.led_pin_factory: expected one of auto, mock, native, lgpio"),
    ("led_power_pin = 17\nled_calls_pin = 17", "box.led_calls_pin: GPIO17 is already led_power_pin"),
])
def test_bad_led_settings_are_refused(tmp_path, line, problem):
    from appliance.config import ConfigError, load_settings

    (tmp_path / "switchboard.toml").write_text(f"[box]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert problem in str(caught.value)
