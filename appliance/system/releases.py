"""Installed versions of the box and the one on trial: a virtual environment per version, switched by a symlink.

The data folder holds:
  releases/NAME/   one virtual environment per installed update
  current          symlink to the release in use (absent: the factory one, /opt/switchboard/.venv)
  update.json      the last update: installing, trial, confirmed, rolled_back or failed
  update-db.sqlite the database as it was before the switch, restored by a rollback

A trial that has not said it is healthy within TRIAL_SECONDS of its first start is rolled back by the
launcher (appliance/system/launcher.py), which always runs from the factory environment, so even an
update that cannot import its own code is undone.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# A test may shorten the trial (SWITCHBOARD_TRIAL_SECONDS in the unit's environment); the box never sets it.
TRIAL_SECONDS = float(os.environ.get("SWITCHBOARD_TRIAL_SECONDS") or 60.0)
STATE_FILE = "update.json"
CURRENT = "current"
RELEASES = "releases"
DB_BEFORE = "update-db.sqlite"
STATES = ("installing", "trial", "confirmed", "rolled_back", "failed")


@dataclass
class UpdateState:
    """What update.json says."""

    state: str
    version: str = ""
    release: str = ""           # releases/NAME, or "" for the factory environment
    previous: str = ""          # where a rollback returns to ("" = factory)
    first_start: float | None = None  # wall clock of the trial's first start
    message: str = ""
    history: list[str] = field(default_factory=list)


def read_state(data_dir: Path) -> UpdateState | None:
    """The last update's state, or None (never updated, or an unreadable file)."""
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        return UpdateState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def write_state(data_dir: Path, state: UpdateState) -> None:
    """Replace update.json atomically (a power cut leaves the old or the new one, whole)."""
    state.history = (state.history + [f"{time.strftime('%Y-%m-%d %H:%M:%S')} {state.state} {state.message}".strip()])[-20:]
    tmp = data_dir / (STATE_FILE + ".tmp")
    with open(tmp, "w") as out:
        json.dump(asdict(state), out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, data_dir / STATE_FILE)


def current_release(data_dir: Path) -> str:
    """The release in use as "releases/NAME", or "" for the factory environment."""
    link = data_dir / CURRENT
    try:
        target = os.readlink(link)
    except OSError:
        return ""
    return target


def switch_to(data_dir: Path, release: str) -> None:
    """Point `current` at a release ("" = factory) atomically: a new symlink renamed over the old one."""
    link = data_dir / CURRENT
    if not release:
        link.unlink(missing_ok=True)
        return
    tmp = data_dir / (CURRENT + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(release, tmp)
    os.replace(tmp, link)


def program(data_dir: Path, factory: Path) -> Path:
    """The switchboard program to run: the current release's, or the factory one if there is none."""
    release = current_release(data_dir)
    if release:
        candidate = data_dir / release / "bin" / "switchboard"
        if os.access(candidate, os.X_OK):
            return candidate
    return factory / "bin" / "switchboard"


def running_release(data_dir: Path, prefix: Path) -> str:
    """The release a process whose sys.prefix is `prefix` belongs to ("" = factory)."""
    releases = (data_dir / RELEASES).resolve()
    try:
        relative = prefix.resolve().relative_to(releases)
    except ValueError:
        return ""
    return f"{RELEASES}/{relative.parts[0]}"


def before_start(data_dir: Path, now: float | None = None) -> UpdateState | None:
    """The launcher's decision at each start: note a trial's first start, or roll back an overdue one."""
    state = read_state(data_dir)
    if state is None or state.state != "trial":
        return state
    now = time.time() if now is None else now
    if state.first_start is None:
        state.first_start = now
        write_state(data_dir, state)
        return state
    if now - state.first_start <= TRIAL_SECONDS:
        return state
    return roll_back(data_dir, state, f"version {state.version} did not become healthy within {TRIAL_SECONDS:.0f} s")


def roll_back(data_dir: Path, state: UpdateState, why: str) -> UpdateState:
    """Return to the previous release and the database as it was before the switch."""
    switch_to(data_dir, state.previous)
    saved = data_dir / DB_BEFORE
    if saved.exists():
        # The trial may have migrated the schema: the old version needs the old database.
        for suffix in ("-wal", "-shm"):
            (data_dir / ("switchboard.db" + suffix)).unlink(missing_ok=True)
        os.replace(saved, data_dir / "switchboard.db")
    state.state, state.message = "rolled_back", why
    write_state(data_dir, state)
    return state


def confirm(data_dir: Path, prefix: Path) -> UpdateState | None:
    """Called by a healthy box: if it is the release on trial, the trial ends well; the state, else None."""
    state = read_state(data_dir)
    if state is None or state.state != "trial" or running_release(data_dir, prefix) != state.release:
        return None
    state.state, state.message = "confirmed", f"version {state.version} is healthy"
    write_state(data_dir, state)
    (data_dir / DB_BEFORE).unlink(missing_ok=True)
    return state
