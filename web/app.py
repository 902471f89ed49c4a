"""Flask app factory: the box's local web pages, served from the box with no CDN."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response

from appliance.local_time import local_time, office_zone, zone_name

from . import admin, auth, console, csrf, customers, events, status, supervisor, system
from .core import close_db

MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # a CSV of some 20 000 customers
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(api, testing: bool = False) -> Flask:  # type: ignore[no-untyped-def]
    """Build the web app around the box's thread-safe facade."""
    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        SECRET_KEY=api.web_secret(),
        SESSION_COOKIE_NAME="switchboard_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        # Open screen-pop streams each hold a worker; keep a few workers for pages and forms.
        SSE_LIMIT=max(2, getattr(api, "web_threads", 32) - 4),
    )
    app.extensions["switchboard"] = api
    zone = office_zone(getattr(api, "timezone", ""))
    # People read the office's local time; the store and the JSON APIs keep UTC.
    app.jinja_env.filters["local"] = lambda value, seconds=True: local_time(value, zone, seconds)
    app.jinja_env.globals["office_zone_name"] = lambda: zone_name(zone)
    app.teardown_appcontext(close_db)
    csrf.init_app(app)
    auth.init_app(app)
    for blueprint in (auth.bp, admin.bp, customers.bp, console.bp, events.bp, supervisor.bp, status.bp, system.bp):
        app.register_blueprint(blueprint)

    @app.get("/healthz")
    def health():  # type: ignore[no-untyped-def]
        # Public, for monitors and the updater: it says only whether the core answers, nothing about calls.
        try:
            api.alive()
        except Exception:
            return Response("not ok\n", status=503, mimetype="text/plain")
        return Response("ok\n", mimetype="text/plain")

    @app.after_request
    def security_headers(response):  # type: ignore[no-untyped-def]
        headers = response.headers
        # The pages load only their own scripts and styles: no inline script, no framing, no sniffing.
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
