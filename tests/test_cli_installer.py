"""The installer's path on the command line (issue 14, items 13, 16, 17, 23)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROVISION

from appliance import cli_support
from appliance.cli import main


def run(*args: str, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=30, env={**os.environ, **(env or {})})


def test_a_read_command_refuses_a_folder_without_a_database_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "x"
    for command in (["extensions"], ["calls"], ["trunks"], ["queue", "status"], ["customer", "list"],
                    ["user", "list"], ["ban", "list"]):
        result = run(*command, "--data-dir", str(empty))
        assert result.returncode == 2, (command, result)
        assert "no Switchboard database in" in result.stderr and "--data-dir" in result.stderr, result.stderr
    assert not (empty / "switchboard.db").exists()


def test_the_data_folder_is_the_services_when_one_runs_there(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    service = tmp_path / "var-lib-switchboard"
    service.mkdir()
    monkeypatch.setattr(cli_support, "SYSTEM_DATA_DIR", service)
    monkeypatch.delenv("SWITCHBOARD_DATA_DIR", raising=False)
    args = type("Args", (), {"data_dir": None})()
    assert cli_support.data_dir(args) != service  # nothing of a service's there yet: the user's folder
    (service / "switchboard.db").write_bytes(b"")
    assert cli_support.data_dir(args) == service
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "mine"))
    assert cli_support.data_dir(args) == tmp_path / "mine"


def test_provision_then_read_and_a_new_customer_search_command(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    office = tmp_path / "office.toml"
    office.write_text(PROVISION)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["provision", str(office), *data]) == 0
    assert main(["customer", "add", "+12125550123", "--name", "Dana Smith", *data]) == 0
    capsys.readouterr()
    assert main(["customer", "search", "dana", *data]) == 0
    assert "Dana Smith" in capsys.readouterr().out


def test_admin_create_without_a_terminal_points_to_password_stdin(tmp_path: Path) -> None:
    result = run("admin", "create", "alice", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr and "GetPassWarning" not in result.stderr, result.stderr
    made = run("admin", "create", "alice", "--password-stdin", "--data-dir", str(tmp_path),
               stdin="plum-orchard-42\n")
    assert made.returncode == 0, made.stderr


def test_the_banner_names_an_address_a_browser_can_open_or_says_the_web_is_off(box_factory) -> None:  # type: ignore[no-untyped-def]
    """Issue 14, items 16 and 23."""
    off = box_factory(PROVISION, name="no-web")
    assert "web off" in off.banner and ":0/" not in off.banner, off.banner
    on = box_factory(PROVISION, name="web", web=True)
    assert f"web http://127.0.0.1:{on.http_port}/" in on.banner, on.banner


def test_the_log_follows_registrations_and_calls_at_info(box_factory) -> None:  # type: ignore[no-untyped-def]
    """Issue 14, item 22: an installer follows a failing phone in journalctl."""
    from peers import SipPhone, invite_with_auth

    box = box_factory(PROVISION, name="logs")
    with SipPhone(box, user="201") as phone:
        assert phone.register("201", "s3cret-201").status == 200
        assert phone.register("201", "s3cret-201").status == 200  # a refresh: not at INFO
        _dialog, call_id = invite_with_auth(phone, box, "203", "s3cret-201")
        assert phone.response(call_id, "INVITE").status == 480
    box.wait_for_calls(1)
    # The record is committed just before its log line is written: wait for the line, not the record.
    from queue_peers import wait_for

    def logged() -> str:
        text = box.log()
        return text if "ended, failed (480)" in text else ""

    log = wait_for(logged, 10, "the call's end logged")
    assert log.count(f"201 registered from udp:127.0.0.1:{phone.port}") == 1, log[-2000:]
    assert "internal call from 201 to 203" in log and "ended, failed (480)" in log, log[-2000:]


def test_prompt_list_play_set_and_reset(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 14, item 14: switchboard prompt list|play|reset, and your own prompt names."""
    import wave

    from ivr_peers import seed_prompts

    data = tmp_path / "data"
    seed_prompts(data)  # the box's spoken prompts, already rendered
    flags = ["--data-dir", str(data)]
    assert main(["prompt", "list", *flags]) == 0
    listing = capsys.readouterr().out
    assert "greeting" in listing and "spoken (espeak-ng)" in listing and "hold_music" in listing
    out = tmp_path / "greeting.wav"
    assert main(["prompt", "play", "greeting", "--out", str(out), *flags]) == 0
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1) and w.getnframes() > 8000
    assert main(["prompt", "set", "support_menu", str(out), *flags]) == 0
    capsys.readouterr()
    assert main(["prompt", "list", *flags]) == 0
    assert any(line.split()[:3] == ["support_menu", "your", "recording"]
               for line in capsys.readouterr().out.splitlines())
    assert main(["prompt", "reset", "support_menu", *flags]) == 0
    assert not (data / "prompts" / "support_menu.wav").exists()
    assert main(["prompt", "reset", "support_menu", *flags]) == 1


def test_a_terminal_gets_the_address_the_setup_code_and_the_next_step(tmp_path: Path) -> None:
    """Issue 14, item 16: the first screen was JSON log lines with http://0.0.0.0:8080/ in them."""
    import pty
    import select
    import signal
    import time

    from peers import LOCALHOST, free_port, free_rtp_range

    rtp = free_rtp_range()
    http = free_port(__import__("socket").SOCK_STREAM)
    parent, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--data-dir", str(tmp_path / "d"),
                             "--bind", LOCALHOST, "--sip-port", str(free_port()), "--http-port", str(http),
                             "--rtp-port-min", str(rtp[0]), "--rtp-port-max", str(rtp[1])],
                            stdout=child, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 20
    try:
        while b"Ctrl-C stops the box" not in seen and time.monotonic() < deadline:
            if select.select([parent], [], [], 0.5)[0]:
                seen += os.read(parent, 4096)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        os.close(parent)
    text = seen.decode(errors="replace")
    assert f"1. Open http://{LOCALHOST}:{http}/setup in a browser" in text, text
    assert "2. Enter the setup code " in text and "switchboard provision FILE" in text, text


def test_routine_library_chatter_is_kept_for_debugging() -> None:
    import logging

    from appliance.logs import setup_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "text")
        assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("waitress").getEffectiveLevel() == logging.WARNING
        setup_logging("DEBUG", "text")
        assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("apscheduler", "waitress"):
            logging.getLogger(name).setLevel(logging.NOTSET)
