"""Schema migrations, applied in order and tracked by PRAGMA user_version.

Migrations are frozen once released: change the schema by appending a function,
never by editing an old one. Each runs in its own transaction together with the
user_version bump, so a failure leaves the database at the previous version.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

from appliance.store.db import db_lock, transaction


def _m001_initial(db: Database) -> None:
    """Directory, trunks, call records and settings."""
    db.execute(
        """
        CREATE TABLE extensions (
            number TEXT PRIMARY KEY,
            name TEXT,
            ha1_md5 TEXT,
            ha1_sha256 TEXT,
            realm TEXT,
            allow_external INTEGER DEFAULT 1,
            allow_international INTEGER DEFAULT 0,
            source TEXT DEFAULT 'provision',
            updated_at TEXT
        )
        """
    )
    # The trunk secret is kept in plain text on purpose: the box must answer the
    # ITSP's digest challenge with it, so a hash would be useless.
    db.execute(
        """
        CREATE TABLE trunks (
            name TEXT PRIMARY KEY,
            host TEXT,
            port INTEGER,
            transport TEXT DEFAULT 'udp',
            username TEXT,
            secret TEXT,
            register INTEGER,
            inbound TEXT,
            outbound_prefix TEXT,
            expires INTEGER DEFAULT 300,
            from_domain TEXT,
            source TEXT,
            updated_at TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            sip_call_id TEXT,
            direction TEXT,
            line TEXT,
            from_number TEXT,
            from_name TEXT,
            to_number TEXT,
            answered_by TEXT,
            started_at TEXT,
            answered_at TEXT,
            ended_at TEXT,
            disposition TEXT,
            sip_status INTEGER,
            hangup_by TEXT,
            duration REAL,
            extra TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_calls_started_at ON calls(started_at)")
    db.execute("CREATE INDEX idx_calls_from_number ON calls(from_number)")
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")


def _m002_registrations(db: Database) -> None:
    """Registered contacts, so a restart keeps phones reachable and the CLI can show them."""
    db.execute(
        """
        CREATE TABLE registrations (
            aor TEXT NOT NULL,
            contact TEXT NOT NULL,
            transport TEXT,
            host TEXT,
            port INTEGER,
            expires_at REAL,
            user_agent TEXT,
            PRIMARY KEY (aor, contact)
        )
        """
    )


def _m003_ivr(db: Database) -> None:
    """IVR menus, business hours, callback requests, and the IVR path and recording of each call."""
    # Menus and hours are stored whole as JSON (IvrMenu/BusinessHours.to_dict); the number
    # column is a copy kept for lookups by dialled number and for uniqueness.
    db.execute(
        """
        CREATE TABLE ivr_menus (
            name TEXT PRIMARY KEY,
            number TEXT UNIQUE,
            definition TEXT NOT NULL,
            source TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE business_hours (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            source TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE callbacks (
            id TEXT PRIMARY KEY,
            number TEXT NOT NULL,
            name TEXT,
            queue TEXT NOT NULL DEFAULT '',
            source TEXT,
            call_id TEXT,
            requested_at TEXT NOT NULL,
            position_at TEXT NOT NULL,
            due_at TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            outcome TEXT,
            updated_at TEXT
        )
        """
    )
    # A caller who asks twice keeps one place in line.
    db.execute("CREATE UNIQUE INDEX idx_callbacks_pending ON callbacks(number, queue) WHERE state = 'pending'")
    db.execute("CREATE INDEX idx_callbacks_state_position ON callbacks(state, position_at)")
    db.execute("ALTER TABLE calls ADD COLUMN ivr_path TEXT")  # JSON list of steps through the menus
    db.execute("ALTER TABLE calls ADD COLUMN recording TEXT")  # path relative to the data folder


def _m004_queues(db: Database) -> None:
    """Queues, agent logins and pauses, queue statistics, customers, and callback attempts."""
    # Stored whole as JSON (QueueConfig.to_dict), like ivr_menus; number is a lookup copy.
    db.execute(
        """
        CREATE TABLE queues (
            name TEXT PRIMARY KEY,
            number TEXT UNIQUE,
            definition TEXT NOT NULL,
            source TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE agent_logins (
            extension TEXT,
            queue TEXT,
            logged_in_at TEXT,
            PRIMARY KEY (extension, queue)
        )
        """
    )
    db.execute("CREATE TABLE agent_pauses (extension TEXT PRIMARY KEY, reason TEXT, paused_at TEXT)")
    # Times in the two statistics tables are epoch seconds (REAL), not ISO text: waits, talk
    # times and service levels are arithmetic on them, done in SQL.
    db.execute(
        """
        CREATE TABLE queue_entries (
            id TEXT PRIMARY KEY,
            queue TEXT NOT NULL,
            call_id TEXT,
            number TEXT,
            name TEXT,
            vip INTEGER NOT NULL DEFAULT 0,
            entered_at REAL NOT NULL,
            answered_at REAL,
            left_at REAL,
            ended_at REAL,
            outcome TEXT,
            agent TEXT,
            callback_id TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_queue_entries_queue_entered ON queue_entries(queue, entered_at)")
    db.execute(
        """
        CREATE TABLE queue_offers (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            entry_id TEXT,
            callback_id TEXT,
            agent TEXT NOT NULL,
            rang_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_queue_offers_agent_rang ON queue_offers(agent, rang_at)")
    db.execute("CREATE INDEX idx_queue_offers_queue_rang ON queue_offers(queue, rang_at)")
    # Interim: phone -> segment for VIP routing, until the CRM issue brings real customers.
    db.execute(
        """
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            phone TEXT NOT NULL UNIQUE,
            name TEXT,
            segment TEXT NOT NULL DEFAULT 'new',
            created_at TEXT
        )
        """
    )
    db.execute("ALTER TABLE callbacks ADD COLUMN line TEXT")  # trunk name, or "extension"
    db.execute("ALTER TABLE callbacks ADD COLUMN next_attempt_at TEXT")
    db.execute("ALTER TABLE callbacks ADD COLUMN last_status TEXT")
    db.execute("ALTER TABLE callbacks ADD COLUMN agent TEXT")
    db.execute("ALTER TABLE callbacks ADD COLUMN record_id TEXT")


def _m005_crm_and_users(db: Database) -> None:
    """The CRM (customers with several phones, wrap-ups, alerts) and the web's users."""
    # customers is rebuilt: m004's interim table had one phone per row; phones now live apart.
    db.execute(
        """
        CREATE TABLE crm_customers (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            company TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            segment TEXT NOT NULL DEFAULT 'new',
            segment_override TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            notes TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    # A segment set by hand in m004 (anything but "new") becomes a manual override.
    db.execute(
        """
        INSERT INTO crm_customers (id, name, segment, segment_override, created_at, updated_at)
        SELECT id, COALESCE(name, ''), segment, CASE WHEN segment != 'new' THEN segment END,
               COALESCE(created_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
               COALESCE(created_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        FROM customers
        """
    )
    db.execute(
        """
        CREATE TABLE customer_phones (
            phone TEXT PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES crm_customers(id) ON DELETE CASCADE,
            position INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("INSERT INTO customer_phones (phone, customer_id, position) SELECT phone, id, 0 FROM customers")
    db.execute("DROP TABLE customers")
    db.execute("ALTER TABLE crm_customers RENAME TO customers")
    db.execute("CREATE INDEX idx_customer_phones_customer ON customer_phones(customer_id)")
    db.execute("CREATE INDEX idx_customers_name ON customers(name COLLATE NOCASE)")
    db.execute("ALTER TABLE calls ADD COLUMN customer_id INTEGER")
    db.execute("CREATE INDEX idx_calls_customer ON calls(customer_id, started_at)")
    # One wrap-up per agent per call: a transferred call can have two.
    db.execute(
        """
        CREATE TABLE wrapups (
            call_id TEXT NOT NULL,
            agent TEXT NOT NULL,
            customer_id INTEGER,
            outcome TEXT NOT NULL,
            moods TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '',
            callback_at TEXT,
            callback_id TEXT,
            saved_by TEXT,
            saved_at TEXT NOT NULL,
            PRIMARY KEY (call_id, agent)
        )
        """
    )
    db.execute("CREATE INDEX idx_wrapups_customer ON wrapups(customer_id, saved_at)")
    db.execute(
        """
        CREATE TABLE crm_alerts (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER,
            call_id TEXT,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL,
            acknowledged_by TEXT,
            acknowledged_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_crm_alerts_open ON crm_alerts(acknowledged_at, created_at)")
    db.execute(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
            extension TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            session_epoch INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )


def _m006_security(db: Database) -> None:
    """Callbacks remember whose dialling rights they use; bans survive a restart."""
    db.execute("ALTER TABLE callbacks ADD COLUMN dial_as TEXT")  # extension whose rights apply; NULL: the box's
    db.execute(
        """
        CREATE TABLE bans (
            source TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            until TEXT NOT NULL
        )
        """
    )


MIGRATIONS: list[Callable[[Database], None]] = [
    _m001_initial,
    _m002_registrations,
    _m003_ivr,
    _m004_queues,
    _m005_crm_and_users,
    _m006_security,
]


def schema_version(db: Database) -> int:
    """The migration number the database is at (0 for a fresh file)."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Database) -> int:
    """Apply pending migrations and return the resulting schema version."""
    with db_lock(db):
        current = schema_version(db)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this Switchboard "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            with transaction(db):
                step(db)
                db.execute(f"PRAGMA user_version = {version}")
        return schema_version(db)
