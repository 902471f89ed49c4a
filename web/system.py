"""The System page (admins): version and updates, backups to download, the clock."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from .auth import current_user, roles_required
from .core import api

bp = Blueprint("system", __name__)
log = logging.getLogger("switchboard.web")


@bp.get("/system")
@roles_required("admin")
def index():  # type: ignore[no-untyped-def]
    """What runs, what the last update did, the backups."""
    return render_template("system.html", info=api().system_info())


@bp.post("/system/backups")
@roles_required("admin")
def backup_now():  # type: ignore[no-untyped-def]
    """Make a backup now."""
    try:
        name = api().backup_now()
    except Exception as exc:  # noqa: BLE001 - a full card, say: the page says so
        flash(f"The backup failed: {exc}", "error")
    else:
        flash(f"Backup {name} made.", "status")
        log.info("backup %s made by %s from the web", name, current_user()["username"])
    return redirect(url_for("system.index"), 303)


@bp.get("/system/backups/<name>")
@roles_required("admin")
def download(name: str):  # type: ignore[no-untyped-def]
    """Download one backup (only the box's own backup files can be named)."""
    path = api().backup_file(name)
    if path is None:
        abort(404)
    log.info("backup %s downloaded by %s", name, current_user()["username"])
    return send_file(path, as_attachment=True, download_name=name, mimetype="application/vnd.sqlite3")


@bp.post("/system/update")
@roles_required("admin")
def update():  # type: ignore[no-untyped-def]
    """Take an update file and install it; the box restarts into it (and rolls back if it is not healthy)."""
    request.max_content_length = api().max_update_bytes  # this form only; the rest of the web keeps the small limit
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose an update file first.", "error")
        return redirect(url_for("system.index"), 303)
    path = api().upload_path(upload.filename)
    upload.save(path)
    try:
        api().start_update(path.name)
    except ValueError as exc:
        path.unlink(missing_ok=True)
        flash(f"The update was refused: {exc}", "error")
        return redirect(url_for("system.index"), 303)
    log.warning("update %s started by %s from the web", upload.filename, current_user()["username"])
    flash("Installing the update. The box restarts into it in a few minutes; reload this page to follow.", "status")
    return redirect(url_for("system.index"), 303)
