"""`switchboard boot-files`: what the SD card's boot partition and the box hand each other (run as root by systemd).

  handover    before the box starts: a switchboard.toml an installer put on the card is checked,
              handed to the box (a file only its service can read) and renamed switchboard.toml.applied
              (or .invalid, with the reason in switchboard-error.txt), so it is applied once.
  setup-code  when the box writes or removes its setup code: the card's switchboard-setup-code.txt,
              the console's login banner and the console itself follow.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from .config import ConfigError, load_provisioning

CARD_FILE = "switchboard.toml"
ERROR_FILE = "switchboard-error.txt"
CODE_FILE = "switchboard-setup-code.txt"
ISSUE_FILE = Path("/run/issue.d/50-switchboard.issue")


def add_commands(command) -> None:  # type: ignore[no-untyped-def]
    """Declare `boot-files handover` and `boot-files setup-code`."""
    cmd = command("boot-files", _boot_files, "Exchange files with the SD card's boot partition (the image runs this).")
    cmd.add_argument("action", choices=("handover", "setup-code"))
    cmd.add_argument("--boot", type=Path, default=Path("/boot/firmware"), help="the boot partition")
    cmd.add_argument("--to", type=Path, default=Path("/run/switchboard-boot/provision.toml"),
                     help="handover: where the box's service picks the file up")
    cmd.add_argument("--code", type=Path, default=Path("/run/switchboard/setup-code"),
                     help="setup-code: the file the box keeps its setup code in")
    cmd.add_argument("--console", type=Path, action="append", default=None,
                     help="setup-code: where to print it (default: /dev/tty1, the HDMI screen, and /dev/console)")
    cmd.add_argument("--issue", type=Path, default=ISSUE_FILE, help="setup-code: the login banner snippet")


def _boot_files(args: argparse.Namespace) -> int:
    if args.action == "handover":
        return handover(args.boot, args.to)
    consoles = args.console or [Path("/dev/tty1"), Path("/dev/console")]
    return show_setup_code(args.code, args.boot, consoles, args.issue)


def handover(boot: Path, to: Path) -> int:
    """Hand a valid card file to the box (always leaving `to`, empty if there is none); rename the card's file."""
    to.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(to.parent, 0o700)
    card = boot / CARD_FILE
    tmp = to.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        if card.is_file():
            try:
                load_provisioning(card)
            except ConfigError as exc:
                (boot / ERROR_FILE).write_text(f"{CARD_FILE} was not applied:\n{exc}\n")
                os.replace(card, boot / (CARD_FILE + ".invalid"))
                print(f"switchboard: {card} is invalid, renamed .invalid: {exc}")
            else:
                with open(card, "rb") as source:
                    shutil.copyfileobj(source, out)
                os.replace(card, boot / (CARD_FILE + ".applied"))
                (boot / ERROR_FILE).unlink(missing_ok=True)
                print(f"switchboard: {card} handed to the box, renamed {CARD_FILE}.applied")
    os.replace(tmp, to)
    return 0


def show_setup_code(code_file: Path, boot: Path, consoles: list[Path], issue: Path) -> int:
    """Mirror the box's setup code onto the card and the console, or clear both once setup is done."""
    try:
        code = code_file.read_text().strip()
    except OSError:
        code = ""
    if not code:
        (boot / CODE_FILE).unlink(missing_ok=True)
        issue.unlink(missing_ok=True)
        return 0
    text = (f"Switchboard setup code: {code}\r\n"
            "Open http://switchboard.local/ (or this box's address) in a browser on the office network,\r\n"
            "enter the code, and choose the admin's name and password.\r\n")
    (boot / CODE_FILE).write_text(text)
    issue.parent.mkdir(parents=True, exist_ok=True)
    issue.write_text("\n" + text.replace("\r\n", "\n") + "\n")
    # /dev/console is the last console= of the kernel's command line (the serial pins on the image),
    # so the HDMI screen (tty1) is written to as well.
    for console in dict.fromkeys(consoles):
        try:
            with open(console, "w") as out:
                out.write("\r\n" + text)
        except OSError:
            pass  # no such console (a container, no screen): the card and the login banner still have it
    return 0
