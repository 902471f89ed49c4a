"""Runs inside the test container as root (Debian's python3, standard library): drives switchboard.service.

Reads /out/config.json, writes /out/result.json: what systemd did when the box's loop stopped
(SIGSTOP), and what a good and a broken update did. Powers the container off at the end.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

DATA = "/var/lib/switchboard"
result: dict = {}


def sh(*args: str) -> subprocess.CompletedProcess:
    """Run a command, capturing its output."""
    return subprocess.run(args, capture_output=True, text=True)


def show(prop: str) -> str:
    """One property of the box's unit."""
    return sh("systemctl", "show", "-p", prop, "--value", "switchboard.service").stdout.strip()


def wait(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll check() until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def running(other_than: str = "") -> bool:
    """The unit is active (READY sent) with a main process other than `other_than`."""
    pid = show("MainPID")
    return show("ActiveState") == "active" and show("SubState") == "running" and pid not in ("0", other_than)


def update(config: dict, name: str) -> dict:
    """`switchboard update FILE` as an installer types it; its exit code, output and the state after."""
    done = sh(config["switchboard"], "update", config[name], "--data-dir", DATA)
    state = json.load(open(f"{DATA}/update.json"))
    return {"rc": done.returncode, "out": done.stdout[-2000:], "err": done.stderr[-2000:], "state": state["state"],
            "message": state["message"], "current": os.readlink(f"{DATA}/current") if os.path.islink(f"{DATA}/current") else ""}


def main() -> None:
    """Each step in turn; whatever happens, write the result and power off."""
    config = json.load(open("/out/config.json"))
    try:
        result["ready"] = wait(running, 120)
        result["status_text"] = show("StatusText")
        pid = show("MainPID")
        os.kill(int(pid), signal.SIGSTOP)  # the loop stops: no more WATCHDOG=1
        began = time.monotonic()
        result["restarted_after_sigstop"] = wait(lambda: running(other_than=pid), 90)
        result["restart_seconds"] = round(time.monotonic() - began, 1)
        result["restarts"] = int(show("NRestarts") or 0)
        result["good"] = update(config, "good")
        result["good"]["active"] = wait(running, 60)
        result["broken"] = update(config, "broken")
        result["broken"]["active"] = wait(running, 60)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
        result["error"] = repr(exc)
    finally:
        journal = sh("journalctl", "--no-pager", "-o", "short-monotonic", "-u", "switchboard.service").stdout
        result["watchdog_in_journal"] = "Watchdog timeout" in journal
        with open("/out/journal.txt", "w") as out:
            out.write(journal)
        with open("/out/result.json", "w") as out:
            json.dump(result, out, indent=1)
        sh("systemctl", "poweroff", "--no-block")


if __name__ == "__main__":
    main()
