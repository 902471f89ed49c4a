"""`switchboard status`: asks the running box over the control socket; a real box, a real call."""
from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

import pytest
from conftest import PROVISION
from peers import LOCALHOST, SipPhone, free_media_port, invite_with_auth, new_id, parse_sip, sdp_body

from appliance import cli_status
from appliance.store import users
from hw.leds import on_a_pi

SECRETS = {"201": "s3cret-201", "202": "s3cret-202"}  # as in conftest.PROVISION
LED_SETTINGS = """[box]
led_power_pin = 17
led_trunk_pin = 27
led_calls_pin = 22
led_pin_factory = "{factory}"
"""


def run_status(capsys, data_dir: Path, *flags: str) -> tuple[int, str, str]:
    """`switchboard status FLAGS --data-dir DIR` through cli_status.add_commands, as cli.py declares commands."""
    parser = argparse.ArgumentParser(prog="switchboard")
    sub = parser.add_subparsers(dest="command")

    def command(name, func, help_text):  # type: ignore[no-untyped-def]
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--data-dir", type=Path, default=None)
        cmd.set_defaults(func=func)
        return cmd

    cli_status.add_commands(command)
    args = parser.parse_args(["status", *flags, "--data-dir", str(data_dir)])
    code = args.func(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def status_json(capsys, data_dir: Path) -> dict:
    code, out, err = run_status(capsys, data_dir, "--json")
    assert code == 0, err
    return json.loads(out)


def wait_for(capsys, data_dir: Path, condition, what: str, timeout: float = 10.0) -> dict:
    """Ask the box until its status satisfies condition (a deadline, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        status = status_json(capsys, data_dir)
        if condition(status):
            return status
        assert time.monotonic() < deadline, f"{what}: {status}"
        time.sleep(0.1)


def test_no_box_running_says_so_and_exits_1(tmp_path, capsys):
    for flags in ((), ("--json",)):
        code, out, err = run_status(capsys, tmp_path, *flags)
        assert code == 1
        assert out == ""
        assert "the box is not running" in err


def test_status_of_a_running_box_before_during_and_after_a_call(box_factory, tmp_path, capsys):
    data_dir = tmp_path / "box"
    data_dir.mkdir()
    # Off a Pi "auto" must pick the MockFactory by itself; on a Pi the test must not drive real pins.
    (data_dir / "switchboard.toml").write_text(LED_SETTINGS.format(factory="mock" if on_a_pi() else "auto"))
    # An office with its admin (from the provisioning file's [admin]): setup is done, the power LED is on.
    admin = f'[admin]\nusername = "boss"\npassword_hash = "{users.hash_password("Plover-Xyzzy-42")}"\n'
    box = box_factory(PROVISION + admin)
    assert "MockFactory (" in box.log()

    status = status_json(capsys, data_dir)
    leds = status["leds"]
    assert {name: led["pattern"] for name, led in leds.items()} == {
        "power": "on", "trunk": "off", "modem": "off", "calls": "off"}
    assert leds["power"] == {"pattern": "on", "words": "on (all fine)", "pin": 17}
    assert leds["modem"]["pin"] is None
    assert (status["calls"], status["phones"], status["trunks"]) == (0, 0, {})
    assert status["uptime"] >= 0

    code, out, err = run_status(capsys, data_dir)
    assert code == 0, err
    assert "Switchboard is running" in out
    assert "power  on (all fine)" in out
    assert "modem  off (no modem)" in out and "not fitted" in out
    assert "Registered phones: 0" in out

    with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:
        assert bob.register("202", SECRETS["202"], 600).status == 200
        dialog, call_id = invite_with_auth(ann, box, "202", SECRETS["201"])
        invite = bob.request_in("INVITE")
        tag = new_id()
        bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())], sdp_body(free_media_port())))
        ok = ann.response(call_id, "INVITE")
        assert ok.status == 200, ok
        box_contact = ok.header("Contact").strip("<>").split(">")[0]
        to = ("To", ok.header("To"))
        ann.send(ann.build("ACK", box_contact, [dialog[0], to, dialog[2], ("CSeq", "2 ACK")]))
        bob.request_in("ACK", invite.call_id)

        during = wait_for(capsys, data_dir, lambda s: s["leds"]["calls"]["pattern"] == "on", "calls LED on")
        assert during["leds"]["calls"]["words"] == "on (1 call up)"
        assert (during["calls"], during["phones"]) == (1, 1)

        ann.send(ann.build("BYE", box_contact, [dialog[0], to, dialog[2], ("CSeq", "3 BYE")]))
        bye = bob.request_in("BYE", invite.call_id)
        bob.send(bob.reply(bye, 200, "OK"))
        assert ann.response(call_id, "BYE").status == 200

    after = wait_for(capsys, data_dir, lambda s: s["calls"] == 0, "the call to end")
    assert after["leds"]["calls"] == {"pattern": "off", "words": "off (no calls)", "pin": 22}
    assert after["leds"]["power"]["pattern"] == "on"


def test_the_trunk_led_blinks_while_registering_and_is_on_once_registered(box_factory, tmp_path, capsys):
    """The test plays the carrier's registrar: it holds the 200 OK until it has seen the LED blink."""
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind((LOCALHOST, 0))
    registrar.settimeout(10)
    try:
        trunk = (f'\n[[trunks]]\nname = "carrier"\nhost = "{LOCALHOST}"\nport = {registrar.getsockname()[1]}\n'
                 'username = "office"\nsecret = "trunk-secret"\nregister = true\ninbound = "201"\n')
        box = box_factory(PROVISION + trunk)
        data_dir = tmp_path / "box"
        request = parse_sip(registrar.recv(65535))
        assert request.method == "REGISTER"
        status = status_json(capsys, data_dir)
        assert status["trunks"] == {"carrier": "registering"}
        assert status["leds"]["trunk"]["words"] == "blinking (registering: carrier)"
        registrar.sendto(SipPhone.reply(request, 200, "OK", new_id(), [("Expires", "300")]),
                         (LOCALHOST, box.sip_port))
        status = wait_for(capsys, data_dir, lambda s: s["trunks"]["carrier"] == "registered", "registration")
        assert status["leds"]["trunk"]["pattern"] == "on"
        assert status["leds"]["trunk"]["words"] == "on (trunk registered)"
    finally:
        registrar.close()


def test_a_box_without_the_status_command_is_reported(tmp_path, capsys):
    """An older box answers "unknown command": exit 1 with its words, not a traceback."""
    import asyncio
    import threading

    from appliance.control import SOCKET_NAME, ControlServer

    def handler(command: str, args: dict) -> dict:
        raise ValueError(f"unknown command {command!r}")

    loop = asyncio.new_event_loop()
    server = ControlServer(tmp_path / SOCKET_NAME, handler)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        code, _, err = run_status(capsys, tmp_path)
        assert code == 1
        assert "the box refused: unknown command 'status'" in err
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize("seconds, words", [(42, "0 min 42 s"), (3 * 3600 + 61, "3 h 1 min"),
                                            (2 * 86400 + 7200, "2 d 2 h 0 min")])
def test_uptime_in_words(seconds, words):
    assert cli_status._uptime(seconds) == words
