"""What the status LEDs say: bus events in, one pattern (and its meaning in words) per LED out.

power  blink       from construction until "box.ready"
       on          after "box.ready", no fault active
       double_blink  after "box.ready" while "box.setup" {pending: true}: no admin yet (the setup wizard waits)
       fast_blink  while any "box.fault" {fault, active: bool} is active (before "box.ready" too)
trunk  off         no trunk registers (none configured with register = true)
       on          every trunk that registers is "registered"
       blink       some trunk is "registering" (first attempt, or again after "unreachable"),
                   or some are registered and others not (failed/unreachable/unregistered)
       off         none is registered and none is "registering": all "failed" (retrying with
                   backoff in the background), "unreachable" or "unregistered"
modem  off         no modem line seen, or every line is down ("modem.state" in MODEM_DOWN)
       blink       a line is starting (MODEM_STARTING), up but not registered to the network,
                   up with no signal reading yet, or registered with weak signal (csq < 10 or 99)
       on          every line up, registered, csq 10-31 ("modem.signal" {line, csq, registered});
                   csq None with registered true: a line without a signal to measure (FXO), up
       blink       several lines that disagree (some on, some off)
calls  blink       a caller waits in a queue ("queue.joined" until "queue.answered"/"queue.left"/"call.ended")
       on          a call is up ("call.answered" or "call.connected" until "call.ended", by call_id;
                   IVR calls the box answered count: the box publishes call.answered for them)
       off         neither
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from hw.leds import LED_NAMES, StatusLeds

from .bus import Event, EventBus

WORDS = {"off": "off", "on": "on", "blink": "blinking", "fast_blink": "blinking fast",
         "double_blink": "flashing twice, then a pause"}
GOOD_CSQ = 10  # AT+CSQ 10 is about -93 dBm: below that, voice calls start to break up
UNKNOWN_CSQ = 99
MODEM_DOWN = frozenset({"absent", "down", "unplugged", "closed", "failed", "error", "stopped", "disabled",
                        "offline", "no_sim", "sim_error"})
MODEM_STARTING = frozenset({"starting", "init", "initialising", "initializing", "opening", "connecting",
                            "registering", "searching", "reconnecting", "retrying"})
TOPICS = ("box.", "trunk.state", "modem.", "call.", "queue.")
FAULT_WORDS = {"clock_not_synced": "the clock is not set yet (no time server reached)"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class StatusLedPolicy:
    """Subscribes to the bus and keeps each LED's pattern true to the box's state; thread-safe, no I/O."""

    def __init__(self, bus: EventBus, leds: StatusLeds, *,
                 trunks: Callable[[], Mapping[str, str]] | None = None,
                 active_calls: Callable[[], Iterable[str]] | None = None,
                 waiting_calls: Callable[[], Iterable[str]] | None = None) -> None:
        """trunks: {name: state} of the trunks that register; the others: call_ids up or waiting right now."""
        self.leds = leds
        self._trunk_source = trunks
        self._lock = threading.RLock()
        self._ready = False
        self._setup_pending = False
        self._faults: set[str] = set()
        self._modems: dict[str, dict] = {}
        self._meanings: dict[str, str] = {}
        with self._lock:
            # Subscribe, then read the snapshot: an event racing with it waits for the lock and lands after.
            self._unsubscribe = [bus.subscribe(self._on_event, prefix) for prefix in TOPICS]
            self._trunks: dict[str, str] = dict(trunks() if trunks else {})
            self._up: set[str] = set(active_calls() if active_calls else ())
            self._waiting: set[str] = set(waiting_calls() if waiting_calls else ())
            for name in LED_NAMES:
                self._update(name)

    def close(self) -> None:
        """Stop listening to the bus (the LEDs themselves are closed by their owner)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def state(self) -> dict[str, dict]:
        """Per LED: its pattern, the pattern and meaning in words, and its GPIO pin (None: not fitted)."""
        with self._lock:
            patterns = self.leds.state()
            return {name: {"pattern": patterns[name], "words": f"{WORDS[patterns[name]]} ({self._meanings[name]})",
                           "pin": self.leds.pins.get(name)} for name in LED_NAMES}

    # --- events -----------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        topic, data = event.topic, event.data
        if topic.startswith(("call.", "queue.")) and not data.get("call_id"):
            return
        with self._lock:
            if topic == "box.ready":
                self._ready = True
                self._update("power")
            elif topic == "box.setup":
                self._setup_pending = bool(data.get("pending"))
                self._update("power")
            elif topic == "box.fault":
                fault = str(data.get("fault") or "unknown")
                (self._faults.add if data.get("active", True) else self._faults.discard)(fault)
                self._update("power")
            elif topic == "trunk.state":
                self._trunk_changed(str(data.get("trunk")), str(data.get("state")))
            elif topic == "modem.state":
                self._modem_state(str(data.get("line")), str(data.get("state")))
            elif topic == "modem.signal":
                modem = self._modems.setdefault(str(data.get("line")), {"state": "up"})
                modem["csq"], modem["registered"] = data.get("csq"), bool(data.get("registered"))
                self._update("modem")
            elif topic in ("call.answered", "call.connected"):
                self._up.add(data.get("call_id"))
                self._update("calls")
            elif topic == "call.ended":
                self._up.discard(data.get("call_id"))
                self._waiting.discard(data.get("call_id"))
                self._update("calls")
            elif topic == "queue.joined":
                self._waiting.add(data.get("call_id"))
                self._update("calls")
            elif topic in ("queue.answered", "queue.left"):
                self._waiting.discard(data.get("call_id"))
                self._update("calls")

    def _trunk_changed(self, name: str, state: str) -> None:
        self._trunks[name] = state
        if self._trunk_source is not None:
            # Only trunks that register count; ones created after construction join here.
            registering = self._trunk_source()
            self._trunks = {n: self._trunks.get(n, s) for n, s in registering.items()}
        self._update("trunk")

    def _modem_state(self, line: str, state: str) -> None:
        modem = self._modems.setdefault(line, {})
        modem["state"] = state
        if state in MODEM_DOWN or state in MODEM_STARTING:
            # A stale reading would light the LED green the moment the modem comes back.
            modem.pop("csq", None)
            modem.pop("registered", None)
        self._update("modem")

    # --- decisions ----------------------------------------------------------------------------------
    def _update(self, name: str) -> None:
        pattern, meaning = getattr(self, f"_{name}")()
        self._meanings[name] = meaning
        self.leds.show(name, pattern)

    def _power(self) -> tuple[str, str]:
        if self._faults:
            return "fast_blink", "fault: " + ", ".join(FAULT_WORDS.get(f, f) for f in sorted(self._faults))
        if not self._ready:
            return "blink", "starting"
        return ("double_blink", "setup pending: open the setup page") if self._setup_pending else ("on", "all fine")

    def _trunk(self) -> tuple[str, str]:
        states = self._trunks
        if not states:
            return "off", "no trunk registers"
        up = sorted(n for n, s in states.items() if s == "registered")
        if len(up) == len(states):
            return "on", ("trunk registered" if len(up) == 1 else f"all {len(up)} trunks registered")
        pending = sorted(n for n, s in states.items() if s == "registering")
        if up:
            return "blink", f"{len(up)} of {len(states)} trunks registered"
        if pending:
            return "blink", "registering: " + ", ".join(pending)
        return "off", "not registered: " + ", ".join(f"{n} {s}" for n, s in sorted(states.items()))

    def _modem(self) -> tuple[str, str]:
        if not self._modems:
            return "off", "no modem"
        looks = {line: self._one_modem(info) for line, info in sorted(self._modems.items())}
        patterns = {pattern for pattern, _ in looks.values()}
        if len(looks) == 1:
            return next(iter(looks.values()))
        words = "; ".join(f"{line}: {meaning}" for line, (_, meaning) in looks.items())
        return (patterns.pop() if len(patterns) == 1 else "blink"), words

    @staticmethod
    def _one_modem(info: dict) -> tuple[str, str]:
        state = info.get("state", "up")
        if state in MODEM_DOWN:
            return "off", f"modem {state}"
        if state in MODEM_STARTING:
            return "blink", f"modem {state}"
        csq, registered = info.get("csq"), info.get("registered")
        if registered is None:
            return "blink", "modem up, no signal reading yet"
        if not registered:
            return "blink", "modem not registered to the network"
        if csq is None:
            return "on", "line up"  # no signal to measure: an FXO modem on an analog line
        if not isinstance(csq, int) or csq == UNKNOWN_CSQ:
            return "blink", "registered, signal unknown"
        if csq < GOOD_CSQ:
            return "blink", f"registered, weak signal (csq {csq})"
        return "on", f"registered, signal good (csq {csq})"

    def _calls(self) -> tuple[str, str]:
        up = _plural(len(self._up), "call") + " up"
        if self._waiting:
            return "blink", f"{_plural(len(self._waiting), 'caller')} waiting, {up}"
        if self._up:
            return "on", up
        return "off", "no calls"
