"""The box's status page: phones, lines and recent calls, for admins and supervisors."""
from __future__ import annotations

from flask import Blueprint, render_template

from .auth import roles_required
from .core import api

bp = Blueprint("status", __name__)


@bp.get("/status")
@roles_required("admin", "supervisor")
def index():  # type: ignore[no-untyped-def]
    """Registrations, trunks and the latest calls."""
    return render_template("status.html", status=api().status(), calls=api().recent_calls(15))
