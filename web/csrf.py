"""CSRF protection: every unsafe request carries the session's token (form field or header)."""
from __future__ import annotations

import hmac
import secrets

from flask import render_template, request, session
from markupsafe import Markup, escape

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXPIRED = "This form has expired or came from another page. Reload the page and try again."


def csrf_token() -> str:
    """The session's token, made on first use."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def rotate_token() -> str:
    """A fresh token for the session (at login, so a token seen before it is worthless)."""
    token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    """The hidden form input carrying the token."""
    return Markup('<input type="hidden" name="%s" value="%s">') % (FIELD, escape(csrf_token()))


def _valid(sent: str | None) -> bool:
    expected = session.get(SESSION_KEY)
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def _check():  # type: ignore[no-untyped-def]
    if request.method not in UNSAFE:
        return None
    sent = request.headers.get(HEADER) or request.form.get(FIELD)
    if _valid(sent):
        return None
    if request.path.startswith("/api/") or request.accept_mimetypes.best_match(
            ["text/html", "application/json"]) == "application/json":
        return {"error": EXPIRED}, 400
    return render_template("error.html", title="Please reload", message=EXPIRED), 400


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    """Check every unsafe request and give templates csrf_field() and csrf_token()."""
    app.before_request(_check)
    app.jinja_env.globals.update(csrf_field=csrf_field, csrf_token=csrf_token)
