"""What every `switchboard` sub-command shares: usage errors, opening the store, printing tables."""
from __future__ import annotations

import argparse
from pathlib import Path

from sqlite_utils import Database

import os

from .config import SYSTEM_DATA_DIR, default_data_dir, load_settings
from .control import SOCKET_NAME
from .store.db import open_database

DB_NAME = "switchboard.db"


class UsageError(Exception):
    """A wrong argument: printed without a traceback, exit status 2."""


def data_dir(args: argparse.Namespace) -> Path:
    """The data folder: --data-dir, else $SWITCHBOARD_DATA_DIR, else the running service's, else the user's.

    An installer who runs `switchboard provision office.toml` over SSH means the box that runs as a
    service, whose folder is /var/lib/switchboard, not ~/.local/share/switchboard.
    """
    if getattr(args, "data_dir", None) is not None:
        return args.data_dir
    chosen = os.environ.get("SWITCHBOARD_DATA_DIR")
    if chosen:
        return Path(chosen)
    if service_data_dir() is not None:
        return SYSTEM_DATA_DIR
    return default_data_dir()


def service_data_dir() -> Path | None:
    """The system service's data folder when a service's box lives there (socket or database) and we may use it."""
    folder = SYSTEM_DATA_DIR
    for name in (SOCKET_NAME, DB_NAME):
        path = folder / name
        if path.exists() and os.access(path, os.R_OK | os.W_OK):
            return folder
    return None


def open_store(args: argparse.Namespace, create: bool = False) -> tuple[Database, Path]:
    """The box's database (migrated) and the path of its control socket.

    Read commands (create=False) refuse a folder without a database instead of making an empty one
    that a running box would never read.
    """
    settings = load_settings(data_dir(args), {})
    if not create and not settings.db_path.exists():
        raise UsageError(f"no Switchboard database in {settings.data_dir} (nothing is set up there yet). "
                         "Give the box's folder with --data-dir (the service uses /var/lib/switchboard), "
                         "or set it up with `switchboard provision FILE` or `switchboard run`.")
    return open_database(settings.db_path), settings.data_dir / SOCKET_NAME


def print_table(headings: tuple[str, ...] | list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns with a heading line; "(none)" for no rows."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    print("  ".join(h.ljust(w) for h, w in zip(headings, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if not rows:
        print("(none)")
