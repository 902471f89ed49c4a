"""Registrar end to end: real SIPp and a raw-socket Python phone against a real box on 127.0.0.1.

Covers digest auth (MD5, SHA-256, qop=auth, stale nonces), unknown users answered like wrong
passwords, expiry, refresh, un-registering (one contact, Contact: *), several contacts per
extension, 423 below the minimum, RFC 3581 received/rport, TCP, and REGISTER retransmissions.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from peers import (
    LOCALHOST, SCENARIOS, SipPhone, free_port, new_id, register, sipp, sipp_log_messages,
    users_file,
)
from conftest import PROVISION

pytestmark = pytest.mark.peers
SECRETS = {"201": "s3cret-201", "202": "s3cret-202", "203": "s3cret-203"}  # as in conftest.PROVISION


def run_reg(box, scenario: str, user: str, secret: str, port: int, workdir: Path, *extra: str):
    """Run one registration scenario as `user` from a fixed local port."""
    csv = users_file(workdir, {user: secret}, f"{scenario}_{user}_{port}.csv")
    return sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / scenario), "-inf", str(csv), "-m", "1",
                "-p", str(port), "-timeout", "15", "-timeout_error", *extra, cwd=workdir)


def registered(box) -> dict[str, list[dict]]:
    """Every extension's contacts as `switchboard extensions --json` lists them (one CLI run)."""
    found = {}
    for entry in box.cli_json("extensions"):
        assert entry["registered"] == bool(entry["contacts"])
        found[entry["number"]] = entry["contacts"]
    return found


def contacts(box, number: str) -> list[dict]:
    """The contacts `switchboard extensions --json` lists for one extension."""
    return registered(box)[number]


def settings_box(box_factory, tmp_path: Path, name: str, box_table: str):
    """A box whose data dir holds a switchboard.toml with the given [box] settings."""
    data = tmp_path / name
    data.mkdir()
    (data / "switchboard.toml").write_text("[box]\n" + box_table)
    return box_factory(PROVISION, "--ring-timeout", "5", name=name)


def test_wrong_password_is_refused_with_403_and_the_box_keeps_serving(box, workdir):
    port = free_port()
    wrong = run_reg(box, "reg_wrong_password.xml", "201", "not-the-password", port, workdir, "-key", "expires", "300")
    assert wrong.returncode == 0, wrong.errors
    assert box.alive()
    assert contacts(box, "201") == []
    # the same phone with the right password still gets in
    right = register(box, "201", SECRETS["201"], port, workdir)
    assert right.returncode == 0, right.errors
    [binding] = contacts(box, "201")
    assert binding["source"] == f"udp:127.0.0.1:{port}"


def _challenge_shape(response) -> tuple:
    """What an attacker can compare: status, reason, header names and values without the random parts."""
    masked = []
    for name, value in response.headers:
        if name.lower() in ("via", "from", "call-id"):
            continue
        value = re.sub(r'nonce="[^"]*"', 'nonce="…"', value)
        value = re.sub(r"sip:2\d\d@", "sip:USER@", value)
        masked.append((name, value))
    return response.status, response.reason, tuple(response.header_names), tuple(masked)


def test_unknown_user_is_answered_exactly_like_a_wrong_password(box):
    shapes = {}
    with SipPhone(box) as phone:
        for user in ("201", "299"):  # 201 exists, 299 does not
            call_id = new_id() + "@enum"
            base = [("From", f"<sip:{user}@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:{user}@{LOCALHOST}>"),
                    ("Call-ID", call_id), ("Contact", phone.contact(user)), ("Expires", "300")]
            ruri = f"sip:{LOCALHOST}:{box.sip_port}"
            phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "1 REGISTER")]))
            first = phone.response(call_id, "REGISTER")
            from appliance.sip.digest import build_authorization
            auth = build_authorization(first.header_all("WWW-Authenticate")[0], "REGISTER", ruri, user, "guess-1234")
            phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "2 REGISTER"), ("Authorization", auth)]))
            second = phone.response(call_id, "REGISTER")
            assert (first.status, second.status) == (401, 403)
            shapes[user] = (_challenge_shape(first), _challenge_shape(second))
    assert shapes["201"] == shapes["299"]
    assert box.alive()


def test_unregister_with_expires_zero(box, workdir):
    port = free_port()
    assert register(box, "202", SECRETS["202"], port, workdir).returncode == 0
    assert [c["source"] for c in contacts(box, "202")] == [f"udp:127.0.0.1:{port}"]
    gone = register(box, "202", SECRETS["202"], port, workdir, expires=0)
    assert gone.returncode == 0, gone.errors
    assert contacts(box, "202") == []


def test_unregister_finds_the_contact_whatever_the_case_of_its_parameters(box):
    """RFC 3261 19.1.4: transport=UDP and transport=udp name the same contact."""
    with SipPhone(box, user="201") as phone:
        ok = phone.register("201", SECRETS["201"], 3600, contact=phone.contact("201", ";transport=UDP"))
        assert ok.status == 200
        refreshed = phone.register("201", SECRETS["201"], 1800, contact=phone.contact("201", ";transport=udp"))
        assert refreshed.status == 200
        assert len(refreshed.header_all("Contact")) == 1, refreshed
        gone = phone.register("201", SECRETS["201"], 0, contact=f"<sip:201@127.0.0.1:{phone.port};Transport=Udp>")
        assert gone.status == 200
        assert gone.header_all("Contact") == []
    assert contacts(box, "201") == []


def test_two_contacts_for_one_extension_then_unregister_all(box, workdir):
    first, second = free_port(), free_port()
    assert register(box, "202", SECRETS["202"], first, workdir).returncode == 0
    assert register(box, "202", SECRETS["202"], second, workdir).returncode == 0
    listed = contacts(box, "202")
    assert sorted(c["source"] for c in listed) == sorted([f"udp:127.0.0.1:{first}", f"udp:127.0.0.1:{second}"])
    assert all(0 < c["expires_in"] <= 3600 for c in listed)
    wiped = run_reg(box, "reg_unregister_all.xml", "202", SECRETS["202"], free_port(), workdir)
    assert wiped.returncode == 0, wiped.errors
    assert contacts(box, "202") == []


def test_register_below_the_minimum_gets_423_with_min_expires(box, workdir):
    result = run_reg(box, "reg_too_brief.xml", "201", SECRETS["201"], free_port(), workdir, "-key", "expires", "30")
    assert result.returncode == 0, result.errors
    [answer] = [m for m in sipp_log_messages(result.messages, "received") if m.status == 423]
    assert answer.header("Min-Expires") == "60"
    assert contacts(box, "201") == []


def test_refresh_over_the_wire_and_in_the_store(box_factory, tmp_path):
    box = settings_box(box_factory, tmp_path, "short", "register_min_expires = 10\n")
    with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:
        assert ann.register("201", SECRETS["201"], 10).status == 200
        call_id = new_id() + "@refresh"
        brief = bob.register("202", SECRETS["202"], 10, call_id=call_id, cseq=1)
        assert brief.status == 200
        [contact] = brief.header_all("Contact")
        assert int(re.search(r"expires=(\d+)", contact).group(1)) <= 10
        # refresh before it runs out: same Call-ID, higher CSeq, longer lifetime
        refreshed = bob.register("202", SECRETS["202"], 120, call_id=call_id, cseq=3)
        assert refreshed.status == 200
        [contact] = refreshed.header_all("Contact")
        assert 10 < int(re.search(r"expires=(\d+)", contact).group(1)) <= 120
        # the store mirrors the refresh, not the first lifetime: refreshes are written behind, within ~1 s
        deadline = time.monotonic() + 3
        while True:
            listed = registered(box)
            [stored] = listed["202"]
            if stored["expires_in"] > 10 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stored["source"] == f"udp:127.0.0.1:{bob.port}" and stored["expires_in"] > 10
        assert listed["201"][0]["expires_in"] <= 10
        # That the 10 s binding then lapses while the refreshed one stays is a rule of time:
        # tests/test_sip_stack.py proves it on a fake clock instead of sleeping 11 s here.


def test_received_and_rport_in_the_response_and_the_binding(box, workdir):
    """RFC 3581: the answer goes back to where the request came from, and says so in the Via."""
    with SipPhone(box, user="201") as phone:
        call_id = new_id() + "@nat"
        via_port = 9  # what the phone believes; nobody listens there
        base = [("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:201@{LOCALHOST}>"),
                ("Call-ID", call_id), ("Contact", f"<sip:201@{LOCALHOST}:{via_port}>"), ("Expires", "600")]
        ruri = f"sip:{LOCALHOST}:{box.sip_port}"
        phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "1 REGISTER")],
                               via=phone.via(host="localhost", port=via_port)))
        challenge = phone.response(call_id, "REGISTER")
        from appliance.sip.digest import build_authorization
        auth = build_authorization(challenge.header_all("WWW-Authenticate")[0], "REGISTER", ruri, "201", SECRETS["201"])
        phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "2 REGISTER"), ("Authorization", auth)],
                               via=phone.via(host="localhost", port=via_port)))
        ok = phone.response(call_id, "REGISTER")
    assert ok.status == 200
    via = ok.header("Via")
    assert ";received=127.0.0.1" in via and f";rport={phone.port}" in via, via
    [binding] = contacts(box, "201")
    assert binding["contact"] == f"sip:201@{LOCALHOST}:{via_port}"
    assert binding["source"] == f"udp:127.0.0.1:{phone.port}"  # calls go where the phone really is
    # SIPp's plain ";rport" gets filled in too
    port = free_port()
    result = register(box, "202", SECRETS["202"], port, workdir)
    assert result.returncode == 0, result.errors
    [sipp_ok] = [m for m in sipp_log_messages(result.messages, "received") if m.status == 200]
    assert f";rport={port}" in sipp_ok.header("Via") and "received=127.0.0.1" in sipp_ok.header("Via")


def test_sha256_digest(box_factory, tmp_path):
    box = settings_box(box_factory, tmp_path, "sha", 'auth_algorithms = ["SHA-256", "MD5"]\n')
    with SipPhone(box, user="202") as phone:
        call_id = new_id() + "@sha"
        ruri = f"sip:{LOCALHOST}:{box.sip_port}"
        base = [("From", f"<sip:202@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:202@{LOCALHOST}>"),
                ("Call-ID", call_id), ("Contact", phone.contact()), ("Expires", "600")]
        phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "1 REGISTER")]))
        challenge = phone.response(call_id, "REGISTER")
        offered = challenge.header_all("WWW-Authenticate")
        assert [re.search(r"algorithm=([\w-]+)", c).group(1) for c in offered] == ["SHA-256", "MD5"]
        assert all('qop="auth"' in c for c in offered)
        from appliance.sip.digest import build_authorization
        wrong = build_authorization(offered[0], "REGISTER", ruri, "202", "wrong-password")
        phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "2 REGISTER"), ("Authorization", wrong)]))
        assert phone.response(call_id, "REGISTER").status == 403
        right = build_authorization(offered[0], "REGISTER", ruri, "202", SECRETS["202"])
        assert "algorithm=SHA-256" in right
        phone.send(phone.build("REGISTER", ruri, base + [("CSeq", "3 REGISTER"), ("Authorization", right)]))
        ok = phone.response(call_id, "REGISTER")
    assert ok.status == 200, ok
    assert [c["source"] for c in contacts(box, "202")] == [f"udp:127.0.0.1:{phone.port}"]



# The stale-nonce rules (RFC 7616 §3.3) are proved on a fake clock in test_sip_stack.py
# (test_an_expired_nonce_is_stale_only_for_the_right_password) instead of sleeping here.


def test_register_over_tcp(box, workdir):
    port = free_port()
    result = register(box, "202", SECRETS["202"], port, workdir, transport="t1")
    assert result.returncode == 0, result.errors
    # and the Python phone over TCP, to check the answer comes back on the same connection
    with SipPhone(box, transport="TCP", user="201") as phone:
        assert phone.register("201", SECRETS["201"], 600).status == 200
    listed = registered(box)
    [sipp_binding], [python_binding] = listed["202"], listed["201"]
    assert sipp_binding["source"] == f"tcp:127.0.0.1:{port}"
    assert "transport=tcp" in sipp_binding["contact"].lower()
    assert python_binding["source"] == f"tcp:127.0.0.1:{phone.port}"


def test_retransmitted_register_gets_the_same_answer(box):
    """RFC 3261 17.2.2: a retransmission is answered from the transaction, not processed again.

    Challenges are stateless (RFC 3261 §8.2.7, so a flood of requests holds no memory): a retransmitted
    request is challenged again, with the same headers and a fresh nonce, and either nonce works.
    """
    from appliance.sip.digest import build_authorization
    with SipPhone(box, user="201") as phone:
        call_id = new_id() + "@retx"
        ruri = f"sip:{LOCALHOST}:{box.sip_port}"
        base = [("From", f"<sip:201@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:201@{LOCALHOST}>"),
                ("Call-ID", call_id), ("Contact", phone.contact()), ("Expires", "600")]
        first = phone.build("REGISTER", ruri, base + [("CSeq", "1 REGISTER")])
        phone.send(first)
        challenge = phone.response(call_id, "REGISTER")
        phone.send(first)  # as if the 401 had been lost
        again = phone.response(call_id, "REGISTER")
        assert re.sub(rb'nonce="[^"]*"', b"N", again.raw) == re.sub(rb'nonce="[^"]*"', b"N", challenge.raw)
        auth = build_authorization(challenge.header_all("WWW-Authenticate")[0], "REGISTER", ruri, "201", SECRETS["201"])
        second = phone.build("REGISTER", ruri, base + [("CSeq", "2 REGISTER"), ("Authorization", auth)])
        phone.send(second)
        ok = phone.response(call_id, "REGISTER")
        phone.send(second)  # the same nc again: only the transaction may answer it
        ok_again = phone.response(call_id, "REGISTER")
    assert ok.status == ok_again.status == 200
    assert ok_again.header("To") == ok.header("To") and ok_again.header("Contact") == ok.header("Contact")
    assert len(contacts(box, "201")) == 1


def test_the_200_echoes_instance_and_reg_id(box):
    """Issue 14, item 19: RFC 5626 §6, as Linphone registers over TCP with outbound-style Contacts."""
    with SipPhone(box, transport="TCP", user="202") as phone:
        instance = '"<urn:uuid:00000000-0000-1000-8000-00aabbccddee>"'
        ok = phone.register("202", SECRETS["202"], 600,
                            contact=f"<sip:202@{LOCALHOST}:{phone.port};transport=tcp;ob>;+sip.instance={instance};reg-id=1")
    assert ok.status == 200, ok
    contact = ok.header("Contact")
    assert f"+sip.instance={instance}" in contact and "reg-id=1" in contact, contact
