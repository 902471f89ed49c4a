"""Copies of the database in the data folder: made with SQLite's online backup, the newest few kept."""
from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

FOLDER = "backups"
NAME = re.compile(r"switchboard-(\d{8}-\d{6})\.sqlite")


@dataclass(frozen=True)
class Backup:
    """One backup file."""

    name: str
    size: int
    taken_at: datetime


def backup_dir(data_dir: Path) -> Path:
    """Where the backups live: a folder beside the database."""
    return data_dir / FOLDER


def list_backups(folder: Path) -> list[Backup]:
    """The backups there, newest first (only files this module names; anything else is ignored)."""
    found = []
    for path in folder.glob("switchboard-*.sqlite") if folder.is_dir() else ():
        match = NAME.fullmatch(path.name)
        if not match:
            continue
        taken = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
        found.append(Backup(path.name, path.stat().st_size, taken))
    return sorted(found, key=lambda b: b.name, reverse=True)


def find_backup(folder: Path, name: str) -> Path | None:
    """The path of a backup by its exact name, or None: no other file (no "../") can be named."""
    if not NAME.fullmatch(name):
        return None
    path = folder / name
    return path if path.is_file() else None


def make_backup(db_path: Path, folder: Path, keep: int, now: datetime | None = None) -> Backup:
    """Copy the live database consistently (WAL readers do not block the box), then keep the newest `keep`."""
    taken = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"switchboard-{taken:%Y%m%d-%H%M%S}.sqlite"
    copy_database(db_path, folder / name)
    prune(folder, keep)
    return Backup(name, (folder / name).stat().st_size, taken.replace(microsecond=0))


def copy_database(db_path: Path, to: Path) -> None:
    """A consistent copy of a live database (SQLite's online backup) as one fsynced file, put in place whole."""
    partial = to.with_name(to.name + ".partial")
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            # A few hundred pages at a time: the box's writes go on between the steps.
            source.backup(target, pages=256)
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, to)


def prune(folder: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` backups (and leftovers of interrupted ones); the names deleted."""
    gone = [b.name for b in list_backups(folder)[keep:]]
    for name in gone:
        (folder / name).unlink(missing_ok=True)
    for leftover in folder.glob("*.partial"):
        leftover.unlink(missing_ok=True)
    return gone
