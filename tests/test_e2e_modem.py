"""The modem line end to end: the pty simulator as the GSM module, the real box, SIPp as the office's phones."""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from peers import LOCALHOST, SCENARIOS, free_media_port, free_port, sipp, sipp_log_messages, users_file
from office_text import ANN_AND_BOB
from peerkit.texts import modem_line
from queue_peers import AgentPhones, answering, wait_for

from hw.sim.simulator import ModemSimulator

pytestmark = pytest.mark.peers

SECRETS = {"201": "s3cret-201", "202": "b0b-likes-tea"}  # as in ANN_AND_BOB
CALLER = "+12125550123"
TONE_HZ = 1000.0


def provision(path: Path, dialect: str = "sim7600") -> str:
    """Ann (201) and Bob (202), an IVR whose key 1 rings Ann, and the modem line into that IVR (prefix 8 out)."""
    return ANN_AND_BOB + """
[[ivr]]
name = "main"
timeout = 8
max_retries = 0
fallback = "hangup"

[ivr.options]
"1" = "extension:201"

[prompts]
greeting = "Hello."
menu = "Press one."

""" + modem_line(path, dialect, "ivr:main", 'outbound_prefix = "8"')


@pytest.fixture
def dialect() -> str:
    """Which modem the simulator plays (tests parametrize it)."""
    return "sim7600"


@pytest.fixture
def modem(tmp_path: Path, dialect: str):  # type: ignore[no-untyped-def]
    """The modem simulated on a pty, as a USB modem would appear under /dev/serial/by-id."""
    sim = ModemSimulator(dialect, str(tmp_path / f"usb-Modem_{dialect}-if02-port0"))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def office(box_factory, modem, dialect: str):  # type: ignore[no-untyped-def]
    """The box with the modem line up and ready."""
    box = box_factory(provision(Path(modem.path), dialect))
    wait_for(lambda: line_status(box).get("state") == "ready", 20, "the modem line ready")
    return box


def status(box) -> dict:  # type: ignore[no-untyped-def]
    """`switchboard status --json` of the running box."""
    result = box.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def line_status(box) -> dict:  # type: ignore[no-untyped-def]
    """The gsm line's state as the box reports it."""
    return status(box).get("lines", {}).get("gsm", {})


def tone_share(pcm: bytes, hz: float = TONE_HZ) -> float:
    """How much of the audio's energy lies within 50 Hz of hz (0 to 1)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if samples.size < 1600 or not samples.any():
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / 8000)
    return float(spectrum[np.abs(freqs - hz) < 50].sum() / spectrum.sum())


def call_out(box, workdir: Path, number: str):  # type: ignore[no-untyped-def]
    """Bob dials a number from his phone (SIPp, digest auth) and waits for the box's BYE."""
    csv = users_file(workdir, {"202": SECRETS["202"]}, "bob.csv")
    return sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / "call_uac_wait_bye.xml"), "-inf", str(csv),
                "-s", number, "-m", "1", "-p", str(free_port()), "-mp", str(free_media_port()),
                "-timeout", "30", "-timeout_error", cwd=workdir)


@pytest.mark.parametrize("dialect", ["sim7600", "ec25", "v253"])
def test_call_on_the_line_reaches_the_ivr_picks_by_tone_and_talks_both_ways_with_ann(office, modem, workdir,  # type: ignore[no-untyped-def]
                                                                                     dialect: str) -> None:
    phones = AgentPhones(office, workdir, SECRETS)
    ann = phones.start("201", answering(workdir, "ann", ring_ms=300, talk_ms=None))  # echoes RTP until BYE
    try:
        modem.ring(CALLER)
        wait_for(lambda: modem.audio_on, 15, "the box answering the line")
        modem.play_dtmf("1")  # in-band: the box hears it with its Goertzel detector
        wait_for(lambda: ann.received(), 15, "Ann's phone ringing")
        wait_for(lambda: office.calls() and office.calls()[0]["answered_by"] == "201", 15, "Ann answering")
        modem.clear_received()
        modem.play_tone(TONE_HZ, 2.0)  # the caller speaks; Ann's phone echoes it back to the line
        wait_for(lambda: tone_share(modem.received()) > 0.5, 15, "the caller's tone coming back through Ann")
        modem.hangup_remote()
        assert ann.finish(20)[0] == 0  # the box sent Ann a BYE
    finally:
        phones.stop()
    record = office.wait_for_calls(1)[0]
    assert (record["line"], record["from_number"], record["answered_by"]) == ("gsm", CALLER, "201")
    assert [step.get("key") for step in record["ivr_path"] if step.get("key")] == ["1"]
    audio_on = {"sim7600": "AT+CPCMREG=1", "ec25": "AT+QPCMV=1,0", "v253": "AT+VTR"}[dialect]
    assert audio_on in modem.commands


def test_dialling_out_with_the_prefix_goes_through_the_modem(office, modem, workdir) -> None:  # type: ignore[no-untyped-def]
    modem.on_dial = "answer"
    caller = workdir / "bob"
    caller.mkdir()

    def hang_up_when_answered() -> None:
        wait_for(lambda: modem.call_state == "active", 20, "the far end answering")
        modem.hangup_remote()

    ender = threading.Thread(target=hang_up_when_answered, daemon=True)
    ender.start()
    result = call_out(office, caller, "85550100")
    ender.join(25)
    assert result.returncode == 0, result.errors
    assert "ATD5550100;" in modem.commands
    record = office.wait_for_calls(1)[0]
    assert (record["line"], record["direction"], record["to_number"], record["disposition"]) == \
        ("gsm", "outbound", "5550100", "answered")


def test_a_busy_number_on_the_line_is_a_busy_call(office, modem, workdir) -> None:  # type: ignore[no-untyped-def]
    modem.on_dial = "busy"
    csv = users_file(workdir, {"202": SECRETS["202"]}, "bob.csv")
    result = sipp(f"{LOCALHOST}:{office.sip_port}", "-sf", str(SCENARIOS / "call_uac_fail.xml"), "-inf", str(csv),
                  "-s", "85550111", "-m", "1", "-p", str(free_port()), "-mp", str(free_media_port()),
                  "-timeout", "30", "-timeout_error", cwd=workdir)
    assert result.returncode == 0, result.errors
    finals = {m.status for m in sipp_log_messages(result.messages, "received")
              if m.is_response and m.cseq_method == "INVITE" and m.status >= 200 and m.status not in (401, 407)}
    assert finals == {486}
    record = office.wait_for_calls(1)[0]
    assert (record["line"], record["disposition"]) == ("gsm", "busy")


def test_unplugged_mid_call_the_call_is_closed_and_the_line_comes_back(office, modem) -> None:  # type: ignore[no-untyped-def]
    modem.ring(CALLER)
    wait_for(lambda: modem.audio_on, 15, "the box answering the line")
    assert status(office)["leds"]["modem"]["pattern"] == "on"
    modem.unplug()
    record = office.wait_for_calls(1)[0]  # written although the line vanished mid-call
    # Only the box had answered (the IVR): not an answered call (issue 14, item 1).
    assert (record["line"], record["disposition"], record["answered_by"]) == ("gsm", "abandoned", None), record
    wait_for(lambda: line_status(office).get("state") == "down", 10, "the line marked down")
    assert status(office)["leds"]["modem"]["pattern"] == "off"
    words = office.cli("status").stdout
    assert "Modem line gsm: down" in words and "\nmodem  off" in words

    modem.replug()
    wait_for(lambda: line_status(office).get("state") == "ready", 40, "the line back after the replug")
    assert status(office)["leds"]["modem"]["pattern"] == "on"
    modem.ring(CALLER)  # and it takes calls again
    wait_for(lambda: len(office.calls()) == 2 and office.calls()[0]["answered_at"], 15, "a second call answered")
    modem.hangup_remote()


def test_garbage_on_the_port_changes_nothing(office, modem) -> None:  # type: ignore[no-untyped-def]
    modem.inject(b"\x00\xff\xfe+CLIP: garbage\r\nNO SUCH THING\r\n\x10\x03OK\r\n")
    modem.ring(CALLER)
    wait_for(lambda: modem.audio_on, 15, "the box answering the line")
    modem.hangup_remote()
    record = office.wait_for_calls(1)[0]
    assert (record["line"], record["from_number"]) == ("gsm", CALLER)
    assert line_status(office)["state"] == "ready"
    assert "Traceback" not in office.log()
    assert math.isfinite(status(office)["uptime"])


def test_demo_shows_a_gsm_call_reaching_the_ivr(box_factory) -> None:  # type: ignore[no-untyped-def]
    box = box_factory(None, "--demo", name="demo")
    record = wait_for(lambda: [r for r in box.calls() if r["ended_at"]], 60, "the demo's call")[0]
    assert (record["line"], record["from_number"]) == ("gsm", "+15555550100")
    assert [step.get("key") for step in record["ivr_path"] if step.get("key")] == ["1"]  # pressed in band
    secrets = json.loads((box.data_dir / "demo" / "secrets.json").read_text())
    assert len(secrets["201"]) >= 12  # made for this box, never a default


QUEUE = """
[[queue]]
name = "sales"
number = "600"
members = ["201"]
ring_timeout = 8
"""


def test_a_queue_callback_goes_out_on_the_modem_line(box_factory, modem, workdir) -> None:  # type: ignore[no-untyped-def]
    box = box_factory(provision(Path(modem.path)) + QUEUE)  # no SIP trunk: the modem is the only way out
    wait_for(lambda: line_status(box).get("state") == "ready", 20, "the modem line ready")
    phones = AgentPhones(box, workdir, SECRETS)
    ann = phones.start("201", answering(workdir, "ann", ring_ms=300, talk_ms=None))
    try:
        assert box.cli("agent", "login", "201").returncode == 0
        modem.on_dial = "answer"
        assert box.cli("callback", "add", "5550100", "--queue", "sales").returncode == 0
        wait_for(lambda: modem.call_state == "active", 40, "the customer answering on the GSM line")
        assert "ATD5550100;" in modem.commands
        modem.hangup_remote()
        assert ann.finish(20)[0] == 0
    finally:
        phones.stop()
    record = wait_for(lambda: [r for r in box.calls() if r["direction"] == "callback" and r["ended_at"]], 15,
                      "the callback's record")[0]
    # From the customer, to the queue that owed the call; the agent answered.
    assert (record["line"], record["from_number"], record["to_number"], record["answered_by"]) == \
        ("gsm", "5550100", "sales", "201")
