"""How a request reaches the box: its thread-safe facade (BoxApi) and a database connection of its own."""
from __future__ import annotations

from typing import Any

from flask import current_app, g


def api() -> Any:
    """The box's facade (appliance.api.BoxApi) the app was built around."""
    return current_app.extensions["switchboard"]


def db() -> Any:
    """This request's database connection (as flaskr's get_db): the web's own, closed when the request ends."""
    if "db" not in g:
        g.db = api().open_connection()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Close the request's connection, if it opened one (never the loop's)."""
    conn = g.pop("db", None)
    if conn is not None and conn is not api().db:
        conn.conn.close()
