"""Calls between extensions end to end: SIPp and raw-socket Python phones against a real box.

Every call is challenged (407), then forked to each registered contact of the target. Checked from
the outside: final statuses, who got CANCEL/BYE/ACK, the SDP each side saw, the RTP on the loopback,
and the call records written to SQLite (`switchboard calls --json`).
"""
from __future__ import annotations

import select
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import PROVISION
from peers import (
    LOCALHOST, SCENARIOS, SipPhone, free_media_port, free_port, have, invite_with_auth, new_id, register, sdp_audio,
    sdp_body,
    sipp, sipp_log_messages, start_box, start_sipp, users_file,
)

pytestmark = pytest.mark.peers
SECRETS = {"201": "s3cret-201", "202": "s3cret-202", "203": "s3cret-203"}  # as in conftest.PROVISION


# --- helpers ---------------------------------------------------------------------------------------
class Uas:
    """A SIPp server scenario running in the background on a fixed port."""

    def __init__(self, scenario: str, port: int, workdir: Path, *extra: str, timeout: int = 30) -> None:
        self.name = "uas" if scenario == "uas" else Path(scenario).stem
        source = ["-sn", "uas"] if scenario == "uas" else ["-sf", str(SCENARIOS / scenario)]
        self.workdir = workdir / f"{self.name}-{port}"  # its own folder: logs never mix with the caller's
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.process = start_sipp(*source, "-p", str(port), "-m", "1", "-timeout", str(timeout), "-timeout_error",
                                  *extra, cwd=self.workdir)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"{self.name} on port {self.port} did not finish:\n{self.errors()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def _log(self, kind: str) -> str:
        path = self.workdir / f"{self.name}_{self.process.pid}_{kind}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def errors(self) -> str:
        return self._log("errors")

    def received(self):
        return sipp_log_messages(self._log("messages"), "received")

    def sent(self):
        return sipp_log_messages(self._log("messages"), "sent")

    def wait_until(self, condition, timeout: float = 15.0) -> None:
        """Poll the message log until condition(self) holds (for scenarios that linger afterwards)."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            assert time.monotonic() < deadline, f"{self.name}: condition not met:\n{self._log('messages')[-3000:]}"
            time.sleep(0.1)


@pytest.fixture
def uas(workdir):
    """Start SIPp server scenarios; they are killed at the end if still running."""
    started: list[Uas] = []

    def make(scenario: str, port: int, *extra: str) -> Uas:
        server = Uas(scenario, port, workdir, *extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def caller_args(box, scenario: str, workdir: Path, target: str, *extra: str, user: str = "201",
                media_port: int | None = None, transport: str = "u1", timeout: int = 20) -> list[str]:
    csv = users_file(workdir, {user: SECRETS[user]}, f"caller_{user}_{new_id()}.csv")
    return [f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / scenario), "-inf", str(csv), "-s", target,
            "-m", "1", "-p", str(free_port()), "-mp", str(media_port or free_media_port()), "-t", transport,
            "-timeout", str(timeout), "-timeout_error", *extra]


def caller_dir(workdir: Path) -> Path:
    """A folder of its own for one SIPp caller, so its message log is only its own."""
    path = workdir / f"caller-{new_id()}"
    path.mkdir(parents=True)
    return path


def call(box, scenario: str, workdir: Path, target: str = "202", *extra: str, **kwargs):
    """Run a SIPp caller scenario to the end."""
    return sipp(*caller_args(box, scenario, workdir, target, *extra, **kwargs), cwd=caller_dir(workdir))


def final_status(result) -> int:
    """The final (non-challenge) status the caller got for its INVITE."""
    finals = {m.status for m in sipp_log_messages(result.messages, "received")
              if m.is_response and m.cseq_method == "INVITE" and m.status >= 200 and m.status not in (401, 407)}
    assert len(finals) == 1, finals
    return finals.pop()


def only_record(box) -> dict:
    """The one call record of this box, once it has ended."""
    rows = box.wait_for_calls(1)
    assert len(rows) == 1, rows
    return rows[0]


def register_at(box, workdir: Path, number: str = "202") -> int:
    """Register an extension with SIPp from a fresh port; a server scenario then runs on that port."""
    port = free_port()
    result = register(box, number, SECRETS[number], port, workdir)
    assert result.returncode == 0, result.errors
    return port


def in_box_range(box, port: int) -> bool:
    return box.rtp[0] <= port <= box.rtp[1]


@pytest.fixture(scope="module", autouse=True)
def long_ringing_call(tmp_path_factory):
    """A call that rings for longer than 64*T1 (32 s), the INVITE transaction's Timer B.

    Started in the background when this module starts and checked by its last test, so the wait
    overlaps the other tests instead of adding to the run time.
    """
    base = tmp_path_factory.mktemp("long-ring")
    box = start_box(base / "box", PROVISION, "--ring-timeout", "36")
    workdir = base / "peers"
    workdir.mkdir()
    port = register_at(box, workdir)
    callee = Uas("call_uas_ring.xml", port, workdir, timeout=90)
    caller_folder = caller_dir(workdir)
    caller = start_sipp(*caller_args(box, "call_uac_fail.xml", workdir, "202", timeout=90), cwd=caller_folder)
    try:
        yield box, callee, caller, caller_folder
    finally:
        callee.stop()
        if caller.poll() is None:
            caller.kill()
            caller.wait(5)
        code = box.stop()
        assert code == 0, f"box exited with {code}:\n{box.log()[-3000:]}"


# --- answered calls ----------------------------------------------------------------------------------
@pytest.mark.skipif(not have("tshark"), reason="needs tshark to watch the RTP")
def test_answered_call_with_media_both_ways_through_the_box(box, workdir, uas):
    port = register_at(box, workdir)
    callee_media, caller_media = free_media_port(), free_media_port()
    while caller_media == callee_media:
        caller_media = free_media_port()
    capture = workdir / "rtp.pcapng"
    low, high = box.rtp
    tshark = subprocess.Popen(
        ["tshark", "-i", "lo", "-q", "-w", str(capture), "-f",
         f"udp and (portrange {low}-{high + 1} or port {callee_media} or port {caller_media})"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        seen = ""
        while "Capturing on" not in seen:  # tshark says so on stderr once the capture runs
            assert time.monotonic() < deadline and tshark.poll() is None, f"tshark did not start: {seen}"
            ready, _, _ = select.select([tshark.stderr], [], [], 0.5)
            if ready:
                seen += tshark.stderr.readline()  # type: ignore[union-attr]
        callee = uas("call_uas_answer.xml", port, "-rtp_echo", "-mp", str(callee_media))
        caller = call(box, "call_uac.xml", workdir, "202", "-d", "2000", media_port=caller_media)
        assert caller.returncode == 0, caller.errors
        assert callee.wait() == 0, callee.errors()
    finally:
        tshark.send_signal(signal.SIGINT)
        tshark.wait(15)

    # SDP: each phone was told to send its RTP to the box, with the codecs it offered
    [offer] = [m for m in callee.received() if m.method == "INVITE"]
    [answer] = [m for m in sipp_log_messages(caller.messages, "received") if m.status == 200 and m.cseq_method == "INVITE"]
    offer_host, box_b, offer_formats, offer_attributes = sdp_audio(offer.sdp)
    answer_host, box_a, answer_formats, _ = sdp_audio(answer.sdp)
    assert offer_host == answer_host == "127.0.0.1"
    assert in_box_range(box, box_a) and in_box_range(box, box_b) and box_a != box_b
    assert offer_formats == ["8", "0", "101"] and "rtpmap:101 telephone-event/8000" in offer_attributes
    assert answer_formats == ["8", "101"]

    # RTP: phone -> box -> phone in both directions, never phone to phone
    fields = subprocess.run(
        ["tshark", "-r", str(capture), "-d", f"udp.port=={caller_media},rtp", "-d", f"udp.port=={callee_media},rtp",
         "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "rtp.p_type"],
        capture_output=True, text=True, timeout=60).stdout
    flows = Counter(tuple(int(x) for x in line.split("\t")) for line in fields.splitlines() if line.count("\t") == 2
                    and line.split("\t")[2])
    for src, dst in [(caller_media, box_a), (box_b, callee_media), (callee_media, box_b), (box_a, caller_media)]:
        assert flows[(src, dst, 8)] >= 10, (src, dst, flows)   # A-law (2 s of it), relayed as is
        assert flows[(src, dst, 101)] == 10, (src, dst, flows)  # every RFC 4733 event packet
    assert not [f for f in flows if {f[0], f[1]} == {caller_media, callee_media}]
    assert not [f for f in flows if f[0] in (box_a, box_b) and f[2] not in (8, 101)]

    record = only_record(box)
    assert (record["from_number"], record["to_number"], record["disposition"]) == ("201", "202", "answered")
    assert (record["answered_by"], record["hangup_by"]) == ("202", "201")
    assert record["sip_status"] in (None, 200)


def test_callee_hangs_up(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("call_uas_hangup.xml", port, "-d", "500")
    caller = call(box, "call_uac_wait_bye.xml", workdir)
    assert caller.returncode == 0, caller.errors
    assert callee.wait() == 0, callee.errors()
    [bye] = [m for m in sipp_log_messages(caller.messages, "received") if m.method == "BYE" and not m.is_response]
    assert bye.tag("From") and bye.tag("To")  # the box's BYE belongs to the caller's dialog
    record = only_record(box)
    assert (record["disposition"], record["answered_by"], record["hangup_by"]) == ("answered", "202", "202")


def test_hold_and_resume_pass_through_with_the_box_in_the_sdp(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("call_uas_hold.xml", port)
    caller = call(box, "call_uac_hold.xml", workdir)  # also sends OPTIONS inside the dialog
    assert caller.returncode == 0, caller.errors
    assert callee.wait() == 0, callee.errors()
    invites = [m for m in callee.received() if m.method == "INVITE" and not m.is_response]
    assert len(invites) == 3
    first, hold, resume = (sdp_audio(m.sdp) for m in invites)
    assert hold[0] == resume[0] == "127.0.0.1"
    assert hold[1] == resume[1] == first[1] and in_box_range(box, first[1])
    assert "sendonly" in hold[3] and "sendrecv" in resume[3]
    assert not any(m.method == "OPTIONS" for m in callee.received())  # the box answers OPTIONS itself
    answers = [m for m in sipp_log_messages(caller.messages, "received")
               if m.status == 200 and m.cseq_method == "INVITE"]
    held_answer = next(sdp_audio(m.sdp) for m in answers if m.cseq == 4)
    assert in_box_range(box, held_answer[1]) and "recvonly" in held_answer[3]
    [options_ok] = [m for m in sipp_log_messages(caller.messages, "received") if m.cseq_method == "OPTIONS"]
    assert options_ok.status == 200
    record = only_record(box)
    assert (record["disposition"], record["hangup_by"]) == ("answered", "201")


def test_sipp_builtin_uas_with_upper_case_transport_ends_cleanly(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("uas", port)
    caller = call(box, "call_uac.xml", workdir, "202", "-d", "300")
    assert caller.returncode == 0, caller.errors
    # it got the box's BYE and answered it (then it lingers 4 s in timewait: no need to sit through that)
    callee.wait_until(lambda u: any(m.status == 200 and m.cseq_method == "BYE" for m in u.sent()))
    assert not callee.errors()
    received = callee.received()
    assert any(m.method == "ACK" and not m.is_response for m in received)
    [bye] = [m for m in received if m.method == "BYE" and not m.is_response]
    assert "transport=UDP" in bye.ruri  # the box kept the contact's URI as the uas wrote it
    record = only_record(box)
    assert (record["disposition"], record["hangup_by"]) == ("answered", "201")


def test_forking_rings_every_contact_and_cancels_the_losers(box, workdir, uas):
    answering, ringing = register_at(box, workdir), register_at(box, workdir)
    loser = uas("call_uas_ring.xml", ringing)
    winner = uas("call_uas_answer.xml", answering)
    caller = call(box, "call_uac.xml", workdir, "202", "-d", "300")
    assert caller.returncode == 0, caller.errors
    assert winner.wait() == 0, winner.errors()
    assert loser.wait() == 0, loser.errors()  # it rang, got CANCEL, answered 487 and got the ACK
    methods = [m.method for m in loser.received() if not m.is_response]
    assert methods[:3] == ["INVITE", "CANCEL", "ACK"], methods
    record = only_record(box)
    assert (record["disposition"], record["answered_by"]) == ("answered", "202")


def test_call_over_tcp(box, workdir):
    """Both legs over TCP, on the same port the box serves UDP on; the callee hangs up."""
    with SipPhone(box, transport="TCP", user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        caller = start_sipp(*caller_args(box, "call_uac_wait_bye.xml", workdir, "202", transport="t1"),
                            cwd=caller_dir(workdir))
        try:
            invite = bob.request_in("INVITE", timeout=15)
            assert invite.header("Via").startswith("SIP/2.0/TCP ")
            assert "transport=tcp" in invite.header("Contact").lower()
            tag = new_id()
            bob.send(bob.reply(invite, 180, "Ringing", tag))
            bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())], sdp_body(free_media_port())))
            bob.request_in("ACK", invite.call_id)
            box_contact = invite.header("Contact").strip("<>").split(">")[0]
            bob.send(bob.build("BYE", box_contact, [("From", f"{invite.header('To')};tag={tag}"),
                                                    ("To", invite.header("From")), ("Call-ID", invite.call_id),
                                                    ("CSeq", "1 BYE")]))
            assert bob.response(invite.call_id, "BYE").status == 200
            assert caller.wait(15) == 0  # it got the box's BYE on its own TCP connection
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait(5)
    record = only_record(box)
    assert (record["disposition"], record["answered_by"], record["hangup_by"]) == ("answered", "202", "202")


def _rtp(seq: int, payload: bytes, pt: int) -> bytes:
    return bytes([0x80, pt]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + b"SSRC" + payload


def _udp(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST, port))
    sock.settimeout(2.0)
    return sock


def _drain(sock, quiet: float = 0.3) -> list[bytes]:
    """Packets waiting on a socket (stops after `quiet` seconds without one)."""
    found = []
    sock.settimeout(quiet)
    try:
        while True:
            found.append(sock.recv(2048))
    except socket.timeout:
        return found


def test_symmetric_rtp_latching_and_hold_from_the_callee(box):
    """Phones behind NAT: their SDP names a port they do not send from; the box latches to the real one."""
    with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        ann_rtp, bob_rtp, intruder = _udp(), _udp(), _udp()
        try:
            dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"], formats="0 101")  # PCMU
            invite = bob.request_in("INVITE", call_id=None)
            _, box_b, formats, _ = sdp_audio(invite.sdp)
            assert formats == ["0", "101"]
            tag = new_id()
            bob.send(bob.reply(invite, 180, "Ringing", tag))
            bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())],
                               sdp_body(free_media_port(), formats="0 101")))
            ok = ann.response(call_id, "INVITE")
            assert ok.status == 200, ok
            _, box_a, formats, _ = sdp_audio(ok.sdp)
            assert formats == ["0", "101"]
            box_contact = ok.header("Contact").strip("<>").split(">")[0]
            ann_to = ("To", ok.header("To"))
            ann.send(ann.build("ACK", box_contact, [dialog[0], ann_to, dialog[2], ("CSeq", "2 ACK")]))
            bob.request_in("ACK", invite.call_id)

            # media: each phone sends from a socket its SDP never mentioned
            bob_rtp.sendto(_rtp(1, b"bob-1", 0), (LOCALHOST, box_b))  # latches the callee's leg
            ann_rtp.sendto(_rtp(1, b"ann-1", 0), (LOCALHOST, box_a))  # latches the caller's leg, reaches bob
            assert bob_rtp.recv(2048) == _rtp(1, b"ann-1", 0)  # relayed untouched
            bob_rtp.sendto(_rtp(2, b"bob-2", 101), (LOCALHOST, box_b))
            assert ann_rtp.recv(2048) == _rtp(2, b"bob-2", 101)
            # once latched, someone else sending to the caller's relay port is not let through
            intruder.sendto(_rtp(9, b"intruder", 0), (LOCALHOST, box_a))
            ann_rtp.sendto(_rtp(2, b"ann-2", 0), (LOCALHOST, box_a))
            heard = _drain(bob_rtp)
            assert [p[12:] for p in heard] == [b"ann-2"]

            # the callee puts the call on hold: the re-INVITE crosses the box, anchored on the caller's side
            bob_dialog = [("From", f"{invite.header('To')};tag={tag}"), ("To", invite.header("From")),
                          ("Call-ID", invite.call_id)]
            box_for_bob = invite.header("Contact").strip("<>").split(">")[0]
            bob.send(bob.build("INVITE", box_for_bob, bob_dialog + [
                ("CSeq", "10 INVITE"), ("Contact", bob.contact()), ("Content-Type", "application/sdp")],
                sdp_body(free_media_port(), "sendonly")))
            hold = ann.request_in("INVITE", call_id)
            host, port, _, attributes = sdp_audio(hold.sdp)
            assert (host, port) == ("127.0.0.1", box_a) and "sendonly" in attributes
            assert hold.tag("From") == ok.tag("To") and hold.tag("To") == dialog[0][1].split("tag=")[1]
            ann.send(ann.reply(hold, 200, "OK", None, [("Contact", ann.contact())],
                               sdp_body(free_media_port(), "recvonly")))
            held = bob.response(invite.call_id, "INVITE")
            assert held.status == 200
            host, port, _, attributes = sdp_audio(held.sdp)
            assert (host, port) == ("127.0.0.1", box_b) and "recvonly" in attributes
            bob.send(bob.build("ACK", box_for_bob, bob_dialog + [("CSeq", "10 ACK")]))
            ann.request_in("ACK", call_id)

            # and hangs up
            bob.send(bob.build("BYE", box_for_bob, bob_dialog + [("CSeq", "11 BYE")]))
            bye = ann.request_in("BYE", call_id)
            ann.send(ann.reply(bye, 200, "OK"))
            assert bob.response(invite.call_id, "BYE").status == 200
        finally:
            for sock in (ann_rtp, bob_rtp, intruder):
                sock.close()
    record = only_record(box)
    assert (record["disposition"], record["answered_by"], record["hangup_by"]) == ("answered", "202", "202")


def test_late_offer_the_callers_ack_carries_the_answer_to_the_callee(box):
    """An INVITE without SDP: the callee offers in its 200, the caller answers in its ACK (RFC 3264)."""
    with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"], offer=False)
        invite = bob.request_in("INVITE")
        assert invite.body == b""
        tag, bob_media = new_id(), free_media_port()
        bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())], sdp_body(bob_media)))
        ok = ann.response(call_id, "INVITE")
        assert ok.status == 200, ok
        host, box_a, formats, _ = sdp_audio(ok.sdp)  # the callee's offer, anchored on the box
        assert host == LOCALHOST and box_a != bob_media and formats == ["8", "0", "101"]
        # the callee's ACK must wait for the caller's answer
        assert bob.poll(lambda m: not m.is_response and m.method == "ACK", timeout=0.5) is None
        box_contact = ok.header("Contact").strip("<>").split(">")[0]
        ann_media = free_media_port()
        ann.send(ann.build("ACK", box_contact, [dialog[0], ("To", ok.header("To")), dialog[2], ("CSeq", "2 ACK"),
                                                ("Content-Type", "application/sdp")], sdp_body(ann_media)))
        ack = bob.request_in("ACK", invite.call_id)
        host, box_b, formats, _ = sdp_audio(ack.sdp)
        assert host == LOCALHOST and box_b not in (ann_media, box_a) and formats == ["8", "0", "101"]
        ann.send(ann.build("BYE", box_contact, [dialog[0], ("To", ok.header("To")), dialog[2], ("CSeq", "3 BYE")]))
        bye = bob.request_in("BYE", invite.call_id)
        bob.send(bob.reply(bye, 200, "OK"))
        assert ann.response(call_id, "BYE").status == 200
    record = only_record(box)
    assert (record["disposition"], record["answered_by"], record["hangup_by"]) == ("answered", "202", "201")


def test_bye_to_the_caller_waits_for_its_ack(box):
    """RFC 3261 §15: the box, as the caller's UAS, sends no BYE before the caller has ACKed the 200."""
    with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"])
        invite = bob.request_in("INVITE")
        tag = new_id()
        bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())], sdp_body(free_media_port())))
        bob.request_in("ACK", invite.call_id)
        box_for_bob = invite.header("Contact").strip("<>").split(">")[0]
        bob.send(bob.build("BYE", box_for_bob, [("From", f"{invite.header('To')};tag={tag}"),
                                                ("To", invite.header("From")), ("Call-ID", invite.call_id),
                                                ("CSeq", "1 BYE")]))
        assert bob.response(invite.call_id, "BYE").status == 200
        ok = ann.response(call_id, "INVITE")
        assert ann.poll(lambda m: not m.is_response and m.method == "BYE", timeout=1.0) is None
        box_contact = ok.header("Contact").strip("<>").split(">")[0]
        ann.send(ann.build("ACK", box_contact, [dialog[0], ("To", ok.header("To")), dialog[2], ("CSeq", "2 ACK")]))
        bye = ann.request_in("BYE", call_id)
        ann.send(ann.reply(bye, 200, "OK"))
    record = only_record(box)
    assert (record["disposition"], record["hangup_by"]) == ("answered", "202")


# --- packet loss: RFC 3261 §17 retransmissions ------------------------------------------------------
def test_lost_invite_ack_and_bye_towards_the_callee_are_recovered(box, workdir):
    with SipPhone(box, user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        caller = start_sipp(*caller_args(box, "call_uac.xml", workdir, "202", "-d", "300"), cwd=caller_dir(workdir))
        try:
            lost = bob.request_in("INVITE", timeout=15)  # dropped: no 100, nothing
            invite = bob.request_in("INVITE", lost.call_id)  # timer A
            assert invite.header("Via") == lost.header("Via") and invite.body == lost.body
            tag = new_id()
            bob.send(bob.reply(invite, 180, "Ringing", tag))
            ok = bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())], sdp_body(free_media_port()))
            bob.send(ok)
            ack = bob.request_in("ACK", invite.call_id)
            bob.send(ok)  # as if that ACK had been lost: the box must ACK the 2xx again
            again = bob.request_in("ACK", invite.call_id)
            assert again.cseq == ack.cseq == invite.cseq
            lost_bye = bob.request_in("BYE", invite.call_id, timeout=15)  # dropped
            bye = bob.request_in("BYE", invite.call_id)  # timer E
            assert bye.header("Via") == lost_bye.header("Via")
            bob.send(bob.reply(bye, 200, "OK"))
            assert caller.wait(15) == 0
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait(5)
    record = only_record(box)
    assert (record["disposition"], record["answered_by"], record["hangup_by"]) == ("answered", "202", "201")


def test_lost_200_towards_the_caller_is_retransmitted_until_acked(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("call_uas_answer.xml", port)
    with SipPhone(box, user="201") as ann:
        dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"])
        lost = ann.response(call_id, "INVITE")  # dropped: no ACK
        assert lost.status == 200, lost
        ok = ann.response(call_id, "INVITE")  # timer G
        assert ok.raw == lost.raw
        target = ok.header("Contact").strip("<>").split(">")[0]
        to = ("To", ok.header("To"))
        ann.send(ann.build("ACK", target, [dialog[0], to, dialog[2], ("CSeq", "2 ACK")]))
        # once ACKed, the box stops resending the 200
        assert ann.poll(lambda m: m.is_response and m.call_id == call_id and m.status == 200, 1.6) is None
        ann.send(ann.build("BYE", target, [dialog[0], to, dialog[2], ("CSeq", "3 BYE")]))
        assert ann.response(call_id, "BYE").status == 200
    assert callee.wait() == 0, callee.errors()
    record = only_record(box)
    assert (record["disposition"], record["hangup_by"]) == ("answered", "201")


# --- calls that fail ------------------------------------------------------------------------------------
def test_bye_while_ringing_ends_the_attempt_like_a_cancel(box, workdir, uas):
    """RFC 3261 §15: a BYE on the early dialog; the INVITE still gets its 487 and the callee a CANCEL."""
    port = register_at(box, workdir)
    callee = uas("call_uas_ring.xml", port)
    with SipPhone(box, user="201") as ann:
        dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"])
        ringing = ann.recv(lambda m: m.is_response and m.call_id == call_id and m.status == 180, 10, "180")
        box_contact = ringing.header("Contact").strip("<>").split(">")[0]
        ann.send(ann.build("BYE", box_contact, [dialog[0], ("To", ringing.header("To")), dialog[2],
                                                ("CSeq", "3 BYE")]))
        assert ann.response(call_id, "BYE").status == 200
        terminated = ann.response(call_id, "INVITE", timeout=10)
        assert terminated.status == 487, terminated
        ann.send(ann.build("ACK", f"sip:202@{LOCALHOST}:{box.sip_port}",
                           [dialog[0], ("To", terminated.header("To")), dialog[2], ("CSeq", "2 ACK")],
                           via=terminated.header("Via").split(";rport")[0] + ";rport"))
    assert callee.wait() == 0, callee.errors()  # CANCEL, 487, ACK
    record = only_record(box)
    assert (record["disposition"], record["sip_status"], record["answered_at"]) == ("cancelled", 487, None)


def test_busy_callee_gives_486(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("call_uas_busy.xml", port)
    caller = call(box, "call_uac_fail.xml", workdir)
    assert caller.returncode == 0, caller.errors
    assert callee.wait() == 0, callee.errors()  # the box ACKed the 486
    assert final_status(caller) == 486
    record = only_record(box)
    assert (record["disposition"], record["sip_status"], record["answered_at"]) == ("busy", 486, None)


def test_unregistered_target_gives_480_and_unknown_number_404(box, workdir):
    caller = call(box, "call_uac_fail.xml", workdir, "202")
    assert caller.returncode == 0, caller.errors
    assert final_status(caller) == 480
    caller = call(box, "call_uac_fail.xml", workdir, "299")
    assert caller.returncode == 0, caller.errors
    assert final_status(caller) == 404
    rows = box.wait_for_calls(2)
    by_number = {r["to_number"]: r for r in rows}
    assert (by_number["202"]["disposition"], by_number["202"]["sip_status"]) == ("failed", 480)
    assert (by_number["299"]["disposition"], by_number["299"]["sip_status"]) == ("failed", 404)


def test_no_answer_within_the_ring_timeout(box_factory, workdir, uas):
    box = box_factory(PROVISION, "--ring-timeout", "1.5", name="quick")
    port = register_at(box, workdir)
    callee = uas("call_uas_ring.xml", port)
    caller = call(box, "call_uac_fail.xml", workdir)
    assert caller.returncode == 0, caller.errors
    assert final_status(caller) in (408, 480)
    assert callee.wait() == 0, callee.errors()  # it got CANCEL when the time ran out
    record = only_record(box)
    assert (record["disposition"], record["sip_status"]) == ("no-answer", final_status(caller))


def test_cancel_while_ringing(box, workdir, uas):
    port = register_at(box, workdir)
    callee = uas("call_uas_ring.xml", port)
    caller = call(box, "call_uac_cancel.xml", workdir)
    assert caller.returncode == 0, caller.errors
    assert callee.wait() == 0, callee.errors()
    assert [m.method for m in callee.received() if not m.is_response][:2] == ["INVITE", "CANCEL"]
    record = only_record(box)
    assert (record["disposition"], record["sip_status"], record["hangup_by"]) == ("cancelled", 487, "201")


def test_refused_invites_wrong_password_and_no_common_codec(box):
    from appliance.sip.digest import build_authorization

    with SipPhone(box, user="201") as ann:
        # a wrong password is refused (403, no fresh challenge to loop on), and no call is placed
        ruri = f"sip:202@{LOCALHOST}:{box.sip_port}"
        dialog = [("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:202@{LOCALHOST}>"),
                  ("Call-ID", new_id() + "@py")]
        via = ann.via()
        ann.send(ann.build("INVITE", ruri, dialog + [("CSeq", "1 INVITE"), ("Contact", ann.contact()),
                                                     ("Content-Type", "application/sdp")], sdp_body(4000), via=via))
        challenge = ann.response(dialog[2][1], "INVITE")
        ann.send(ann.build("ACK", ruri, [dialog[0], ("To", challenge.header("To")), dialog[2], ("CSeq", "1 ACK")],
                           via=via))
        auth = build_authorization(challenge.header("Proxy-Authenticate"), "INVITE", ruri, "201", "wrong-password")
        ann.send(ann.build("INVITE", ruri, dialog + [("CSeq", "2 INVITE"), ("Contact", ann.contact()),
                                                     ("Proxy-Authorization", auth),
                                                     ("Content-Type", "application/sdp")], sdp_body(4000)))
        again = ann.response(dialog[2][1], "INVITE")
        assert again.status == 403 and not again.header("Proxy-Authenticate")
        # G.722 alone: nothing the box can anchor without transcoding
        _, call_id = invite_with_auth(ann, box, "202", SECRETS["201"], formats="9")
        refused = ann.response(call_id, "INVITE")
    assert refused.status == 488, refused
    record = only_record(box)
    assert (record["sip_call_id"], record["disposition"], record["sip_status"]) == (call_id, "failed", 488)


# --- OPTIONS ------------------------------------------------------------------------------------------
def test_options_outside_a_dialog_is_answered(box):
    with SipPhone(box, user="201") as phone:
        call_id = new_id() + "@opt"
        phone.send(phone.build("OPTIONS", f"sip:{LOCALHOST}:{box.sip_port}", [
            ("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:{LOCALHOST}>"),
            ("Call-ID", call_id), ("CSeq", "1 OPTIONS"), ("Accept", "application/sdp")]))
        ok = phone.response(call_id, "OPTIONS")
        stray = new_id() + "@opt"
        phone.send(phone.build("OPTIONS", f"sip:202@{LOCALHOST}:{box.sip_port}", [
            ("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:202@{LOCALHOST}>;tag=nosuchdialog"),
            ("Call-ID", stray), ("CSeq", "1 OPTIONS")]))
        unknown = phone.response(stray, "OPTIONS")
    assert ok.status == 200
    allowed = {m.strip() for m in (ok.header("Allow") or "").split(",")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= allowed
    assert unknown.status == 481


def test_every_answer_but_100_carries_a_to_tag_and_retransmissions_get_the_same_one(box):
    """Issue 14, item 18: Linphone's SUBSCRIBE and PUBLISH got 405 without a To tag (RFC 3261 §8.2.6.2)."""
    with SipPhone(box, user="201") as phone:
        for method in ("SUBSCRIBE", "PUBLISH", "MESSAGE", "FOOBAR", "OPTIONS"):
            call_id = new_id() + "@tag"
            request = phone.build(method, f"sip:202@{LOCALHOST}:{box.sip_port}", [
                ("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:202@{LOCALHOST}>"),
                ("Call-ID", call_id), ("CSeq", f"1 {method}"), ("Event", "presence"), ("Expires", "60")])
            phone.send(request)
            first = phone.response(call_id, method)
            phone.send(request)  # a retransmission
            again = phone.response(call_id, method)
            assert first.tag("To") and first.tag("To") == again.tag("To"), (method, first)


# --- last: the call started with the module ------------------------------------------------------------
def test_a_phone_may_ring_for_longer_than_64_t1(long_ringing_call):
    """Timer B only runs until the first provisional response: the ring timeout (36 s) ends the call."""
    box, callee, caller, folder = long_ringing_call
    assert caller.wait(60) == 0, folder
    messages = "".join(p.read_text(errors="replace") for p in folder.glob("*_messages.log"))
    finals = {m.status for m in sipp_log_messages(messages, "received")
              if m.is_response and m.cseq_method == "INVITE" and m.status >= 200 and m.status not in (401, 407)}
    assert finals == {480}, finals  # from the ring timeout, not a local 408 at 32 s
    assert callee.wait(15) == 0, callee.errors()  # and the phone was told to stop ringing (CANCEL)
    record = only_record(box)
    assert (record["disposition"], record["sip_status"]) == ("no-answer", 480)

