"""Under real systemd (in a throw-away container): the watchdog restarts a hung box; a broken update rolls back.

Issue 16: "SIGSTOP the process and see systemd restart it", and "if the box is not healthy within
60 s, it rolls back by itself". The unit is systemd/switchboard.service as the image installs it,
with test ports, a 3 s watchdog and an 8 s trial (the 60 s rule itself: test_system.py).
"""
from __future__ import annotations

import json
import re
import tarfile

import pytest
import systemd_box
from peerkit.ports import free_port, free_rtp_range

pytestmark = pytest.mark.skipif(systemd_box.available() is not None, reason=str(systemd_box.available()))

BROKEN = ("appliance/cli.py", "def _run(args: argparse.Namespace) -> int:\n",
          "def _run(args: argparse.Namespace) -> int:\n    raise SystemExit('this version cannot start')\n")


def _unit(factory_env, sip_port: int, rtp: tuple[int, int]) -> str:
    text = (systemd_box.REPO / "systemd" / "switchboard.service").read_text()
    command = (f"{factory_env}/bin/switchboard-launch run --log-format text --bind 127.0.0.1 --sip-port {sip_port}"
               f" --http-port 0 --rtp-port-min {rtp[0]} --rtp-port-max {rtp[1]}")
    text = re.sub(r"^ExecStart=.*$", f"ExecStart={command}", text, flags=re.M)
    text = text.replace("WatchdogSec=30", "WatchdogSec=3").replace("RestartSec=2", "RestartSec=1")
    return text.replace("[Service]\n", "[Service]\nEnvironment=SWITCHBOARD_TRIAL_SECONDS=8\n", 1)


def test_systemd_restarts_a_hung_box_and_a_broken_update_is_rolled_back(tmp_path):
    factory_env = systemd_box.factory(systemd_box.CACHE / "factory")
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as archive:
        wheel = systemd_box.project_wheel("0.1.1", tmp_path)
        archive.add(wheel, arcname=wheel.name)
    broken = systemd_box.project_wheel("0.1.2", tmp_path, patch=BROKEN)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"switchboard": f"{factory_env}/bin/switchboard",
                                                  "good": str(good), "broken": str(broken)}))
    driver = ("[Unit]\nDescription=test driver\nWants=switchboard.service\nAfter=switchboard.service\n"
              f"[Service]\nType=oneshot\nExecStart=/usr/bin/python3 {systemd_box.REPO}/tests/systemd_driver.py\n")
    result = systemd_box.boot(tmp_path, {"switchboard.service": _unit(factory_env, free_port(), free_rtp_range()),
                                         "driver.service": driver},
                              binds=[systemd_box.REPO, tmp_path / "good.tar", broken])
    journal = (out / "journal.txt").read_text()
    assert "error" not in result, (result, journal[-3000:])
    assert result["ready"], journal[-3000:]
    assert result["status_text"].startswith("SIP on port")
    # SIGSTOP: no watchdog ping for 3 s, systemd kills and restarts it (after RestartSec=1).
    assert result["restarted_after_sigstop"] and result["watchdog_in_journal"], journal[-3000:]
    assert result["restarts"] >= 1
    good_update = result["good"]
    assert good_update["rc"] == 0 and good_update["state"] == "confirmed", good_update
    assert good_update["current"].startswith("releases/0.1.1-") and good_update["active"]
    # The broken version exits at start; after the trial the launcher goes back to 0.1.1.
    bad = result["broken"]
    assert bad["rc"] == 1 and bad["state"] == "rolled_back", bad
    assert bad["current"] == good_update["current"] and bad["active"], bad
    assert "did not become healthy" in bad["message"]
