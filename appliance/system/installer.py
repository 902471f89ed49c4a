"""Install an update file into a new virtual environment and put it on trial (see releases.py)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from .backups import copy_database
from .releases import DB_BEFORE, RELEASES, UpdateState, current_release, switch_to, write_state

MAX_UPDATE_BYTES = 256 * 1024 * 1024
PROJECT_WHEEL = re.compile(r"switchboard_pbx-([0-9][0-9A-Za-z.+!]*)-py3-none-any\.whl")
SAFE_WHEEL = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
KEEP_RELEASES = 2  # besides the one in use: the previous one (for a rollback) and one more
PIP_TIMEOUT = 900.0


class UpdateError(Exception):
    """Why an update file cannot be installed, in words for the owner."""


def unpack(update: Path, into: Path) -> str:
    """Put the file's wheels into `into`; the project version it carries. UpdateError if it is not an update."""
    if not update.is_file():
        raise UpdateError(f"{update}: no such file")
    if update.stat().st_size > MAX_UPDATE_BYTES:
        raise UpdateError(f"{update.name}: larger than {MAX_UPDATE_BYTES // 2**20} MB, not an update")
    into.mkdir(parents=True, exist_ok=True)
    if update.name.endswith(".whl"):
        # A file handed over by the CLI or the web is called upload-TIME-NAME; pip needs the wheel's own name.
        shutil.copyfile(update, into / re.sub(r"^upload-\d+-", "", update.name))
    else:
        try:
            with tarfile.open(update) as archive:
                for member in archive.getmembers():
                    name = Path(member.name).name
                    # Only plain wheel files, flattened: no links, devices or paths out of `into`.
                    if member.isfile() and SAFE_WHEEL.fullmatch(name):
                        source = archive.extractfile(member)
                        assert source is not None
                        with source, open(into / name, "wb") as out:
                            shutil.copyfileobj(source, out)
        except (tarfile.TarError, OSError) as exc:
            raise UpdateError(f"{update.name}: not a wheel or a tar of wheels ({exc})") from None
    versions = [m.group(1) for p in into.iterdir() if (m := PROJECT_WHEEL.fullmatch(p.name))]
    if len(versions) != 1:
        raise UpdateError(f"{update.name}: expected one switchboard_pbx wheel, found {len(versions)}")
    return versions[0]


def install(update: Path, data_dir: Path, factory: Path, python: str | None = None,
            say: Callable[[str], None] = lambda line: None) -> UpdateState:
    """Install the update beside the running version, snapshot the database, switch `current` to it on trial."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    incoming = data_dir / f"incoming-{stamp}"
    target: Path | None = None
    try:
        version = unpack(update, incoming)
        name = f"{version}-{stamp}"
        release = f"{RELEASES}/{name}"
        target = data_dir / release
        write_state(data_dir, UpdateState("installing", version, release, current_release(data_dir)))
        say(f"installing version {version} into {target}")
        base = python or getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(target)], "create the environment")
        links = ["--find-links", str(incoming)]
        wheelhouse = factory.parent / "wheelhouse"
        if wheelhouse.is_dir():
            links += ["--find-links", str(wheelhouse)]
        _run([str(target / "bin" / "python"), "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
              "--quiet", *links, f"switchboard-pbx=={version}"], "install the update (are all its wheels in the file?)")
        _run([str(target / "bin" / "switchboard"), "--help"], "start the new version's command")
        say("saving the database as it is, for a rollback")
        snapshot(data_dir / "switchboard.db", data_dir / DB_BEFORE)
        state = UpdateState("trial", version, release, current_release(data_dir),
                            message=f"version {version} installed; it must be healthy within 60 s of its start")
        write_state(data_dir, state)
        switch_to(data_dir, release)
        prune(data_dir, keep={release, state.previous})
        return state
    except UpdateError as exc:
        failed = UpdateState("failed", message=str(exc), previous=current_release(data_dir))
        write_state(data_dir, failed)
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def snapshot(db_path: Path, to: Path) -> None:
    """The database as it is before the switch (nothing to copy on a box that never ran)."""
    if db_path.exists():
        copy_database(db_path, to)


def prune(data_dir: Path, keep: set[str]) -> None:
    """Remove old releases but the newest KEEP_RELEASES and those in `keep`."""
    folder = data_dir / RELEASES
    if not folder.is_dir():
        return
    releases = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in releases[KEEP_RELEASES:]:
        if f"{RELEASES}/{path.name}" not in keep:
            shutil.rmtree(path, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"could not {what}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UpdateError(f"could not {what}: " + " / ".join(tail))
