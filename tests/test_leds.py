"""hw.leds: the status LEDs on gpiozero MockFactory pins."""
from __future__ import annotations

import logging
import time
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory

from hw import leds as leds_mod
from hw.leds import MOCK_HISTORY, PATTERNS, StatusLeds, make_pin_factory, mock_factory

PINS = {"power": 17, "trunk": 27, "modem": 22, "calls": None}


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def leds(factory):
    made = StatusLeds(PINS, pin_factory=factory)
    yield made
    made.close()


def toggles(pin, changes: int = 3, timeout: float = 10.0) -> list[bool]:
    """Wait for the pin to change state `changes` more times; the states it went through."""
    mark = len(pin.states)
    deadline = time.monotonic() + timeout
    while len(pin.states) < mark + changes:
        assert time.monotonic() < deadline, f"pin stuck at {pin.state}: {pin.states}"
        time.sleep(0.02)
    return [s.state for s in list(pin.states)[mark:mark + changes]]


def test_patterns_are_the_five_documented_ones():
    assert PATTERNS == ("off", "on", "blink", "fast_blink", "double_blink")


def test_double_blink_flashes_twice_then_rests_until_another_pattern(leds, factory):
    """ "Setup pending": two short flashes and a long dark pause, unlike any even blink."""
    pin = factory.pin(17)
    leds.show("power", "double_blink")
    toggles(pin, changes=9)
    states = list(pin.states)[-9:]
    lengths = [(b.timestamp - a.timestamp, a.state) for a, b in pairwise(states)]
    dark = sorted(length for length, lit in lengths if not lit)
    lit = [length for length, on in lengths if on]
    assert dark[-1] > 3 * max(lit), lengths  # the rest after the second flash
    assert dark[0] < 2 * max(lit), lengths   # the short gap between the two flashes
    leds.show("power", "on")
    assert pin.state is True
    count = len(pin.states)
    time.sleep(0.5)  # a step is 0.15 s: a source left running would have written by now
    assert len(pin.states) == count


def test_all_leds_start_off_and_pins_are_outputs(leds, factory):
    assert leds.state() == {"power": "off", "trunk": "off", "modem": "off", "calls": "off"}
    for pin in (17, 27, 22):
        assert factory.pin(pin).function == "output"
        assert factory.pin(pin).state is False


def test_on_and_off_drive_exactly_that_pin(leds, factory):
    leds.show("trunk", "on")
    assert factory.pin(27).state is True
    assert factory.pin(17).state is False and factory.pin(22).state is False
    leds.show("trunk", "off")
    assert factory.pin(27).state is False
    assert [s.state for s in factory.pin(27).states] == [False, True, False]


def test_blink_toggles_the_pin_until_another_pattern(leds, factory):
    leds.show("power", "blink")
    assert leds.state()["power"] == "blink"
    seen = toggles(factory.pin(17))
    assert all(a != b for a, b in pairwise(seen)), seen  # strictly alternating
    leds.show("power", "on")
    assert factory.pin(17).state is True
    count = len(factory.pin(17).states)
    leds.show("power", "off")
    assert factory.pin(17).state is False
    assert len(factory.pin(17).states) == count + 1  # no blink thread left writing


def test_fast_blink_toggles_too(leds, factory):
    leds.show("modem", "fast_blink")
    seen = toggles(factory.pin(22), changes=6)
    assert all(a != b for a, b in pairwise(seen)), seen


def test_blink_periods(leds, monkeypatch):
    """blink is 0.5 s on / 0.5 s off, fast_blink 0.1 / 0.1, in gpiozero's background thread."""
    calls = []
    led = leds._leds["power"]
    monkeypatch.setattr(led, "blink", lambda *a, **kw: calls.append((a, kw)))
    leds.show("power", "blink")
    leds.show("power", "fast_blink")
    assert calls == [((0.5, 0.5), {"background": True}), ((0.1, 0.1), {"background": True})]


def test_the_same_pattern_again_does_not_restart_the_blink(leds):
    leds.show("power", "blink")
    thread = leds._leds["power"]._blink_thread
    assert thread is not None and thread.is_alive()
    leds.show("power", "blink")
    assert leds._leds["power"]._blink_thread is thread
    leds.show("power", "fast_blink")
    assert leds._leds["power"]._blink_thread is not thread
    assert not thread.is_alive()


def test_an_led_without_a_pin_is_remembered_but_not_driven(leds, factory):
    before = dict(factory.pins)
    leds.show("calls", "blink")
    assert leds.state()["calls"] == "blink"
    assert leds.pins["calls"] is None
    assert factory.pins == before  # no pin was made for it


def test_no_fitted_led_needs_no_pin_factory(monkeypatch):
    monkeypatch.setattr(leds_mod, "make_pin_factory", lambda name="auto": pytest.fail("factory made"))
    bare = StatusLeds({"power": None})
    bare.show("power", "on")
    assert bare.state()["power"] == "on"
    bare.close()


def test_unknown_names_and_patterns_are_refused(leds):
    with pytest.raises(ValueError):
        leds.show("disk", "on")
    with pytest.raises(ValueError):
        leds.show("power", "pulse")
    with pytest.raises(ValueError):
        StatusLeds({"disk": 4}, pin_factory=MockFactory())


def test_a_pin_that_cannot_be_used_costs_only_that_led(factory, caplog):
    caplog.set_level(logging.ERROR, "switchboard.hw.leds")
    made = StatusLeds({"power": 17, "trunk": 99}, pin_factory=factory)
    try:
        made.show("trunk", "on")
        made.show("power", "on")
        assert factory.pin(17).state is True
        assert made.state()["trunk"] == "on"
        assert "trunk" in caplog.text
    finally:
        made.close()


def test_close_stops_blinking_and_releases_the_pins(factory):
    made = StatusLeds(PINS, pin_factory=factory)
    made.show("power", "fast_blink")
    thread = made._leds["power"]._blink_thread
    made.close()
    assert not thread.is_alive()
    assert factory.pin(17).function == "input"
    made.show("power", "on")  # after close: remembered only
    assert made.state()["power"] == "on"
    made.close()
    again = StatusLeds({"power": 17}, pin_factory=factory)  # the pin is free again
    again.close()


def test_auto_off_a_pi_is_the_mock_factory(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "switchboard.hw.leds")
    model = tmp_path / "model"
    model.write_text("QEMU Virtual Machine\0")
    monkeypatch.setattr(leds_mod, "MODEL_PATH", model)
    monkeypatch.setattr(leds_mod.Device, "_default_pin_factory",
                        staticmethod(lambda: pytest.fail("default factory tried off a Pi")))
    assert isinstance(make_pin_factory("auto"), MockFactory)
    monkeypatch.setattr(leds_mod, "MODEL_PATH", tmp_path / "missing")
    assert isinstance(make_pin_factory(), MockFactory)
    assert "MockFactory (not a Raspberry Pi)" in caplog.text


def test_auto_on_a_pi_uses_gpiozeros_default_and_falls_back_to_mock(tmp_path, monkeypatch, caplog):
    model = tmp_path / "model"
    model.write_text("Raspberry Pi 4 Model B Rev 1.5\0")
    monkeypatch.setattr(leds_mod, "MODEL_PATH", model)
    sentinel = MockFactory()
    monkeypatch.setattr(leds_mod.Device, "_default_pin_factory", staticmethod(lambda: sentinel))
    assert make_pin_factory("auto") is sentinel

    def broken():
        raise OSError("no /dev/gpiochip0")

    monkeypatch.setattr(leds_mod.Device, "_default_pin_factory", staticmethod(broken))
    caplog.set_level(logging.ERROR, "switchboard.hw.leds")
    assert isinstance(make_pin_factory("auto"), MockFactory)
    assert "no /dev/gpiochip0" in caplog.text


def test_named_factories(monkeypatch):
    assert isinstance(make_pin_factory("mock"), MockFactory)
    with pytest.raises(ValueError):
        make_pin_factory("wiringpi")


def test_a_string_factory_name_is_resolved_only_when_an_led_is_fitted(monkeypatch):
    asked = []
    monkeypatch.setattr(leds_mod, "make_pin_factory", lambda name="auto": asked.append(name) or MockFactory())
    StatusLeds({"power": None}, "mock").close()
    assert asked == []
    StatusLeds({"power": 5}, "mock").close()
    assert asked == ["mock"]


def test_the_boxs_mock_pins_keep_a_short_history():
    factory = mock_factory()
    made = StatusLeds({"power": 17}, pin_factory=factory)
    try:
        for _ in range(MOCK_HISTORY * 2):
            made.show("power", "on")
            made.show("power", "off")
        pin = factory.pin(17)
        assert len(pin.states) == MOCK_HISTORY
        assert pin.states[-1].state is False
    finally:
        made.close()
