"""Linphone as a second real phone (issue 14): SHA-256 digest over TCP with +sip.instance echoed, and DTMF
as SIP INFO reaching the IVR."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from linphone_peer import Linphone
from test_e2e_security import box_settings

from conftest import PROVISION
from peers import have

pytestmark = pytest.mark.skipif(not have("linphonecsh"), reason="linphone-cli is not installed")

IVR = """
[[ivr]]
name = "main"
number = "500"
greeting = ""
timeout = 10

[ivr.options]
"1" = "extension:201"
"""


def test_linphone_registers_with_sha256_over_tcp_and_its_info_digits_reach_the_ivr(box_factory, tmp_path: Path) -> None:
    box_settings(tmp_path / "lp", auth_algorithms=["SHA-256", "MD5"])
    box = box_factory(PROVISION + IVR, name="lp")
    phone = Linphone(tmp_path / "linphone", box.sip_port, "202", "s3cret-202")
    try:
        phone.start()
        phone.wait_for(phone.registered, "registration")
        log = phone.log_text()
        assert "algorithm=SHA-256" in log.split("Authorization:", 1)[1].split("\n", 1)[0], "not SHA-256"
        assert ";+sip.instance=" in log.split("SIP/2.0 200 OK", 1)[1].split("Contact:", 1)[1].split("\n", 1)[0]
        assert "202 registered from tcp:127.0.0.1:" in box.log()
        phone.call("500")
        phone.command("generic", "1")
        deadline = time.monotonic() + 10
        while "pressed 1: extension 201" not in box.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        phone.stop()
    [record] = box.wait_for_calls(1)
    assert [(step.get("key"), step.get("menu")) for step in record["ivr_path"] if "key" in step] == [("1", "main")]
    assert record["extra"]["media"]["digits"] >= 1
