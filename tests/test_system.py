"""The box on its own machine: systemd's notify protocol, the clock watch, releases, backups, boot files."""
from __future__ import annotations

import io
import os
import socket
import sqlite3
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance import cli_boot
from appliance.config import ConfigError, load_provisioning
from appliance.provisioning import apply_provisioning
from appliance.store import users
from appliance.system import installer, releases
from appliance.system.backups import find_backup, list_backups, make_backup, prune
from appliance.system.clock import FAULT, ClockWatch
from appliance.system.launcher import data_dir_from
from appliance.system.sd_notify import Notifier


# --- sd_notify -----------------------------------------------------------------------------------
def test_the_notifier_sends_to_the_socket_systemd_names(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.enabled and notifier.send("READY=1", "STATUS=up")
        assert listener.recv(1024) == b"READY=1\nSTATUS=up"


def test_an_abstract_notify_socket_is_spelt_with_an_at_sign():
    name = f"switchboard-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("WATCHDOG=1")
        assert listener.recv(64) == b"WATCHDOG=1"


def test_without_systemd_nothing_is_sent_and_the_watchdog_is_off():
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.send("READY=1") and notifier.watchdog_seconds is None


@pytest.mark.parametrize("env, seconds", [
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "nonsense"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
])
def test_the_watchdog_applies_only_to_this_process(env, seconds):
    assert Notifier(env).watchdog_seconds == seconds


# --- the clock ------------------------------------------------------------------------------------
def test_the_clock_watch_raises_and_clears_the_fault_on_changes_only():
    events: list[tuple[str, dict]] = []
    readings = iter([False, False, True, None])
    watch = ClockWatch(lambda topic, **data: events.append((topic, data)), probe=lambda: next(readings))
    assert watch.check() is False
    assert watch.check() is False
    assert watch.check() is True
    assert watch.check() is True  # cannot tell: treated as synced, nothing new said
    assert events == [("box.clock", {"synced": False}), ("box.fault", {"fault": FAULT, "active": True}),
                      ("box.clock", {"synced": True}), ("box.fault", {"fault": FAULT, "active": False})]


# --- releases and the launcher's decision -----------------------------------------------------------
def _trial(data_dir: Path, previous: str = "") -> None:
    (data_dir / "releases" / "2.0-x" / "bin").mkdir(parents=True)
    releases.write_state(data_dir, releases.UpdateState("trial", "2.0", "releases/2.0-x", previous))
    releases.switch_to(data_dir, "releases/2.0-x")


def test_a_trial_that_never_confirms_is_rolled_back_after_60_seconds_of_its_first_start(tmp_path):
    db = sqlite3.connect(tmp_path / "switchboard.db")
    db.execute("CREATE TABLE marker (version TEXT)")
    db.execute("INSERT INTO marker VALUES ('old')")
    db.commit()
    db.close()
    installer.snapshot(tmp_path / "switchboard.db", tmp_path / releases.DB_BEFORE)
    db = sqlite3.connect(tmp_path / "switchboard.db")
    db.execute("UPDATE marker SET version = 'migrated by the new version'")
    db.commit()
    db.close()
    _trial(tmp_path)
    assert releases.before_start(tmp_path, now=1000.0).first_start == 1000.0
    assert releases.before_start(tmp_path, now=1060.0).state == "trial"  # a crash-restart within the minute
    assert releases.current_release(tmp_path) == "releases/2.0-x"
    state = releases.before_start(tmp_path, now=1060.5)
    assert state.state == "rolled_back" and "60 s" in state.message
    assert releases.current_release(tmp_path) == ""  # back to the factory version
    rows = sqlite3.connect(tmp_path / "switchboard.db").execute("SELECT version FROM marker").fetchall()
    assert rows == [("old",)]
    assert releases.read_state(tmp_path).state == "rolled_back"


def test_only_the_release_on_trial_can_confirm_it(tmp_path):
    _trial(tmp_path, previous="releases/1.0-y")
    assert releases.confirm(tmp_path, tmp_path / "releases" / "1.0-y") is None  # the old version
    assert releases.confirm(tmp_path, Path(sys_prefix := tmp_path / "releases" / "2.0-x")).state == "confirmed"
    assert releases.before_start(tmp_path, now=10**10).state == "confirmed"  # never rolled back afterwards
    assert sys_prefix.is_dir()


def test_the_program_is_the_current_release_else_the_factory_one(tmp_path):
    factory = tmp_path / "factory"
    assert releases.program(tmp_path, factory) == factory / "bin" / "switchboard"
    _trial(tmp_path)
    program = tmp_path / "releases" / "2.0-x" / "bin" / "switchboard"
    assert releases.program(tmp_path, factory) == factory / "bin" / "switchboard"  # not executable yet
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert releases.program(tmp_path, factory) == program


def test_the_launcher_finds_the_data_folder_from_its_arguments_or_systemd():
    assert data_dir_from(["run", "--data-dir", "/x"], {}) == Path("/x")
    assert data_dir_from(["run", "--data-dir=/y"], {"STATE_DIRECTORY": "/z"}) == Path("/y")
    assert data_dir_from(["run"], {"STATE_DIRECTORY": "/z:/w"}) == Path("/z")
    assert data_dir_from(["run"], {}) is None


# --- update files -----------------------------------------------------------------------------------
def _tar(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo("evil.whl")
            info.type, info.linkname = tarfile.SYMTYPE, symlink
            archive.addfile(info)
    return path


def test_an_update_tar_gives_only_its_wheels_flattened(tmp_path):
    update = _tar(tmp_path / "u.tar", {"a/switchboard_pbx-2.0-py3-none-any.whl": b"w", "../../etc/x.whl": b"x",
                                       "notes.txt": b"n"}, symlink="/etc/passwd")
    into = tmp_path / "in"
    assert installer.unpack(update, into) == "2.0"
    assert sorted(p.name for p in into.iterdir()) == ["switchboard_pbx-2.0-py3-none-any.whl", "x.whl"]
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("members, why", [
    ({"flask-3.1-py3-none-any.whl": b"w"}, "expected one switchboard_pbx wheel, found 0"),
    ({"switchboard_pbx-2.0-py3-none-any.whl": b"w", "switchboard_pbx-2.1-py3-none-any.whl": b"w"}, "found 2"),
])
def test_an_update_without_exactly_one_project_wheel_is_refused(tmp_path, members, why):
    with pytest.raises(installer.UpdateError, match=why):
        installer.unpack(_tar(tmp_path / "u.tar", members), tmp_path / "in")


def test_a_file_that_is_no_update_is_refused_and_the_state_says_why(tmp_path):
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8 not a tar")
    with pytest.raises(installer.UpdateError, match="not a wheel or a tar of wheels"):
        installer.install(junk, tmp_path, tmp_path / "factory")
    state = releases.read_state(tmp_path)
    assert state.state == "failed" and "photo.jpg" in state.message
    assert not list(tmp_path.glob("incoming-*"))


# --- backups --------------------------------------------------------------------------------------
def test_backups_copy_the_live_database_and_keep_the_newest(tmp_path):
    db = sqlite3.connect(tmp_path / "switchboard.db")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE calls (id INTEGER)")
    db.execute("INSERT INTO calls VALUES (1)")
    db.commit()  # in the WAL, not yet checkpointed: the backup must still see it
    folder = tmp_path / "backups"
    start = datetime(2026, 12, 1, 3, 15, tzinfo=timezone.utc)
    for day in range(9):
        made = make_backup(tmp_path / "switchboard.db", folder, keep=7, now=start + timedelta(days=day))
    names = [b.name for b in list_backups(folder)]
    assert len(names) == 7 and names[0] == made.name == "switchboard-20261209-031500.sqlite"
    assert names[-1] == "switchboard-20261203-031500.sqlite"
    copy = sqlite3.connect(folder / made.name)
    assert copy.execute("SELECT id FROM calls").fetchall() == [(1,)]
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    (folder / "x.partial").write_text("interrupted")
    assert prune(folder, 7) == [] and not (folder / "x.partial").exists()


@pytest.mark.parametrize("name", ["../switchboard.db", "switchboard.db", "switchboard-20261209-031500.sqlite/..",
                                  "switchboard-2026.sqlite"])
def test_only_backup_files_can_be_named_for_download(tmp_path, name):
    (tmp_path / "backups").mkdir()
    (tmp_path / "switchboard.db").write_text("secret")
    assert find_backup(tmp_path / "backups", name) is None


# --- the boot partition ----------------------------------------------------------------------------
PROVISION_CARD = """[[extensions]]
number = "201"
name = "Ann"
secret = "Kx8-vaLm-2231"
"""


def test_a_valid_card_file_is_handed_over_once_and_renamed(tmp_path):
    boot, to = tmp_path / "boot", tmp_path / "run" / "provision.toml"
    boot.mkdir()
    (boot / "switchboard.toml").write_text(PROVISION_CARD)
    assert cli_boot.handover(boot, to) == 0
    assert to.read_text() == PROVISION_CARD and oct(to.stat().st_mode & 0o777) == "0o600"
    assert not (boot / "switchboard.toml").exists() and (boot / "switchboard.toml.applied").exists()
    cli_boot.handover(boot, to)  # the next boot: nothing new, an empty hand-over
    assert to.read_text() == ""


def test_an_invalid_card_file_is_renamed_with_the_reason_beside_it(tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "switchboard.toml").write_text('[[extensions]]\nnumber = "2x1"\nname = "Ann"\nsecret = "Kx8-vaLm-2231"\n')
    cli_boot.handover(boot, tmp_path / "run" / "p.toml")
    assert (boot / "switchboard.toml.invalid").exists()
    assert "number" in (boot / "switchboard-error.txt").read_text()
    assert (tmp_path / "run" / "p.toml").read_text() == ""


def test_the_setup_code_goes_to_the_card_and_the_console_and_away_once_set_up(tmp_path):
    code, boot, console, issue = tmp_path / "code", tmp_path / "boot", tmp_path / "console", tmp_path / "issue"
    boot.mkdir()
    code.write_text("ABCD-EFGH-JKLM\n")
    cli_boot.show_setup_code(code, boot, [console, tmp_path / "no" / "tty"], issue)
    for place in (boot / cli_boot.CODE_FILE, console, issue):
        assert "ABCD-EFGH-JKLM" in place.read_text()
    code.unlink()
    cli_boot.show_setup_code(code, boot, [console, tmp_path / "no" / "tty"], issue)
    assert not (boot / cli_boot.CODE_FILE).exists() and not issue.exists()


# --- [admin] in a provisioning file -----------------------------------------------------------------
def test_a_provisioned_admin_is_created_once_and_never_overwritten(tmp_path, db):
    digest = users.hash_password("Plover-Xyzzy-42", "boss")
    path = tmp_path / "p.toml"
    path.write_text(f'[admin]\nusername = "boss"\npassword_hash = "{digest}"\n')
    assert apply_provisioning(db, load_provisioning(path), "switchboard")["admin"] == {"added": 1, "unchanged": 0}
    assert users.authenticate(db, "boss", "Plover-Xyzzy-42") is not None
    assert users.setup_code(db) is None
    other = users.hash_password("Another-Pass-987", "boss")
    path.write_text(f'[admin]\nusername = "boss"\npassword_hash = "{other}"\n')
    assert apply_provisioning(db, load_provisioning(path), "switchboard")["admin"] == {"added": 0, "unchanged": 1}
    assert users.authenticate(db, "boss", "Plover-Xyzzy-42") is not None


@pytest.mark.parametrize("value", ["Plover-Xyzzy-42", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "$6$salt$hash"])
def test_an_admin_password_must_be_an_argon2id_hash_never_a_password(tmp_path, value):
    path = tmp_path / "p.toml"
    path.write_text(f'[admin]\nusername = "boss"\npassword_hash = "{value}"\n')
    with pytest.raises(ConfigError, match="argon2id hash"):
        load_provisioning(path)


def test_watchdog_pings_come_from_loop_timers_a_third_of_watchdogsec_apart():
    from fake_loop import FakeLoop

    from appliance.features.service import _WatchdogPinger

    sent: list[tuple[float, tuple]] = []
    loop = FakeLoop()
    notifier = Notifier({"NOTIFY_SOCKET": "/nowhere", "WATCHDOG_USEC": "30000000"})
    notifier.send = lambda *lines: sent.append((loop.time(), lines)) or True  # type: ignore[method-assign]
    pinger = _WatchdogPinger(loop, notifier)  # type: ignore[arg-type]
    loop.advance(25)
    assert [t - 1000.0 for t, _ in sent] == [0, 10, 20] and {lines for _, lines in sent} == {("WATCHDOG=1",)}
    pinger.stop()
    loop.advance(60)
    assert len(sent) == 3
