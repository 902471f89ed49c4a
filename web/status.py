"""The box's status page: phones, lines and recent calls, for admins and supervisors."""
from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .auth import current_user, roles_required
from .core import api

bp = Blueprint("status", __name__)
log = logging.getLogger("switchboard.web")


@bp.get("/status")
@roles_required("admin", "supervisor")
def index():  # type: ignore[no-untyped-def]
    """Registrations, trunks and the latest calls."""
    return render_template("status.html", status=api().status(), calls=api().recent_calls(15))


@bp.post("/status/bans/lift")
@roles_required("admin")
def lift_ban():  # type: ignore[no-untyped-def]
    """An admin lifts the ban on one address (a phone that had a wrong password, say)."""
    source = request.form.get("source", "").strip()
    if source and api().lift_ban(source):
        flash(f"{source} may connect again.", "status")
        log.warning("ban of %s lifted by %s from the web", source, current_user()["username"])
    else:
        flash(f"{source or 'That address'} is not banned.", "error")
    return redirect(url_for("status.index"))
