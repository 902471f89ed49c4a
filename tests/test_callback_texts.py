"""A caller on the GSM line who asks for a callback gets a text through the same modem."""
from __future__ import annotations

from pathlib import Path

import pytest
from live_box import LiveBox
from peerkit.texts import modem_line
from queue_peers import wait_for

from appliance.store import calls as store_calls
from hw.sim.simulator import ModemSimulator

CALLER = "+447700900123"


def provision(port: str, dialect: str, sms: str) -> str:
    """One extension and the modem line."""
    return """
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-201"

""" + modem_line(port, dialect, "201", f'callback_sms = "{sms}"')


@pytest.fixture
def line(tmp_path: Path, request):  # type: ignore[no-untyped-def]
    """A box in-process with a simulated modem of the parametrized dialect, and its text."""
    dialect, sms = request.param
    sim = ModemSimulator(dialect, str(tmp_path / "modem0"))
    sim.start()
    box = LiveBox(tmp_path / "box", provision(sim.path, dialect, sms))
    wait_for(lambda: box.call(lambda: box.box.lines["gsm"].line.state) == "ready", 20, "the line ready")
    yield box, sim
    box.stop()
    sim.stop()


def ask_for_callback(box: LiveBox, line: str, created: bool = True) -> None:
    """A call from CALLER on `line`, and its callback request as the queue announces it."""
    call_id = store_calls.start_call(box.db, sip_call_id="c1", direction="inbound", line=line,
                                     from_number=CALLER, from_name="", to_number="201")
    box.box.bus.publish("callback.requested", callback_id="cb1", number=CALLER, queue="sales", created=created,
                        call_id=call_id)


@pytest.mark.parametrize("line", [("sim7600", "We will call you back.")], indirect=True)
def test_a_gsm_caller_asking_for_a_callback_gets_a_text(line) -> None:  # type: ignore[no-untyped-def]
    box, sim = line
    ask_for_callback(box, "gsm")
    sent = wait_for(lambda: sim.sms, 15, "the text")
    assert sent == [(CALLER, "We will call you back.")]
    ask_for_callback(box, "gsm", created=False)  # asked again while pending: no second text
    ask_for_callback(box, "itsp")  # a call on another line: not this modem's to text
    wait_for(lambda: box.box.callback_texts.sent, 5, "the first text's record")
    assert sim.sms == [(CALLER, "We will call you back.")]


@pytest.mark.parametrize("line", [("v253", "We will call you back.")], indirect=True)
def test_an_analog_line_texts_nobody(line) -> None:  # type: ignore[no-untyped-def]
    box, sim = line
    ask_for_callback(box, "gsm")
    ask_for_callback(box, "gsm")
    box.call(lambda: None)  # the requests were handed to the loop: this turn comes after them
    assert box.box.callback_texts.skipped == [("gsm", "an analog line cannot text")] * 2
    assert sim.sms == [] and not any(c.startswith("AT+CMGS") for c in sim.commands)
