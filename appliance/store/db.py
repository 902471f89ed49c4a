"""The one database seam: open the SQLite file, serialise access, stamp times.

The event loop has its own connection, and the web's worker threads each open theirs
(open_connection): SQLite's WAL lets readers in beside the writer, so a slow web read (a
CSV export) does not hold up the loop. A connection is still shared by whoever holds the
Database: SQLite transactions belong to the connection, not the thread, so every store
function holds `db_lock(db)`, the lock of that Database, for its whole operation (reads
included, materialising rows before releasing it), and writes go through
`with transaction(db):`. Keep those blocks short; never await or do network I/O while
holding the lock.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from appliance.local_time import from_iso  # noqa: F401  (the store's callers import it from here)

# Each Database gets its own reentrant lock (store functions call each other inside a
# transaction); Databases made elsewhere (tests, tools) get one on first use.
_LOCKS: "weakref.WeakKeyDictionary[Database, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) the database at `path`, tune it and migrate it."""
    from appliance.store.migrations import migrate  # migrations imports this module

    memory = str(path) == ":memory:"
    if not memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    with db_lock(db):
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if not memory and mode.lower() != "wal":
            db.conn.close()
            raise RuntimeError(f"{path}: could not enable WAL journal mode (got {mode!r})")
        migrate(db)
    return db


def open_connection(path: str | Path) -> Database:
    """Another connection to a database open_database() has set up (WAL, migrated): one per web thread."""
    return _connect(path)


def _connect(path: str | Path) -> Database:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = Database(conn)
    with db_lock(db):
        db.execute("PRAGMA busy_timeout = 5000")
        # FULL: in WAL mode, every COMMIT waits for the WAL's fsync, so a finished call record
        # survives a power cut; NORMAL could lose the last commits (docs/IMAGE.md, "Power loss").
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
    return db


def db_lock(db: Database) -> threading.RLock:
    """The lock that serialises use of `db`'s connection across threads."""
    lock = _LOCKS.get(db)
    if lock is None:
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(db, threading.RLock())
    return lock


def query_one(db: Database, sql: str, params: list | None = None) -> dict | None:
    """The first row of a query as a dict, or None, read under the database's lock."""
    with db_lock(db):
        rows = list(db.query(sql, params or []))
    return rows[0] if rows else None


def query_all(db: Database, sql: str, params: list | None = None) -> list[dict]:
    """Every row of a query as dicts, read under the database's lock."""
    with db_lock(db):
        return list(db.query(sql, params or []))


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

