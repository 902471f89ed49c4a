"""Admin pages: the web's users (create, reset a password, disable, change a role)."""
from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.store import directory, users

from .auth import current_user, roles_required
from .core import db

log = logging.getLogger("switchboard.web")

bp = Blueprint("admin", __name__)


def _page(form: dict | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    values = {"username": "", "role": "agent", "extension": ""}
    values.update(form or {})
    return render_template("admin_users.html", users=users.list_users(db()), roles=users.ROLES,
                           extensions=directory.list_extensions(db()), form=values), status


def _refuse(message: str, form: dict | None = None):  # type: ignore[no-untyped-def]
    flash(message, "error")
    return _page(form, 400)


def _target(user_id: int) -> dict | None:
    return users.get_user(db(), user_id)


@bp.get("/admin/users", endpoint="users")
@roles_required("admin")
def users_page():  # type: ignore[no-untyped-def]
    """The table of users and the form to add one."""
    return _page()


@bp.post("/admin/users")
@roles_required("admin")
def create():  # type: ignore[no-untyped-def]
    """Add a user."""
    form = {k: request.form.get(k, "").strip() for k in ("username", "role", "extension")}
    password = request.form.get("password", "")
    try:
        users.create_user(db(), form["username"], password, form["role"], form["extension"] or None)
    except users.UserError as exc:
        return _refuse(str(exc), form)
    log.info("web user %s (%s) created by %s", form["username"], form["role"], current_user()["username"])
    flash(f"User {form['username']} created.", "status")
    return redirect(url_for("admin.users"), 303)


@bp.post("/admin/users/<int:user_id>/password")
@roles_required("admin")
def password(user_id: int):  # type: ignore[no-untyped-def]
    """Give a user a new password (their sessions end)."""
    target = _target(user_id)
    if target is None:
        return _refuse("There is no such user.")
    try:
        users.set_password(db(), user_id, request.form.get("password", ""))
    except users.UserError as exc:
        return _refuse(f"{target['username']}: {exc}")
    log.info("password of web user %s reset by %s", target["username"], current_user()["username"])
    if target["id"] == current_user()["id"]:
        flash("Your password was changed; log in with the new one.", "status")
        return redirect(url_for("auth.login"), 303)
    flash(f"New password set for {target['username']}; their open sessions are logged out.", "status")
    return redirect(url_for("admin.users"), 303)


def _set_disabled(user_id: int, disabled: bool):  # type: ignore[no-untyped-def]
    target = _target(user_id)
    if target is None:
        return _refuse("There is no such user.")
    if disabled and target["id"] == current_user()["id"]:
        return _refuse("You cannot disable your own account.")
    try:
        users.set_disabled(db(), user_id, disabled)
    except users.UserError as exc:
        return _refuse(f"{target['username']}: {exc}")
    word = "disabled" if disabled else "enabled"
    log.info("web user %s %s by %s", target["username"], word, current_user()["username"])
    flash(f"User {target['username']} {word}.", "status")
    return redirect(url_for("admin.users"), 303)


@bp.post("/admin/users/<int:user_id>/disable")
@roles_required("admin")
def disable(user_id: int):  # type: ignore[no-untyped-def]
    """Disable a user: they are logged out and cannot log in."""
    return _set_disabled(user_id, True)


@bp.post("/admin/users/<int:user_id>/enable")
@roles_required("admin")
def enable(user_id: int):  # type: ignore[no-untyped-def]
    """Let a disabled user log in again."""
    return _set_disabled(user_id, False)


@bp.post("/admin/users/<int:user_id>/role")
@roles_required("admin")
def role(user_id: int):  # type: ignore[no-untyped-def]
    """Change a user's role and extension."""
    target = _target(user_id)
    if target is None:
        return _refuse("There is no such user.")
    new_role = request.form.get("role", "").strip()
    if target["id"] == current_user()["id"] and new_role != target["role"]:
        return _refuse("You cannot change your own role; ask another admin.")
    extension = request.form.get("extension")
    try:
        users.update_user(db(), user_id, role=new_role or None,
                          extension=None if extension is None else extension.strip())
    except users.UserError as exc:
        return _refuse(f"{target['username']}: {exc}")
    log.info("web user %s is now %s by %s", target["username"], new_role, current_user()["username"])
    flash(f"User {target['username']} updated.", "status")
    return redirect(url_for("admin.users"), 303)
