"""First run of a box from the SD card: "setup pending" until an admin exists, and the card's file applied once."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from appliance.control import SOCKET_NAME, control_request
from appliance.store import users

CARD = """[[extensions]]
number = "301"
name = "Front desk"
secret = "Kx8-vaLm-2231"
"""


def status(data_dir: Path) -> dict:
    """The running box's status over its control socket."""
    reply = control_request(data_dir / SOCKET_NAME, "status")
    assert reply and reply["ok"], reply
    return reply


def wait_for(data_dir: Path, condition, what: str, timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def]
    """Ask until the status satisfies condition (a deadline, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        now = status(data_dir)
        if condition(now):
            return now
        assert time.monotonic() < deadline, f"{what}: {now['leds']['power']}"
        time.sleep(0.2)


def test_setup_pending_shows_on_the_power_led_and_in_the_code_file_until_an_admin_exists(box_factory, tmp_path):
    code_file = tmp_path / "run" / "setup-code"
    box = box_factory(None, "--setup-code-file", str(code_file))
    power = status(box.data_dir)["leds"]["power"]
    assert power["pattern"] == "double_blink" and "setup pending" in power["words"]
    code = code_file.read_text().strip()
    assert code == users.setup_code(users_db(box.data_dir))
    assert oct(code_file.stat().st_mode & 0o777) == "0o600"
    made = subprocess.run([sys.executable, "-m", "appliance.cli", "admin", "create", "boss", "--password-stdin",
                           "--data-dir", str(box.data_dir)], input="Plover-Xyzzy-42\n", capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    after = wait_for(box.data_dir, lambda s: s["leds"]["power"]["pattern"] == "on", "the power LED to come on")
    assert after["leds"]["power"]["words"] == "on (all fine)"
    assert not code_file.exists()


def users_db(data_dir: Path):  # type: ignore[no-untyped-def]
    from appliance.store.db import open_connection

    return open_connection(data_dir / "switchboard.db")


def test_the_cards_file_is_applied_once_and_a_bad_one_leaves_the_box_running(box_factory, tmp_path):
    card = tmp_path / "card.toml"
    digest = users.hash_password("Plover-Xyzzy-42", "installer")
    card.write_text(CARD + f'[admin]\nusername = "installer"\npassword_hash = "{digest}"\n')
    box = box_factory(None, "--boot-provision", str(card))
    assert status(box.data_dir)["leds"]["power"]["pattern"] == "on"  # the card brought its admin
    assert "applied the boot provisioning file" in box.log()
    assert box.stop() == 0
    db_path = box.data_dir / "switchboard.db"
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT name FROM extensions WHERE number = '301'").fetchall() == [("Front desk",)]
        db.execute("UPDATE extensions SET name = 'Renamed on the web' WHERE number = '301'")

    again = box_factory(None, "--boot-provision", str(card))  # the same file at the next boot
    assert "applied the boot provisioning file" not in again.log()
    assert again.stop() == 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT name FROM extensions WHERE number = '301'").fetchall() == [("Renamed on the web",)]

    card.write_text('[[extensions]]\nnumber = "30x"\n')
    broken = box_factory(None, "--boot-provision", str(card))
    power = status(broken.data_dir)["leds"]["power"]
    assert power["pattern"] == "fast_blink" and "boot_provisioning_invalid" in power["words"]
    assert "the boot provisioning file was not applied" in broken.log()
    assert json.dumps(status(broken.data_dir)["trunks"]) == "{}"
