"""The first end-to-end check: register with digest, call between two extensions, read the record."""
from __future__ import annotations

from peers import LOCALHOST, SCENARIOS, free_media_port, free_port, register, sipp, start_sipp, users_file


def test_registered_extensions_call_each_other(box, workdir):
    phone_port = free_port()
    assert register(box, "202", "s3cret-202", phone_port, workdir).returncode == 0
    uas = start_sipp("-sn", "uas", "-p", str(phone_port), "-m", "1", "-rtp_echo", "-mp", str(free_media_port()),
                     cwd=workdir)
    try:
        csv = users_file(workdir, {"201": "s3cret-201"})
        caller = sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / "uac_auth.xml"), "-inf", str(csv),
                      "-s", "202", "-m", "1", "-d", "1000", "-p", str(free_port()), "-mp", str(free_media_port()),
                      "-timeout", "20", "-timeout_error", cwd=workdir)
        assert caller.returncode == 0, caller.errors
        assert uas.wait(10) == 0
    finally:
        if uas.poll() is None:
            uas.kill()
    [record] = box.wait_for_calls(1)
    assert (record["from_number"], record["to_number"], record["disposition"]) == ("201", "202", "answered")
    assert record["duration"] >= 0.9
    extensions = {e["number"]: e for e in box.cli_json("extensions")}
    assert extensions["202"]["registered"] and not extensions["201"]["registered"]
