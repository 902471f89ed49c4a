"""The IVR end to end: SIPp calls in from the trunk and presses keys with the shipped RFC 4733 pcaps.

The box answers, plays the menu, hears the digits and hands the caller to the extension the menu
names (a registered SIPp uas). Also: SIP INFO digits, dial-by-extension, invalid keys, no input,
night mode, callback requests, hang-up, calls dialled to the menu's internal number, recording.
"""
from __future__ import annotations

import json
import socket
import sqlite3
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr_peers import Agents, ivr_caller
from office_text import extensions
from peers import (LOCALHOST, SCENARIOS, RunningBox, SipPhone, free_media_port, free_port, new_id, register, sdp_body,
                   sipp, start_sipp)

SECRETS = {"201": "s3cret-201", "202": "s3cret-202", "203": "s3cret-203"}
ALL_CLOSED = ""  # a [[hours]] table with no open day


def provision(itsp_port: int, *, hours: str | None = None, night: str | None = None, record: bool = False,
              box: str = "") -> str:
    """Extensions 201-203, a trunk delivering to ivr:main, short spoken prompts."""
    hours_table = "" if hours is None else f"""
[[hours]]
name = "office"
timezone = "Europe/Paris"
{hours}
"""
    main_extra = ""
    if hours is not None:
        main_extra += 'hours = "office"\n'
    if night is not None:
        main_extra += f'night = "{night}"\n'
    return f"""
{box}
{extensions(SECRETS, "201", "202")}
[[extensions]]
number = "203"
name = "Cleo"
secret = "{SECRETS['203']}"

[[trunks]]
name = "itsp"
host = "{LOCALHOST}"
port = {itsp_port}
inbound = "ivr:main"
{hours_table}
[[ivr]]
name = "main"
number = "500"
dial_by_extension = true
timeout = 2
digit_timeout = 1.5
max_retries = 1
fallback = "extension:203"
record = {str(record).lower()}
{main_extra}
[ivr.options]
"1" = "extension:201"
"2" = {{ to = "extension:202", label = "billing" }}
"4" = "ivr:support"
"0" = "hangup"
"*" = "callback"

[[ivr]]
name = "support"
greeting = ""
timeout = 2
max_retries = 0
fallback = "hangup"

[ivr.options]
"1" = "extension:201"

[prompts]
greeting = "Hello."
menu = "Choose."
invalid = "Wrong key."
no_input = "Nothing heard."
goodbye = "Bye."
closed = "We are closed."
"""


class Ivr:
    """A box whose trunk delivers to the IVR, and helpers to call it."""

    def __init__(self, box_factory, workdir: Path, *args: str, **options) -> None:  # type: ignore[no-untyped-def]
        self.itsp_port = free_port()
        self.box: RunningBox = box_factory(provision(self.itsp_port, **options), *args)
        self.workdir = workdir
        self.agents = Agents(workdir)

    def agent(self, number: str, scenario: str | None = None) -> None:
        """Register `number` from a SIPp uas: by default it answers and waits for BYE."""
        self.agents.start(self.box, number, SECRETS[number], SCENARIOS / scenario if scenario else None)

    def call(self, keys: str, **scenario) -> None:  # type: ignore[no-untyped-def]
        """Call in from the trunk and press keys; fail the test if SIPp does."""
        path = ivr_caller(self.workdir, keys, name=f"ivr_{len(list(self.workdir.glob('ivr_*.xml')))}", **scenario)
        result = sipp(f"{LOCALHOST}:{self.box.sip_port}", "-sf", str(path), "-p", str(self.itsp_port),
                      "-s", "4930555000", "-key", "caller", "4930123456", "-m", "1", "-mp", str(free_media_port()),
                      "-timeout", "40", "-timeout_error", cwd=self.workdir, timeout=60)
        assert result.returncode == 0, result.errors or result.stdout[-2000:] + self.box.log()[-3000:]

    def agent_answered(self, number: str) -> bool:
        """Whether the SIPp uas for `number` took a call and saw it end."""
        return self.agents.answered(number)

    def record(self) -> dict:
        [record] = self.box.wait_for_calls(1, timeout=20)
        return record

    def stop_agents(self) -> None:
        self.agents.stop()


@pytest.fixture
def ivr(box_factory, workdir):  # type: ignore[no-untyped-def]
    made: list[Ivr] = []

    def make(*args: str, **options) -> Ivr:  # type: ignore[no-untyped-def]
        made.append(Ivr(box_factory, workdir, *args, **options))
        return made[-1]

    yield make
    for one in made:
        one.stop_agents()


def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until condition() is true; fail after timeout seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def presses(record: dict) -> list[tuple[str, str]]:
    """(key, label) for each choice the caller made."""
    return [(step["key"], step.get("label", "")) for step in record["ivr_path"] if "action" in step]


def events(record: dict) -> list[str]:
    return [step["event"] for step in record["ivr_path"] if "event" in step]


@pytest.mark.parametrize("key, extension, label", [("1", "201", "extension 201"), ("2", "202", "billing")])
def test_rfc4733_digit_from_sipp_lands_where_the_menu_says(ivr, key, extension, label) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent(extension)
    office.call(key)
    assert office.agent_answered(extension)
    record = office.record()
    assert (record["direction"], record["answered_by"], record["disposition"]) == \
        ("inbound", extension, "answered"), record
    assert presses(record) == [(key, label)]
    assert record["extra"]["media"]["digits"] >= 1
    assert f"pressed {key}: {label}" in office.box.cli("calls").stdout


def test_dial_by_extension(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("203")
    office.call("203", gap_ms=300)
    assert office.agent_answered("203")
    record = office.record()
    assert record["answered_by"] == "203"
    assert presses(record) == [("203", "dialled 203")]


def test_invalid_key_then_a_valid_one(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("201")
    office.call("71", gap_ms=2500)
    assert office.agent_answered("201")
    record = office.record()
    assert events(record) == ["entered", "invalid"]
    assert presses(record) == [("1", "extension 201")]


def test_no_input_replays_then_falls_back(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("203")
    office.call("", hold_ms=16000)
    assert office.agent_answered("203")
    record = office.record()
    assert events(record) == ["entered", "no input", "no input", "fallback"]
    assert record["answered_by"] == "203"


def test_submenu_then_its_option(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("201")
    office.call("41", gap_ms=1500)
    assert office.agent_answered("201")
    record = office.record()
    assert [step["menu"] for step in record["ivr_path"] if step.get("event") == "entered"] == ["main", "support"]


def test_night_mode_plays_closed_and_hangs_up(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr(hours=ALL_CLOSED)
    office.call("", box_hangs_up=True)
    record = office.record()
    assert events(record) == ["closed"]
    assert record["hangup_by"] == "box"


def test_night_destination_takes_the_call_out_of_hours(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr(hours=ALL_CLOSED, night="extension:202")
    office.agent("202")
    office.call("")
    assert office.agent_answered("202")
    assert office.record()["answered_by"] == "202"


def test_open_hours_reach_the_menu(ivr) -> None:  # type: ignore[no-untyped-def]
    every_day = "\n".join(f'{day} = "00:00-24:00"' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    office = ivr(hours=every_day, night="extension:202")
    office.agent("201")
    office.call("1")
    assert office.agent_answered("201")
    assert office.record()["answered_by"] == "201"


def test_zero_says_goodbye_and_the_box_hangs_up(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.call("0", box_hangs_up=True)
    record = office.record()
    assert presses(record) == [("0", "hangup")]
    assert record["hangup_by"] == "box"


def test_star_requests_a_callback(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.call("*", box_hangs_up=True)
    record = office.record()
    with sqlite3.connect(office.box.data_dir / "switchboard.db") as db:
        rows = db.execute("SELECT number, state, source, call_id FROM callbacks").fetchall()
    assert rows == [("4930123456", "pending", "ivr:main", record["id"])]


def test_unregistered_extension_returns_to_the_menu(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("201")
    office.call("21", gap_ms=3500)  # 202 is not registered: back to the menu, then 1
    assert office.agent_answered("201")
    record = office.record()
    assert "unavailable" in events(record)
    assert record["answered_by"] == "201"


def test_caller_hangs_up_while_the_transfer_rings(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("201", "call_uas_ring.xml")  # rings until CANCELled
    office.call("1", hold_ms=2000)
    assert office.agent_answered("201"), "the ringing extension was not CANCELled"
    record = office.record()
    assert record["hangup_by"] == "4930123456"
    assert presses(record) == [("1", "extension 201")]


def test_no_answer_from_the_extension_returns_to_the_menu(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr("--ring-timeout", "2")
    office.agent("201", "call_uas_ring.xml")
    office.call("1", hold_ms=4000)
    assert office.agent_answered("201")
    record = office.record()
    assert {"menu": "main", "event": "unavailable", "reason": "SIP 480"} in record["ivr_path"]
    # The box answered, nobody else did (issue 14, item 1): no person in answered_by.
    assert (record["answered_by"], record["extra"]["box_answered"]) == (None, "ivr:main")
    assert record["disposition"] in ("abandoned", "handled"), record


@pytest.mark.parametrize("late_offer", [False, True], ids=["offer-in-invite", "offer-in-200"])
def test_sip_info_digits_are_heard(ivr, late_offer: bool) -> None:  # type: ignore[no-untyped-def]
    office = ivr()
    office.agent("201")
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((LOCALHOST, 0))
    with SipPhone(office.box, port=office.itsp_port, user="4930123456") as phone, media:
        call_id, tag = new_id(), new_id()
        base = [("From", f"<sip:4930123456@{LOCALHOST}>;tag={tag}"), ("To", f"<sip:4930555000@{LOCALHOST}>"),
                ("Call-ID", call_id), ("Contact", phone.contact())]
        ruri = f"sip:4930555000@{LOCALHOST}:{office.box.sip_port}"
        sdp = sdp_body(media.getsockname()[1], formats="0")
        if late_offer:
            phone.send(phone.build("INVITE", ruri, base + [("CSeq", "1 INVITE")]))
        else:
            phone.send(phone.build("INVITE", ruri, base + [("CSeq", "1 INVITE"), ("Content-Type", "application/sdp")],
                                   sdp))
        ok = phone.response(call_id, "INVITE")
        assert ok.status == 200
        assert "m=audio" in ok.sdp
        to = ok.header("To")
        dialog = [("From", base[0][1]), ("To", to), ("Call-ID", call_id)]
        if late_offer:  # the box offered in its 200: the ACK answers
            phone.send(phone.build("ACK", ruri, dialog + [("CSeq", "1 ACK"), ("Content-Type", "application/sdp")],
                                   sdp))
        else:
            phone.send(phone.build("ACK", ruri, dialog + [("CSeq", "1 ACK")]))
        media.settimeout(5)
        packet = media.recv(2048)  # the greeting, in the codec both ends agreed on
        assert (packet[0] >> 6, packet[1] & 0x7F, len(packet)) == (2, 0, 12 + 160)
        phone.send(phone.build("INFO", ruri, dialog + [("CSeq", "2 INFO"), ("Content-Type", "application/dtmf-relay")],
                               b"Signal=1\r\nDuration=160\r\n"))
        assert phone.response(call_id, "INFO").status == 200
        office.box.wait_for_calls(1, ended=False)
        wait_until(lambda: office.box.calls()[0]["answered_by"] == "201")
        phone.send(phone.build("BYE", ruri, dialog + [("CSeq", "3 BYE")]))
        assert phone.response(call_id, "BYE").status == 200
    assert office.agent_answered("201")
    record = office.record()
    assert record["answered_by"] == "201"
    assert presses(record) == [("1", "extension 201")]


def test_extension_dials_the_menu_number(box_factory, workdir) -> None:  # type: ignore[no-untyped-def]
    box = box_factory(provision(free_port()))
    with SipPhone(box, user="201") as phone:
        assert phone.register("201", SECRETS["201"]).status == 200
    # SIPp's uac_auth scenario: dials 500 with digest, holds 1 s, hangs up.
    from test_e2e_trunk import dial

    result = dial(box, workdir, "201", "500", "uac_auth.xml", "-d", "1000")
    assert result.returncode == 0, result.errors
    [record] = box.wait_for_calls(1)
    assert (record["direction"], record["to_number"], record["answered_by"]) == ("internal", "500", None)
    assert record["extra"]["box_answered"] == "ivr:main"
    assert events(record)[0] == "entered"


def test_call_is_recorded_to_wav_with_both_directions(ivr) -> None:  # type: ignore[no-untyped-def]
    office = ivr(record=True)
    office.agent("201")
    office.call("1", hold_ms=1500)
    assert office.agent_answered("201")
    record = office.record()
    path = office.box.data_dir / record["recording"]
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    heard = audio[:, 1].astype(float)
    assert np.sqrt(np.mean(heard ** 2)) > 100, "the prompts the caller heard are not in the recording"
    assert len(audio) / 8000 > 1.0
    assert json.dumps(record["ivr_path"])  # stored and decodable


def test_plain_call_is_recorded_when_the_box_records_all(box_factory, workdir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "switchboard.toml").write_text('[box]\nrecord_calls = "all"\n')
    box = box_factory(provision(free_port()))
    port = free_port()
    assert register(box, "202", SECRETS["202"], port, workdir).returncode == 0
    callee = start_sipp("-sn", "uas", "-p", str(port), "-m", "1", "-mp", str(free_media_port()), cwd=workdir)
    from test_e2e_trunk import dial

    try:
        result = dial(box, workdir, "201", "202", "uac_auth.xml", "-d", "3000")  # plays g711a.pcap
        assert result.returncode == 0, result.errors
        callee.communicate(timeout=10)
    finally:
        if callee.poll() is None:
            callee.kill()
    [record] = box.wait_for_calls(1)
    assert record["recording"].startswith("recordings/") and record["recording"].endswith(f"{record['id']}.wav")
    with wave.open(str(box.data_dir / record["recording"])) as w:
        assert w.getnchannels() == 2
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    caller = audio[:, 0].astype(float)
    assert np.sqrt(np.mean(caller ** 2)) > 100, "the caller's pcap audio is not on the left channel"
    assert len(audio) / 8000 >= 2.0
