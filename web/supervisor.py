"""The supervisor's page: queues and agents live, and the CRM's alerts to act on."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.crm.alerts import acknowledge_alert, open_alerts

from .auth import current_user, roles_required
from .core import api, db

bp = Blueprint("supervisor", __name__)


def _live() -> dict:
    return {"queues": api().queue_status()["queues"], "alerts": open_alerts(db())}


@bp.get("/supervisor")
@roles_required("admin", "supervisor")
def index():  # type: ignore[no-untyped-def]
    """Queues, agents and open alerts; the page refreshes its parts on live events."""
    return render_template("supervisor.html", **_live())


@bp.get("/supervisor/live")
@roles_required("admin", "supervisor")
def live():  # type: ignore[no-untyped-def]
    """The page's live parts alone, fetched again when an event says something changed."""
    return render_template("_supervisor_live.html", **_live())


@bp.post("/supervisor/alerts/<int:alert_id>/ack")
@roles_required("admin", "supervisor")
def acknowledge(alert_id: int):  # type: ignore[no-untyped-def]
    """Mark an alert as seen and dealt with."""
    if acknowledge_alert(db(), alert_id, current_user()["username"]):
        flash("Alert acknowledged.", "info")
    else:
        flash("That alert was already acknowledged.", "info")
    return redirect(url_for("supervisor.index"))


@bp.post("/supervisor/callbacks/cancel")
@roles_required("admin", "supervisor")
def cancel_callback():  # type: ignore[no-untyped-def]
    """Cancel a callback the office owes (the customer called back in, say)."""
    callback_id = request.form.get("id", "")
    if callback_id and api().cancel_callback(callback_id, current_user()["username"]):
        flash("Callback cancelled.", "info")
    else:
        flash("That callback was no longer pending.", "info")
    return redirect(url_for("supervisor.index"))
