"""What every `switchboard` sub-command shares: usage errors, opening the store, printing tables."""
from __future__ import annotations

import argparse
from pathlib import Path

from sqlite_utils import Database

from .config import default_data_dir, load_settings
from .control import SOCKET_NAME
from .store.db import open_database


class UsageError(Exception):
    """A wrong argument: printed without a traceback, exit status 2."""


def data_dir(args: argparse.Namespace) -> Path:
    """The --data-dir given, or the default one."""
    return args.data_dir if args.data_dir is not None else default_data_dir()


def open_store(args: argparse.Namespace) -> tuple[Database, Path]:
    """The box's database (migrated) and the path of its control socket."""
    settings = load_settings(data_dir(args), {})
    return open_database(settings.db_path), settings.data_dir / SOCKET_NAME


def print_table(headings: tuple[str, ...] | list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns with a heading line; "(none)" for no rows."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    print("  ".join(h.ljust(w) for h, w in zip(headings, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if not rows:
        print("(none)")
