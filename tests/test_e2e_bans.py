"""Bans end to end (issue 13, findings 6 and 7): hard to dodge, kept across a restart, never against the office.

Real boxes (`switchboard run`) on 127.0.0.1; attackers send from other loopback addresses (127.0.0.x)
so that each rule can be watched on its own address. baresip holds a wrong password next to a good phone.
"""
from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from test_e2e_security import answer_challenge, box_settings, header_of, provision, status_of

from peers import LOCALHOST, SipPhone, have, start_baresip

ATTACKER = "127.0.0.3"


class Guesser:
    """A password guesser on its own loopback address: REGISTER, then a wrong answer to the challenge."""

    def __init__(self, box, host: str = ATTACKER) -> None:  # type: ignore[no-untyped-def]
        self.box = box
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def _request(self, user: str, cseq: int, call_id: str, extra: str = "") -> bytes:
        return (f"REGISTER sip:{LOCALHOST}:{self.box.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{LOCALHOST}>;tag={uuid.uuid4().hex[:8]}\r\n"
                f"To: <sip:{user}@{LOCALHOST}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@{self.host}:{self.port}>\r\nExpires: 60\r\n{extra}"
                f"Content-Length: 0\r\n\r\n").encode()

    def exchange(self, data: bytes, wait: float = 0.25) -> bytes | None:
        self.sock.sendto(data, (LOCALHOST, self.box.sip_port))
        self.sock.settimeout(wait)
        try:
            while True:
                reply = self.sock.recv(65535)
                if status_of(reply) >= 200:
                    return reply
        except socket.timeout:
            return None

    def guess(self, user: str, password: str) -> int | None:
        """One wrong guess; the final status, or None when the box no longer answers (banned)."""
        call_id = uuid.uuid4().hex
        challenge = self.exchange(self._request(user, 1, call_id))
        if challenge is None:
            return None
        uri = f"sip:{LOCALHOST}:{self.box.sip_port}"
        credentials = answer_challenge(header_of(challenge, "WWW-Authenticate") or "", "REGISTER", uri, user,
                                       password)
        answer = self.exchange(self._request(user, 2, call_id, f"Authorization: {credentials}\r\n"))
        return status_of(answer) if answer is not None else None

    def answered(self) -> bool:
        """Whether the box answers this address at all."""
        return self.exchange(self._request("201", 1, uuid.uuid4().hex)) is not None


def test_bans_survive_a_restart_show_in_status_and_are_lifted_by_hand(box_factory, tmp_path: Path) -> None:
    box_settings(tmp_path / "bans", ban_max_failures=3)
    box = box_factory(provision(), name="bans")
    guesser = Guesser(box)
    try:
        assert [guesser.guess("201", f"wrong-{i}") for i in range(3)] == [403, 403, 403]
        assert not guesser.answered()  # banned: no answer at all
        # A good login from the attacker's own account in between would not have helped (unit-tested);
        # here: the ban is listed and kept over a restart.
        listed = box.cli("ban", "list")
        assert ATTACKER in listed.stdout and "3 failed authentications" in listed.stdout, listed
        status = box.cli("status")
        assert ATTACKER in status.stdout and "blinking fast" in status.stdout, status.stdout
        assert box.stop() == 0
        box = box_factory(None, name="bans", sip_port=box.sip_port)
        guesser.box = box
        assert not guesser.answered(), "the ban was lost at restart"
        with SipPhone(box, user="202") as phone:  # the office, on another address, is not affected
            assert phone.register("202", "s3cret-202").status == 200
        lifted = box.cli("ban", "lift", ATTACKER)
        assert lifted.returncode == 0, lifted.stderr
        assert guesser.answered()
        assert ATTACKER not in box.cli("ban", "list").stdout
    finally:
        guesser.close()


def test_many_addresses_guessing_one_account_are_banned_and_the_trunk_never_is(box_factory,
                                                                                tmp_path: Path) -> None:
    box_settings(tmp_path / "spread", ban_account_failures=20, ban_max_failures=5)
    trunk_host = "127.0.0.5"
    office = provision() + f"""
[[trunks]]
name = "itsp"
host = "{trunk_host}"
port = 5099
register = false
inbound = "201"
outbound_prefix = "0"
"""
    box = box_factory(office, name="spread")
    statuses = []
    for i in range(30):  # 30 addresses, one guess each: a per-address count alone would never ban them
        guesser = Guesser(box, f"127.0.1.{10 + i}")
        try:
            statuses.append(guesser.guess("201", "wrong"))
            statuses.append(guesser.guess("201", "wrong-again") if i >= 20 else 403)
        finally:
            guesser.close()
    assert statuses[::2] == [403] * 30, statuses
    assert statuses[41::2] == [None] * 10, statuses  # from the 21st address on: banned at the first guess
    assert "every address that fails on it now is banned" in box.log()
    # Forged failures from the trunk's address (another port than the trunk's) never ban it.
    forger = Guesser(box, trunk_host)
    try:
        assert [forger.guess("201", f"forged-{i}") for i in range(8)] == [403] * 8
        assert forger.answered()
    finally:
        forger.close()
    assert trunk_host not in box.cli("ban", "list").stdout


@pytest.mark.skipif(not have("baresip"), reason="baresip is not installed")
def test_a_phone_with_a_wrong_password_does_not_lock_out_the_phones_beside_it(box_factory, tmp_path: Path) -> None:
    box = box_factory(provision(), name="office")
    wrong = start_baresip(box, "201", "not-the-password", tmp_path / "wrong")  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 3.0  # baresip 1.0 retries at once on every fresh challenge
        while "failed authentication from" not in box.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "failed authentication from" in box.log()
        time.sleep(1.0)  # not a time rule: gives a retry loop the time it needed to get banned before the fix
        assert "banned" not in box.log(), box.log()[-2000:]
        with SipPhone(box, user="202") as good:  # same address, 127.0.0.1
            assert good.register("202", "s3cret-202").status == 200
    finally:
        wrong.stop()
    assert box.log().count("failed authentication from") <= 2
