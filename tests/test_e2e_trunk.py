"""Trunks end to end: SIPp plays the ITSP on 127.0.0.1 (registrar, keepalive target, caller, callee).

Covers: REGISTER upstream with digest on 401 and on 407, refresh before expiry, backoff while the
ITSP is down, OPTIONS keepalive, calls from the trunk to its `inbound` extension, calls out through
the prefix (the ITSP challenges the INVITE), and who may dial out (authenticated extensions only,
international numbers only where allowed).
"""
from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from peers import (LOCALHOST, SCENARIOS, RunningBox, SippResult, free_port, have, register, sipp, start_sipp,
                   users_file)

pytestmark = pytest.mark.skipif(not have("sipp"), reason="SIPp (sip-tester) is not installed")

ITSP_USER, ITSP_SECRET = "office", "trunk-secret"
SECRETS = {"201": "s3cret-201", "202": "s3cret-202", "203": "s3cret-203"}


# --- helpers ------------------------------------------------------------------------------------

def provision(itsp_port: int, *, register_trunk: bool = False, allow_international: bool = False,
              inbound: str = "201") -> str:
    """Extensions 201-203 and one trunk "itsp" at 127.0.0.1:itsp_port, prefix 0."""
    return f"""
[[extensions]]
number = "201"
name = "Ann"
secret = "{SECRETS['201']}"

[[extensions]]
number = "202"
name = "Bob"
secret = "{SECRETS['202']}"
allow_international = true

[[extensions]]
number = "203"
name = "Cleo"
secret = "{SECRETS['203']}"
allow_external = false

[[trunks]]
name = "itsp"
host = "{LOCALHOST}"
port = {itsp_port}
username = "{ITSP_USER}"
secret = "{ITSP_SECRET}"
register = {str(register_trunk).lower()}
inbound = "{inbound}"
outbound_prefix = "0"

[security]
allow_international = {str(allow_international).lower()}
"""


def box_settings(data_dir: Path, **values: object) -> None:
    """Write <data_dir>/switchboard.toml [box] before the box starts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[box]"] + [f"{key} = {value!r}".replace("'", '"') for key, value in values.items()]
    (data_dir / "switchboard.toml").write_text("\n".join(lines) + "\n")


def trunk_status(box: RunningBox) -> dict:
    """The status block of trunk "itsp" from `switchboard trunks --status --json`."""
    rows = box.cli_json("trunks", "--status")
    [row] = [r for r in rows if r["name"] == "itsp"]  # type: ignore[union-attr]
    return row["status"] or {}


def wait_for(what: str, probe: Callable[[], object], timeout: float) -> object:
    """Poll probe() until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for a background SIPp (draining its output) and return (exit code, output)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return -1, out + err
    return proc.returncode, out + err


def traced(workdir: Path, scenario: str, kind: str) -> str:
    """The -trace_msg / -trace_err log SIPp wrote for a scenario file in workdir."""
    return "".join(p.read_text(errors="replace") for p in sorted(workdir.glob(f"{scenario}_*_{kind}.log")))


def logged_messages(log: str, direction: str) -> list[str]:
    """Messages from a SIPp -trace_msg log, "received" or "sent", as text with CRLF line ends."""
    found = []
    for block in re.split(r"^-{20,}[^\n]*\n", log, flags=re.M):
        title, _, rest = block.partition("\n")
        if "message" in title and direction in title:
            found.append(rest.strip("\n").replace("\r\n", "\n").replace("\n", "\r\n"))
    return found


def header(message: str, name: str) -> str | None:
    """First value of a header (exact name, case-insensitive) in a logged message."""
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def digest_params(value: str) -> dict[str, str]:
    """The auth-params of a Digest challenge or credentials."""
    assert value.lower().startswith("digest "), value
    pairs = re.findall(r'(\w+)\s*=\s*("([^"]*)"|[^,\s]+)', value[7:])
    return {key.lower(): quoted if raw.startswith('"') else raw for key, raw, quoted in pairs}


def digest_valid(request: str, header_name: str, password: str, issued: set[str]) -> bool:
    """Recompute an RFC 2617/7616 MD5 digest response independently of the box's code."""
    value = header(request, header_name)
    if value is None:
        return False
    p = digest_params(value)
    if p.get("nonce") not in issued or p.get("algorithm", "MD5").upper() != "MD5":
        return False
    method = request.split(" ", 1)[0]
    ha1 = hashlib.md5(f"{p['username']}:{p['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{p['uri']}".encode()).hexdigest()
    if "qop" in p:
        expected = hashlib.md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}".encode()).hexdigest()
    else:
        expected = hashlib.md5(f"{ha1}:{p['nonce']}:{ha2}".encode()).hexdigest()
    return p["username"] == ITSP_USER and p.get("response", "").lower() == expected


def issued_nonces(sent: list[str]) -> set[str]:
    """Nonces the ITSP put in its 401/407 challenges."""
    nonces = set()
    for message in sent:
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            value = header(message, name)
            if value:
                nonces.add(digest_params(value)["nonce"])
    return nonces


def media_port() -> int:
    """An even port with the next three free too (SIPp takes P for audio and P+2 for video)."""
    for _ in range(200):
        port = free_port(even=True)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                a.bind((LOCALHOST, port + 1))
                b.bind((LOCALHOST, port + 2))
                c.bind((LOCALHOST, port + 3))
            return port
        except OSError:
            continue
    raise RuntimeError("no free media ports")


def dial(box: RunningBox, workdir: Path, user: str, number: str, scenario: str = "uac_auth.xml",
         *extra: str) -> SippResult:
    """Extension `user` dials `number` with SIPp (digest from an injection file)."""
    csv = users_file(workdir, {user: SECRETS[user]}, f"dial_{user}_{number.replace('+', 'p')}.csv")
    return sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / scenario), "-inf", str(csv),
                "-s", number, "-m", "1", "-mp", str(media_port()), "-timeout", "20", "-timeout_error",
                *extra, cwd=workdir)


def itsp_uas(port: int, code: int, workdir: Path) -> subprocess.Popen:
    """SIPp as the ITSP on the trunk's port, challenging the box's INVITE with `code`, then answering."""
    return start_sipp("-sf", str(SCENARIOS / f"trunk_itsp_uas_{code}.xml"), "-p", str(port), "-m", "1",
                      "-mp", str(media_port()), "-timeout", "30", "-timeout_error", cwd=workdir)


def check_itsp_invites(workdir: Path, code: int, number: str) -> None:
    """The ITSP saw the INVITE for `number` (prefix gone) twice: bare, then with valid credentials."""
    log = traced(workdir, f"trunk_itsp_uas_{code}", "messages")
    invites = [m for m in logged_messages(log, "received") if m.startswith("INVITE ")]
    assert len(invites) == 2, log
    for invite in invites:
        assert invite.split("\r\n", 1)[0] == f"INVITE sip:{number}@{LOCALHOST} SIP/2.0", invite
    credentials = "Authorization" if code == 401 else "Proxy-Authorization"
    assert header(invites[0], credentials) is None
    issued = issued_nonces(logged_messages(log, "sent"))
    assert digest_valid(invites[1], credentials, ITSP_SECRET, issued), invites[1]
    acks = [m for m in logged_messages(log, "received") if m.startswith("ACK ")]
    assert len(acks) == 2, "the challenge and the 200 must each be ACKed"


# --- registration -------------------------------------------------------------------------------

def test_trunk_registers_with_401_then_refreshes_through_407(box_factory, workdir):
    itsp_port = free_port()
    itsp = start_sipp("-sf", str(SCENARIOS / "trunk_register.xml"), "-p", str(itsp_port), "-m", "1",
                      "-timeout", "30", "-timeout_error", cwd=workdir)
    try:
        box = box_factory(provision(itsp_port, register_trunk=True))
        code, output = finish(itsp, 40)
    finally:
        if itsp.poll() is None:
            itsp.kill()
    assert code == 0, traced(workdir, "trunk_register", "errors") or output

    log = traced(workdir, "trunk_register", "messages")
    registers = [m for m in logged_messages(log, "received") if m.startswith("REGISTER ")]
    assert len(registers) == 4, log
    issued = issued_nonces(logged_messages(log, "sent"))
    assert header(registers[0], "Authorization") is None and header(registers[2], "Proxy-Authorization") is None
    assert digest_valid(registers[1], "Authorization", ITSP_SECRET, issued)
    assert digest_valid(registers[3], "Proxy-Authorization", ITSP_SECRET, issued)
    assert len({header(m, "Call-ID") for m in registers}) == 1
    cseqs = [int((header(m, "CSeq") or "0").split()[0]) for m in registers]
    assert cseqs == sorted(set(cseqs)), cseqs
    for message in registers:
        assert f"sip:{ITSP_USER}@" in (header(message, "To") or "")
        assert header(message, "Expires") == "300"
        assert f"@{LOCALHOST}:{box.sip_port}" in (header(message, "Contact") or "")

    # The refresh's 200 granted 3600 s: the box must now show that, not the first 2 s.
    status = wait_for("the trunk to be registered for an hour", lambda: (
        (s := trunk_status(box))["state"] == "registered" and (s["registered_until"] or 0) > time.time() + 600
        and s), 10)
    assert status["last_error"] is None  # type: ignore[index]
    log = box.log()
    assert log.count("trunk itsp: registered") == 1 and "trunk itsp: failed" not in log, log


def test_trunk_down_fails_with_backoff_then_registers_when_the_itsp_appears(box_factory, workdir, tmp_path):
    itsp_port = free_port()  # nothing listens there yet
    box_settings(tmp_path / "down", trunk_keepalive=3600)  # only REGISTERs may reach the ITSP's scenario
    box = box_factory(provision(itsp_port, register_trunk=True), name="down")
    # The REGISTER goes unanswered until timer F (64*T1 = 32 s) fires.
    failed = wait_for("the trunk to fail", lambda: (s := trunk_status(box))["state"] == "failed" and s, 45)
    assert "408" in (failed["last_error"] or ""), failed  # type: ignore[index]
    assert "retrying in 5 s" in box.log()

    itsp = start_sipp("-sf", str(SCENARIOS / "trunk_register.xml"), "-p", str(itsp_port), "-m", "1",
                      "-timeout", "30", "-timeout_error", cwd=workdir)
    try:
        # Still "failed" with its error while it waits for the retry, never back to "registering".
        status = trunk_status(box)
        assert status["state"] in ("failed", "registered"), status
        code, output = finish(itsp, 40)
    finally:
        if itsp.poll() is None:
            itsp.kill()
    assert code == 0, traced(workdir, "trunk_register", "errors") or output
    wait_for("the trunk to register after the backoff", lambda: trunk_status(box)["state"] == "registered", 10)
    log = box.log()
    assert log.index("retrying in 5 s") < log.index("trunk itsp: registered")
    # Retrying kept the state "failed" (and its error) until the ITSP answered: no "registering" again.
    assert log.count("trunk itsp: registering") == 1, log


def test_options_keepalive_reaches_the_itsp(box_factory, workdir, tmp_path):
    itsp_port = free_port()
    itsp = start_sipp("-sf", str(SCENARIOS / "trunk_options.xml"), "-p", str(itsp_port), "-m", "3",
                      "-timeout", "30", "-timeout_error", cwd=workdir)
    try:
        box_settings(tmp_path / "keepalive", trunk_keepalive=1)
        box = box_factory(provision(itsp_port), name="keepalive")
        code, output = finish(itsp, 40)
    finally:
        if itsp.poll() is None:
            itsp.kill()
    assert code == 0, traced(workdir, "trunk_options", "errors") or output
    options = [m for m in logged_messages(traced(workdir, "trunk_options", "messages"), "received")]
    assert len(options) == 3 and all(m.startswith(f"OPTIONS sip:{LOCALHOST} SIP/2.0") for m in options)
    status = wait_for("the trunk to be reachable", lambda: (s := trunk_status(box))["reachable"] and s, 10)
    assert status["options_rtt_ms"] is not None  # type: ignore[index]


# --- calls ----------------------------------------------------------------------------------------

def test_call_from_the_trunk_rings_its_inbound_extension(box_factory, workdir):
    itsp_port = free_port()
    box = box_factory(provision(itsp_port, inbound="201"))
    phone_port = free_port()
    assert register(box, "201", SECRETS["201"], phone_port, workdir).returncode == 0
    uas = start_sipp("-sn", "uas", "-p", str(phone_port), "-m", "1", "-mp", str(media_port()), cwd=workdir)
    try:
        caller = sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / "trunk_inbound_uac.xml"),
                      "-p", str(itsp_port), "-s", "4930555000", "-key", "caller", "4930123456", "-m", "1",
                      "-d", "500", "-mp", str(media_port()), "-timeout", "20", "-timeout_error", cwd=workdir)
        assert caller.returncode == 0, caller.errors or caller.stdout[-2000:]
        code, output = finish(uas, 10)
        assert code == 0, output[-2000:]
    finally:
        if uas.poll() is None:
            uas.kill()
    [record] = box.wait_for_calls(1)
    assert (record["direction"], record["line"]) == ("inbound", "itsp"), record
    assert (record["from_number"], record["to_number"], record["disposition"]) == \
        ("4930123456", "4930555000", "answered"), record


@pytest.mark.parametrize("code", [401, 407])
def test_extension_dials_out_through_the_prefix_and_the_box_answers_the_itsp_challenge(
        box_factory, workdir, code):
    itsp_port = free_port()
    box = box_factory(provision(itsp_port))
    itsp = itsp_uas(itsp_port, code, workdir)
    try:
        caller = dial(box, workdir, "201", "05551234", "uac_auth.xml", "-d", "500")
        assert caller.returncode == 0, caller.errors or caller.stdout[-2000:]
        status, output = finish(itsp, 15)
        assert status == 0, traced(workdir, f"trunk_itsp_uas_{code}", "errors") or output[-2000:]
    finally:
        if itsp.poll() is None:
            itsp.kill()
    check_itsp_invites(workdir, code, "5551234")
    [record] = box.wait_for_calls(1)
    assert (record["direction"], record["line"], record["from_number"], record["to_number"]) == \
        ("outbound", "itsp", "201", "5551234"), record
    assert record["disposition"] == "answered", record


def test_only_allowed_callers_reach_the_trunk(box_factory, workdir):
    itsp_port = free_port()
    box = box_factory(provision(itsp_port, allow_international=False))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as itsp:  # a silent ITSP that only listens
        itsp.bind((LOCALHOST, itsp_port))
        # International (0 + 00...) is refused for 201; 203 may not call outside at all.
        for user, number in (("201", "000493012345678"), ("203", "05551234")):
            refused = dial(box, workdir, user, number, "trunk_uac_refused.xml")
            assert refused.returncode == 0, (user, number, refused.errors or refused.stdout[-2000:])
            assert "SIP/2.0 403 " in refused.messages
        # Someone who is neither the trunk nor an extension cannot get out without credentials.
        anonymous = sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / "trunk_uac_noauth.xml"),
                         "-s", "05551234", "-m", "1", "-timeout", "10", "-timeout_error", cwd=workdir)
        assert anonymous.returncode == 0, anonymous.errors or anonymous.stdout[-2000:]
        itsp.settimeout(1.0)
        heard = []
        try:
            while True:
                heard.append(itsp.recv(65535))
        except socket.timeout:
            pass
        assert not [d for d in heard if d.startswith(b"INVITE")], heard
    records = {(r["from_number"], r["to_number"]): r for r in box.wait_for_calls(2)}
    # Refused outside calls are recorded as outbound on the trunk, with the number as it would go out.
    assert records.keys() == {("201", "00493012345678"), ("203", "5551234")}, records
    for record in records.values():
        assert (record["direction"], record["line"], record["disposition"], record["sip_status"]) == \
            ("outbound", "itsp", "failed", 403), record

    # 202 may call international numbers: the same number goes out to the ITSP.
    itsp_proc = itsp_uas(itsp_port, 401, workdir)
    try:
        caller = dial(box, workdir, "202", "000493012345678", "uac_auth.xml", "-d", "300")
        assert caller.returncode == 0, caller.errors or caller.stdout[-2000:]
        status, output = finish(itsp_proc, 15)
        assert status == 0, traced(workdir, "trunk_itsp_uas_401", "errors") or output[-2000:]
    finally:
        if itsp_proc.poll() is None:
            itsp_proc.kill()
    check_itsp_invites(workdir, 401, "00493012345678")


def test_international_calls_go_out_when_the_box_allows_them(box_factory, workdir):
    itsp_port = free_port()
    box = box_factory(provision(itsp_port, allow_international=True))
    itsp = itsp_uas(itsp_port, 407, workdir)
    try:
        caller = dial(box, workdir, "201", "0+493012345678", "uac_auth.xml", "-d", "300")
        assert caller.returncode == 0, caller.errors or caller.stdout[-2000:]
        status, output = finish(itsp, 15)
        assert status == 0, traced(workdir, "trunk_itsp_uas_407", "errors") or output[-2000:]
    finally:
        if itsp.poll() is None:
            itsp.kill()
    check_itsp_invites(workdir, 407, "+493012345678")
    [record] = box.wait_for_calls(1)
    assert (record["direction"], record["to_number"], record["disposition"]) == \
        ("outbound", "+493012345678", "answered"), record
