"""The one database seam: open the SQLite file, serialise access, stamp times.

Switchboard shares a single sqlite3 connection between the asyncio thread and the
web thread. SQLite transactions belong to the connection, not the thread, so
without care one thread's statements would land inside the other's transaction.
The rule is therefore simple: every store function holds `db_lock(db)` for its
whole operation (reads included, materialising rows before releasing it), and
writes go through `with transaction(db):`. Keep those blocks short; never await or
do network I/O while holding the lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from appliance.local_time import from_iso  # noqa: F401  (the store's callers import it from here)

# One lock for the process: the box opens one database, and a reentrant lock lets
# store functions call each other inside a transaction.
_LOCK = threading.RLock()


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) the database at `path`, tune it and migrate it."""
    from appliance.store.migrations import migrate  # migrations imports this module

    memory = str(path) == ":memory:"
    if not memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = Database(conn)
    with db_lock(db):
        db.execute("PRAGMA busy_timeout = 5000")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if not memory and mode.lower() != "wal":
            conn.close()
            raise RuntimeError(f"{path}: could not enable WAL journal mode (got {mode!r})")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
    return db


def db_lock(db: Database) -> threading.RLock:
    """The lock that serialises use of `db`'s connection across threads."""
    return _LOCK


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """Hold the lock and run the block atomically; nested blocks become savepoints."""
    with db_lock(db):
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        # IMMEDIATE takes the write lock up front, so another process (backup, CLI)
        # makes us wait busy_timeout at BEGIN instead of failing mid-transaction.
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        try:
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise


def to_iso(value: datetime | str | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-05-01T09:30:00.125Z; None means now."""
    if value is None:
        dt = datetime.now(timezone.utc)
    elif isinstance(value, str):
        dt = from_iso(value)
    else:
        dt = value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Checkpointer:
    """Checkpoints the WAL from its own thread and connection, so fsync never stalls the event loop."""

    def __init__(self, db: Database, path: str | Path, interval: float = 10.0) -> None:
        self._path = str(path)
        self._interval = interval
        self._stop = threading.Event()
        # The box's own connection no longer checkpoints when a commit fills the WAL.
        with db_lock(db):
            db.execute("PRAGMA wal_autocheckpoint = 0")
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> "Checkpointer":
        """Start checkpointing every interval seconds."""
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            while not self._stop.wait(self._interval):
                self._checkpoint(conn, "PASSIVE")
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection, mode: str) -> None:
        try:
            conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # busy or locked: the next round catches up
            logging.getLogger("switchboard.store").debug("WAL checkpoint skipped: %s", exc)

    def stop(self) -> None:
        """Checkpoint one last time and stop."""
        self._stop.set()
        self._thread.join(10)

