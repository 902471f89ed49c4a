"""How a request reaches the box: its thread-safe facade (BoxApi) and its database."""
from __future__ import annotations

from typing import Any

from flask import current_app


def api() -> Any:
    """The box's facade (appliance.api.BoxApi) the app was built around."""
    return current_app.extensions["switchboard"]


def db() -> Any:
    """The box's database; store functions lock it, so the web thread may call them."""
    return api().db
