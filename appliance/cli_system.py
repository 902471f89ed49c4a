"""`switchboard update` and `switchboard backup`: looking after the box from the shell."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from .cli_support import UsageError, data_dir
from .config import load_settings
from .control import SOCKET_NAME, control_request
from .system import installer, releases
from .system.backups import backup_dir, list_backups, make_backup

WAIT_SECONDS = 900 + releases.TRIAL_SECONDS  # an install on a Pi (pip) then the trial


def add_commands(command, group, leaf) -> None:  # type: ignore[no-untyped-def]
    """Declare `update FILE`, `update status`, `backup now` and `backup list`."""
    cmd = command("update", _update, "Install a new version from FILE (a switchboard_pbx wheel or a tar of wheels);"
                  " it is rolled back by itself if it is not healthy within 60 s. Without FILE: what the last update did.")
    cmd.add_argument("file", type=Path, nargs="?", help="the update file")
    cmd.add_argument("--no-wait", action="store_true", help="do not wait for the new version's health check")
    backup = group("backup", "Copies of the database (made every night; the last 7 kept).")
    leaf(backup, "now", _backup_now, "Make a backup now (the box may be running).")
    leaf(backup, "list", _backup_list, "List the backups.")


def _update(args: argparse.Namespace) -> int:
    if args.file is None:
        return _update_status(args)
    folder = data_dir(args)
    update = args.file.resolve()
    if not update.is_file():
        raise UsageError(f"{args.file}: no such file")
    socket_path = folder / SOCKET_NAME
    # The running box installs it itself (it owns its folder); hand the file over inside that folder.
    handed = folder / f"upload-{int(time.time())}-{update.name}"
    before = releases.read_state(folder)
    shutil.copyfile(update, handed)
    os.chmod(handed, 0o644)
    reply = control_request(socket_path, "update", file=handed.name)
    if reply is None:
        print("the box is not running: installing here; the new version starts on trial with the box")
        try:
            state = installer.install(update, folder, Path(os.environ.get("SWITCHBOARD_FACTORY") or sys.prefix),
                                      say=print)
        except installer.UpdateError as exc:
            print(f"switchboard: update failed: {exc}", file=sys.stderr)
            return 1
        finally:
            handed.unlink(missing_ok=True)
        print(f"version {state.version} is on trial")
        return 0
    if not reply.get("ok"):
        handed.unlink(missing_ok=True)
        print(f"switchboard: update refused: {reply.get('error')}", file=sys.stderr)
        return 1
    print("the box is installing the update")
    return 0 if args.no_wait else _wait_for_outcome(folder, before.history if before else [])


def _wait_for_outcome(folder: Path, earlier: list[str]) -> int:
    """Print each new state of this update until it is confirmed, rolled back or failed."""
    deadline = time.monotonic() + WAIT_SECONDS
    said = ""
    while time.monotonic() < deadline:
        state = releases.read_state(folder)
        if state is not None and state.history != earlier:  # written since this update began
            line = f"{state.state}: {state.message}"
            if line != said:
                print(line, flush=True)
                said = line
            if state.state in ("confirmed", "rolled_back", "failed"):
                return 0 if state.state == "confirmed" else 1
        time.sleep(1.0)
    print("switchboard: no outcome yet; see `switchboard update status`", file=sys.stderr)
    return 1


def _update_status(args: argparse.Namespace) -> int:
    folder = data_dir(args)
    state = releases.read_state(folder)
    release = releases.current_release(folder) or "factory"
    print(f"running: {release}")
    if state is None:
        print("no update installed yet")
        return 0
    print(f"last update: {state.state} (version {state.version or '?'}): {state.message}")
    for line in state.history[-5:]:
        print(f"  {line}")
    return 0


def _backup_now(args: argparse.Namespace) -> int:
    folder = data_dir(args)
    db_path = folder / "switchboard.db"
    if not db_path.exists():
        raise UsageError(f"no Switchboard database in {folder}")
    made = make_backup(db_path, backup_dir(folder), keep=_keep(folder))
    print(f"{backup_dir(folder) / made.name} ({made.size} bytes)")
    return 0


def _keep(folder: Path) -> int:
    return load_settings(folder, {}).backup_keep


def _backup_list(args: argparse.Namespace) -> int:
    folder = backup_dir(data_dir(args))
    found = list_backups(folder)
    if not found:
        print(f"no backups in {folder} yet")
    for b in found:
        print(f"{b.taken_at:%Y-%m-%d %H:%M} UTC  {b.size:>10} bytes  {folder / b.name}")
    return 0
