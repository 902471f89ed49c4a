"""Helpers for web tests: read the CSRF token off a page, log in, make users."""
from __future__ import annotations

import re
from html import unescape

from appliance.store import users

PASSWORD = "plum-orchard-42"

_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def csrf_from(html: str | bytes) -> str:
    """The CSRF token a page carries (hidden field or meta tag)."""
    text = html.decode() if isinstance(html, bytes) else html
    found = _FIELD.search(text) or _META.search(text)
    assert found, "no CSRF token on the page"
    return unescape(found.group(1))


def login(client, username: str, password: str = PASSWORD, next: str | None = None):  # type: ignore[no-untyped-def]
    """Log in through the form (GET /login for the token, then POST); returns the POST response."""
    page = client.get("/login")
    data = {"username": username, "password": password, "csrf_token": csrf_from(page.data)}
    if next is not None:
        data["next"] = next
    return client.post("/login", data=data)


def make_user(db, username: str, role: str, extension: str | None = None,  # type: ignore[no-untyped-def]
              password: str = PASSWORD) -> int:
    """Create a web user straight in the store; returns the id."""
    return users.create_user(db, username, password, role, extension)
