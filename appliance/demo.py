"""`switchboard run --demo`: a small office on a simulated GSM modem, so a newcomer sees a call reach the IVR."""
from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

from hw.sim.simulator import ModemSimulator

from .bus import Event, EventBus

DEMO_CALLER = "+15555550100"
FIRST_CALL_AFTER = 5.0   # seconds after start
CALL_EVERY = 60.0        # the demo caller tries again this often
PRESS_AFTER = 4.0        # seconds after the box answers: the caller presses 1 (as tones, in band)
HANG_UP_AFTER = 40.0     # a demo call never lasts longer

PROVISION = """# Written by `switchboard run --demo`: a small office on a simulated GSM line.
[[extensions]]
number = "201"
name = "Ann"
secret = "{ann}"

[[extensions]]
number = "202"
name = "Bob"
secret = "{bob}"

[[ivr]]
name = "main"
timeout = 6
max_retries = 1
fallback = "hangup"

[ivr.options]
"1" = "extension:201"
"2" = "extension:202"

[prompts]
greeting = "Welcome to the Switchboard demo."
menu = "For Ann, press 1. For Bob, press 2."

[[modems]]
name = "gsm"
port = "{port}"
audio_port = "{port}-audio"
dialect = "sim7600"
inbound = "ivr:main"
outbound_prefix = "8"
"""


class Demo:
    """The simulated modem, the demo office's provisioning, and a caller who rings now and then."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "demo"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.modem = ModemSimulator("sim7600", str(self.folder / "usb-Switchboard_Demo_Modem-if02-port0"))
        self.secrets = self._secrets()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._caller, name="demo-caller", daemon=True)
        self._unsubscribe = lambda: None

    def _secrets(self) -> dict[str, str]:
        """Passwords for the demo's phones: made once, never a default."""
        path = self.folder / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        made = {number: secrets.token_urlsafe(9) for number in ("201", "202")}
        path.write_text(json.dumps(made))
        path.chmod(0o600)
        return made

    def provisioning(self) -> Path:
        """The demo office's provisioning file."""
        path = self.folder / "provision.toml"
        path.write_text(PROVISION.format(ann=self.secrets["201"], bob=self.secrets["202"], port=self.modem.path))
        return path

    def start(self) -> None:
        """Plug the simulated modem in (before the box opens it)."""
        self.modem.start()

    def begin(self, bus: EventBus) -> None:
        """Tell what happens, and start calling in."""
        self._unsubscribe = bus.subscribe(self._tell, "call.")
        self._thread.start()

    def stop(self) -> None:
        """Unplug the modem and stop calling."""
        self._stop.set()
        self._unsubscribe()
        if self._thread.is_alive():
            self._thread.join(5)
        self.modem.stop()

    def instructions(self, host: str, sip_port: int) -> str:
        """How to take part: which phones to register."""
        return (f"demo: a simulated GSM modem is on {self.modem.path}; a caller from {DEMO_CALLER} rings the box "
                f"{FIRST_CALL_AFTER:.0f} s from now and every {CALL_EVERY:.0f} s, and presses 1 for Ann.\n"
                f"demo: to answer as Ann, register a softphone to sip:201@{host}:{sip_port} with password "
                f"{self.secrets['201']} (Bob: 202 / {self.secrets['202']}); dial 8 + a number to call out on the "
                f"GSM line.")

    def _caller(self) -> None:
        wait = FIRST_CALL_AFTER
        while not self._stop.wait(wait):
            wait = CALL_EVERY
            if self.modem.call_state is not None:
                continue  # the line is busy
            self.modem.ring(DEMO_CALLER, "Demo caller")
            if not self._when(lambda: self.modem.audio_on, 30):
                continue
            if self._stop.wait(PRESS_AFTER):
                return
            self.modem.play_dtmf("1")
            self._when(lambda: self.modem.call_state is None, HANG_UP_AFTER)
            if self.modem.call_state is not None:
                self.modem.hangup_remote()

    def _when(self, condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        """Wait until condition() or timeout; False if it never came (or the demo stopped)."""
        for _ in range(int(timeout * 10)):
            if condition():
                return True
            if self._stop.wait(0.1):
                return False
        return condition()

    @staticmethod
    def _tell(event: Event) -> None:
        data = event.data
        if data.get("line") != "gsm":
            return
        words = {"call.started": f"GSM call from {data.get('from_number')}",
                 "call.answered": f"answered by {data.get('answered_by')}",
                 "call.ringing": f"ringing extension {data.get('extension')}",
                 "call.connected": f"talking to {data.get('answered_by')}",
                 "call.ended": f"call over ({data.get('disposition')})"}.get(event.topic)
        if words:
            print(f"demo: {words}", flush=True)
