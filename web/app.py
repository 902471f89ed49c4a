"""Flask app factory: the box's local web pages, served from the box with no CDN."""
from __future__ import annotations

from flask import Flask, jsonify, render_template


def create_app(api, testing: bool = False) -> Flask:  # type: ignore[no-untyped-def]
    """Build the web app around the box's thread-safe facade."""
    app = Flask(__name__)
    app.config["TESTING"] = testing

    @app.get("/")
    def status_page():  # type: ignore[no-untyped-def]
        return render_template("status.html", status=api.status(), calls=api.recent_calls(15))

    @app.get("/healthz")
    def health():  # type: ignore[no-untyped-def]
        status = api.status()
        return jsonify({"ok": True, "active_calls": status["active_calls"], "trunks": status["trunks"]})

    return app
