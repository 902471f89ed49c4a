"""Status LEDs on GPIO pins (gpiozero): each shows off, on, blink or fast_blink."""
from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory, MockPin

log = logging.getLogger("switchboard.hw.leds")

LED_NAMES = ("power", "trunk", "modem", "calls")
PATTERNS = ("off", "on", "blink", "fast_blink", "double_blink")
FACTORIES = ("auto", "mock", "native", "lgpio", "rpigpio", "pigpio")
BLINK = {"blink": (0.5, 0.5), "fast_blink": (0.1, 0.1)}
# Two short flashes, then dark: "setup pending", unlike any even blink. One step is DOUBLE_BLINK_STEP s.
DOUBLE_BLINK = (1, 0, 1, 0, 0, 0, 0, 0, 0, 0)
DOUBLE_BLINK_STEP = 0.15
MODEL_PATH = Path("/proc/device-tree/model")
MOCK_HISTORY = 64


class _ShortMemoryPin(MockPin):
    """A MockPin that keeps only its latest state changes."""

    def clear_states(self) -> None:
        super().clear_states()
        # MockPin records every change forever: a box off a Pi blinking for weeks would grow without bound.
        self.states = deque(self.states, maxlen=MOCK_HISTORY)  # type: ignore[assignment]


def on_a_pi(model_path: Path | None = None) -> bool:
    """Whether the device tree says this is a Raspberry Pi."""
    try:
        return "raspberry pi" in (model_path or MODEL_PATH).read_text(errors="replace").lower()
    except OSError:
        return False


def mock_factory() -> MockFactory:
    """A MockFactory whose pins keep a short history (for a long-running box off a Pi)."""
    return MockFactory(pin_class=_ShortMemoryPin)


def make_pin_factory(name: str = "auto") -> Any:
    """The gpiozero pin factory for a setting: auto, mock, or a gpiozero factory name; MockFactory if it fails."""
    if name not in FACTORIES:
        raise ValueError(f"unknown pin factory {name!r} (expected one of {', '.join(FACTORIES)})")
    if name == "mock":
        log.info("status LEDs: gpiozero MockFactory (as configured)")
        return mock_factory()
    if name == "auto" and not on_a_pi():
        log.info("status LEDs: gpiozero MockFactory (not a Raspberry Pi)")
        return mock_factory()
    try:
        if name == "auto":
            # gpiozero's own choice: GPIOZERO_PIN_FACTORY if set, else lgpio, rpigpio, pigpio, native.
            factory = Device._default_pin_factory()
        else:
            (point,) = [e for e in entry_points(group="gpiozero_pin_factories") if e.name == name]
            factory = point.load()()
    except Exception as exc:  # noqa: BLE001 - a missing library or no GPIO chip: the box runs on without LEDs
        log.error("status LEDs: pin factory %s unavailable (%s); using MockFactory", name, exc)
        return mock_factory()
    log.info("status LEDs: gpiozero %s", type(factory).__name__)
    return factory


class StatusLeds:
    """The case's LEDs by name; a None pin is an LED that is not fitted (its pattern is kept, not shown)."""

    def __init__(self, pins: dict[str, int | None], pin_factory: Any = None) -> None:
        """pin_factory: a gpiozero factory, a name for make_pin_factory (resolved only if an LED is fitted), or None (auto)."""
        unknown = set(pins) - set(LED_NAMES)
        if unknown:
            raise ValueError(f"unknown LED names: {', '.join(sorted(unknown))}")
        self.pins = {name: pins.get(name) for name in LED_NAMES}
        self._lock = threading.Lock()
        self._patterns = {name: "off" for name in LED_NAMES}
        self._leds: dict[str, LED] = {}
        self._closed = False
        fitted = {name: pin for name, pin in self.pins.items() if pin is not None}
        if not fitted:
            log.info("status LEDs: none fitted")
            return
        if pin_factory is None or isinstance(pin_factory, str):
            pin_factory = make_pin_factory(pin_factory or "auto")
        self.factory = pin_factory
        for name, pin in fitted.items():
            try:
                self._leds[name] = LED(pin, pin_factory=self.factory)
            except Exception as exc:  # noqa: BLE001 - a bad or busy pin costs that LED, never the box
                log.error("status LED %s on GPIO%s unavailable: %s", name, pin, exc)

    def show(self, name: str, pattern: str) -> None:
        """Set one LED's pattern; the same pattern again changes nothing (a blink keeps its rhythm)."""
        if name not in self._patterns:
            raise ValueError(f"unknown LED {name!r}")
        if pattern not in PATTERNS:
            raise ValueError(f"unknown LED pattern {pattern!r}")
        with self._lock:
            if self._patterns[name] == pattern:
                return
            self._patterns[name] = pattern
            led = self._leds.get(name)
            if led is None or self._closed:
                return
            try:
                led.source = None  # a double blink runs as a source; any other pattern stops it first
                if pattern == "double_blink":
                    led.off()
                    led.source_delay = DOUBLE_BLINK_STEP
                    led.source = itertools.cycle(DOUBLE_BLINK)
                elif pattern == "on":
                    led.on()
                elif pattern == "off":
                    led.off()
                else:
                    on_time, off_time = BLINK[pattern]
                    led.blink(on_time, off_time, background=True)
            except Exception as exc:  # noqa: BLE001 - GPIO trouble is logged, never raised into the caller
                log.error("status LED %s: cannot show %s: %s", name, pattern, exc)

    def state(self) -> dict[str, str]:
        """Each LED's pattern, fitted or not."""
        with self._lock:
            return dict(self._patterns)

    def close(self) -> None:
        """Stop blinking and release the pins; later show() calls only remember the pattern."""
        with self._lock:
            self._closed = True
            leds, self._leds = self._leds, {}
        for name, led in leds.items():
            try:
                led.close()
            except Exception as exc:  # noqa: BLE001
                log.error("status LED %s: cannot close: %s", name, exc)
