"""What a waiting caller hears: the announcement of position and expected wait, then hold music.

A small SIP peer in the test calls in from the trunk, keeps every RTP packet the box sends, and the
test finds the spoken numbers in that audio by cross-correlation with the box's own renderings of
"1" and "2" (position 1, about 2 minutes: one agent logged in but paused, no handling times yet).
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from audio_match import ncc_peak
from peers import LOCALHOST, SipPhone, new_id, sdp_body
from queue_office import SECRETS, Office, queue_table
from queue_peers import answering

from appliance.media.g711 import ulaw_decode, ulaw_encode
from appliance.media.hold_music import default_hold_music
from appliance.media.prompts import PromptLibrary

pytestmark = pytest.mark.realtime  # audio checked against time: scripts/test runs it alone


def listen(office: Office, seconds: float) -> np.ndarray:
    """Call in from trunk itsp0 as 4930123456, keep seconds of what the box sends, hang up."""
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((LOCALHOST, 0))
    payload = bytearray()
    with SipPhone(office.box, port=office.ports[0], user="4930123456") as phone, media:
        call_id, tag = new_id(), new_id()
        base = [("From", f"<sip:4930123456@{LOCALHOST}>;tag={tag}"), ("To", f"<sip:4930555000@{LOCALHOST}>"),
                ("Call-ID", call_id), ("Contact", phone.contact())]
        ruri = f"sip:4930555000@{LOCALHOST}:{office.box.sip_port}"
        phone.send(phone.build("INVITE", ruri, base + [("CSeq", "1 INVITE"), ("Content-Type", "application/sdp")],
                               sdp_body(media.getsockname()[1], formats="0")))
        ok = phone.response(call_id, "INVITE")
        assert ok.status == 200
        dialog = [("From", base[0][1]), ("To", ok.header("To")), ("Call-ID", call_id)]
        phone.send(phone.build("ACK", ruri, dialog + [("CSeq", "1 ACK")]))
        media.settimeout(2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            packet = media.recv(2048)
            if packet[1] & 0x7F == 0:
                payload += packet[12:]
        phone.send(phone.build("BYE", ruri, dialog + [("CSeq", "2 BYE")]))
        assert phone.response(call_id, "BYE").status == 200
    return np.frombuffer(ulaw_decode(bytes(payload)), dtype="<i2").astype(np.float64)


def rendered(office: Office, text: str) -> np.ndarray:
    """The box's own rendering of a spoken text (from its prompt cache), through G.711 like the call."""
    prompt = PromptLibrary(office.box.data_dir / "prompts").speak(text)
    return np.frombuffer(ulaw_decode(ulaw_encode(prompt.pcm)), dtype="<i2").astype(np.float64)


def test_a_waiting_caller_hears_position_and_wait_then_music(office_factory) -> None:
    office = office_factory(queue_table(members=["201"], announce_every=10, announce_position=True,
                                                      announce_wait=True))
    office.login("201")
    office.cli_ok("agent", "pause", "201", "--reason", "lunch")
    heard = listen(office, 9.0)
    one, _ = ncc_peak(heard, rendered(office, "1"))
    two, _ = ncc_peak(heard, rendered(office, "2"))
    three, _ = ncc_peak(heard, rendered(office, "3"))
    assert one > 0.9 and two > 0.9, (one, two)  # "position 1", "about 2 minutes"
    assert three < 0.75, three                  # a number it did not say: about 0.45
    music = np.frombuffer(ulaw_decode(ulaw_encode(default_hold_music()[:16000])), dtype="<i2").astype(np.float64)
    found, _ = ncc_peak(heard, music)
    assert found > 0.9, found  # then the default hold music (its first second)
    entries = office.wait_entries(1, "abandoned")
    assert [e["number"] for e in entries] == ["4930123456"]


def test_the_agent_hears_who_the_callback_is_for_before_the_customer_is_dialled(office_factory, workdir: Path) -> None:
    office = office_factory(queue_table(members=["201"]))
    office.cli_ok("callback", "add", "4930960001", "--queue", "sales")
    customer = office.customer(answering(workdir, "customer", ring_ms=300, talk_ms=None), 1)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((LOCALHOST, 0))
    payload = bytearray()
    with SipPhone(office.box, user="201") as phone, media:
        assert phone.register("201", SECRETS["201"]).status == 200
        office.login("201")  # the callback is due and the agent is free: the agent's phone rings first
        invite = phone.request_in("INVITE", timeout=10)
        assert "4930960001" in invite.header("From")  # the phone shows who the callback is for
        phone.send(phone.reply(invite, 200, "OK", to_tag=new_id(), extra=[("Contact", phone.contact())],
                               body=sdp_body(media.getsockname()[1], formats="0")))
        ack = phone.request_in("ACK")
        media.settimeout(2)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                packet = media.recv(2048)
            except TimeoutError:  # the customer's SIPp sends no audio once the two are bridged
                break
            if packet[1] & 0x7F == 0:
                payload += packet[12:]
        dialog = [("From", ack.header("To")), ("To", ack.header("From")), ("Call-ID", ack.call_id)]
        ruri = f"sip:{LOCALHOST}:{office.box.sip_port}"
        phone.send(phone.build("BYE", ruri, dialog + [("CSeq", "1 BYE")]))
        assert phone.response(ack.call_id, "BYE").status == 200
    heard = np.frombuffer(ulaw_decode(bytes(payload)), dtype="<i2").astype(np.float64)
    whisper, _ = ncc_peak(heard, rendered(office, "Callback for 4 9 3 0 9 6 0 0 0 1, waited 1 minute."))
    other, _ = ncc_peak(heard, rendered(office, "Callback for 4 9 3 0 9 6 0 0 0 2, waited 1 minute."))
    assert whisper > 0.95 and other < 0.9, (whisper, other)  # one digit apart: about 0.73
    code, output = customer.finish(15)
    assert code == 0, output  # the customer was dialled after the whisper and hung up on when the agent left
