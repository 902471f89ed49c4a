"""Login, logout, the first-admin setup page, and the gate every request passes through."""
from __future__ import annotations

import functools
import hmac
import logging
import re
from urllib.parse import urlsplit

from flask import (Blueprint, current_app, flash, g, jsonify, redirect, render_template, request,
                   session, url_for)
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from appliance.store import users

from .core import api, db
from .csrf import rotate_token
from .throttle import LoginThrottle

log = logging.getLogger("switchboard.web")

bp = Blueprint("auth", __name__)

THROTTLE_KEY = "switchboard.login_throttle"
# Paths anyone may reach (the rest need a login, and an admin must exist first).
_PUBLIC_PATHS = ("/login", "/setup", "/healthz")
_HOME = {"agent": ("console.agent", "customers.index"),
         "supervisor": ("supervisor.index", "status.index", "customers.index"),
         "admin": ("status.index", "admin.users")}


# --- helpers other views use ---


def current_user() -> dict | None:
    """The logged-in user's dict ({id, username, role, extension, ...}), or None."""
    if "user" not in g:
        g.user = _session_user()
    return g.user


def roles_required(*roles: str):  # type: ignore[no-untyped-def]
    """Let only users with one of `roles` reach the view; others get a 403 page (or JSON)."""

    def decorate(view):  # type: ignore[no-untyped-def]
        @functools.wraps(view)
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            user = current_user()
            if user is None:
                return _login_required()
            if user["role"] not in roles:
                return _forbidden()
            return view(*args, **kwargs)

        return wrapped

    return decorate


def optional_url(endpoint: str, **values) -> str | None:  # type: ignore[no-untyped-def]
    """url_for, or None when the endpoint does not exist (yet)."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def throttle() -> LoginThrottle:
    """The app's login throttle."""
    return current_app.extensions[THROTTLE_KEY]


def wants_json() -> bool:
    """True for API and event-stream requests and for clients that ask for JSON."""
    path = request.path
    if path.startswith("/api/") or path == "/events" or path.startswith("/events/"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def home_url(user: dict) -> str:
    """Where a user lands after logging in: their role's main page."""
    for endpoint in _HOME.get(user["role"], ()):
        url = optional_url(endpoint)
        if url is not None:
            return url
    return url_for("auth.home")


def safe_next(target: str | None) -> str | None:
    """A same-site relative path to go back to after login, or None for anything else."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if re.search(r"[\x00-\x1f\x7f\\]", target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# --- the gate ---


def _session_user() -> dict | None:
    uid = session.get("uid")
    if uid is None:
        return None
    user = users.get_user(db(), uid)
    if user is None or user["disabled"] or user["session_epoch"] != session.get("epoch"):
        session.clear()
        return None
    return user


def _is_public(path: str) -> bool:
    return path in _PUBLIC_PATHS or path.startswith("/static/")


def _login_required():  # type: ignore[no-untyped-def]
    if wants_json():
        return jsonify({"error": "login required", "login": url_for("auth.login")}), 401
    target = None
    if request.method == "GET":
        target = safe_next(request.full_path.rstrip("?"))
    return redirect(url_for("auth.login", next=target) if target else url_for("auth.login"))


def _forbidden():  # type: ignore[no-untyped-def]
    message = "Your account does not have access to this page."
    if wants_json():
        return jsonify({"error": message}), 403
    return render_template("error.html", title="Not allowed", message=message), 403


def _gate():  # type: ignore[no-untyped-def]
    path = request.path
    if path.startswith("/static/") or path == "/healthz":
        return None
    if not users.has_admin(db()):
        if path == "/setup":
            return None
        if wants_json():
            return jsonify({"error": "no admin yet: open /setup"}), 401
        return redirect(url_for("auth.setup"))
    if _is_public(path):
        return None
    if current_user() is None:
        return _login_required()
    return None


def _error_page(exc: HTTPException):  # type: ignore[no-untyped-def]
    if wants_json():
        return jsonify({"error": exc.description}), exc.code
    titles = {404: "Page not found", 405: "Not allowed here", 413: "Too large"}
    return render_template("error.html", title=titles.get(exc.code, exc.name), message=exc.description), exc.code


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    """Install the login gate, the throttle, template helpers and friendly error pages."""
    # The throttle hangs on the box's facade, so `switchboard user unlock` reaches it through the control socket.
    api = app.extensions.get("switchboard")
    found = getattr(api, "login_throttle", None)
    if found is None:
        found = LoginThrottle()
        if api is not None:
            api.login_throttle = found
    app.extensions.setdefault(THROTTLE_KEY, found)
    app.before_request(_gate)
    app.jinja_env.globals.update(optional_url=optional_url)

    @app.context_processor
    def user_in_templates() -> dict:
        return {"current_user": current_user()}

    for code in (404, 405, 413):
        app.register_error_handler(code, _error_page)


# --- views ---


def _start_session(user: dict) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user["id"]
    session["epoch"] = user["session_epoch"]
    rotate_token()
    g.user = user


def _wait_message(minutes: int) -> str:
    return f"Too many failed attempts. Try again in {minutes} minute{'' if minutes == 1 else 's'}."


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    """The front door: the user's main page."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login"))
    url = home_url(user)
    if url != url_for("auth.home"):
        return redirect(url)
    return render_template("error.html", title="Welcome", message="There is no page for your role yet.")


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    """The login form; after it, the page asked for (if on this site) or the role's main page."""
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        user = current_user()
        if user is not None:
            return redirect(target or home_url(user))
        return render_template("login.html", next=target, username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    minutes = throttle().blocked_minutes(address, username)
    if minutes:
        log.warning("login refused while locked out: user %r from %s", username, address)
        return render_template("login.html", next=target, username=username, error=_wait_message(minutes)), 429
    user = users.authenticate(db(), username, password)
    if user is None:
        throttle().failure(address, username)
        log.warning("failed login: user %r from %s", username, address)
        return render_template("login.html", next=target, username=username,
                               error="Wrong username or password."), 401
    throttle().success(username, address)
    _start_session(user)
    log.info("login: %s (%s) from %s", user["username"], user["role"], address)
    return redirect(target or home_url(user))


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    """End the session: every session of the user, so a copied cookie is worthless after logout."""
    user = current_user()
    if user is not None:
        users.end_sessions(db(), user["id"])
    session.clear()
    g.user = None
    flash("You are logged out.", "status")
    return redirect(url_for("auth.login"))


def _normalise_code(text: str) -> str:
    raw = re.sub(r"[\s-]", "", text or "").upper()
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


@bp.route("/setup", methods=["GET", "POST"])
def setup():  # type: ignore[no-untyped-def]
    """Create the first admin, proving access to the box with the code from its log."""
    code = api().setup_code()
    if code is None:
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("setup.html", username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"

    def refuse(message: str, status: int = 400):  # type: ignore[no-untyped-def]
        return render_template("setup.html", username=username, error=message), status

    minutes = throttle().blocked_minutes(address)
    if minutes:
        return refuse(_wait_message(minutes), 429)
    if not hmac.compare_digest(_normalise_code(request.form.get("code", "")).encode(), code.encode()):
        throttle().failure(address)
        log.warning("wrong setup code from %s", address)
        return refuse("That setup code is wrong. It is in switchboard-setup-code.txt on the SD card, on the box's screen, or in its log.")
    if password != request.form.get("password2", ""):
        return refuse("The two passwords differ.")
    try:
        user_id = users.create_user(db(), username, password, "admin")
    except users.UserError as exc:
        return refuse(str(exc))
    user = users.get_user(db(), user_id)
    log.warning("first admin %s created from %s", username, address)
    _start_session(user)
    flash(f"Welcome, {user['username']}. You are the box's admin: add users under Users.", "status")
    return redirect(home_url(user))
