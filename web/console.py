"""The agent console: the screen pop, the agent's state, wrap-up and click-to-call."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from appliance.crm.access import may_read_call, may_wrap_up
from appliance.crm.card import build_card
from appliance.crm.settings import MOODS
from appliance.store.calls import unwrapped_calls

from .auth import current_user, safe_next
from .core import api, db

bp = Blueprint("console", __name__)

PAUSE_REASONS = ("break", "lunch", "meeting", "training", "admin work")
PENDING_HOURS = 12  # calls older than this no longer ask for a wrap-up


def _extension() -> str | None:
    return (current_user() or {}).get("extension") or None


def _no_extension():  # type: ignore[no-untyped-def]
    response = jsonify({"error": "your account has no extension; ask an admin to link one"})
    response.status_code = 403
    return response


def _payload() -> dict:
    """The request's fields, from JSON or a form."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return {**request.form.to_dict(), "moods": request.form.getlist("moods")}


@bp.get("/agent")
def agent():  # type: ignore[no-untyped-def]
    """The console page: the live card, the agent's state and the dial box."""
    extension = _extension()
    if extension is None:
        return render_template("agent.html", extension=None, state=None, pending=[], settings=None,
                               pause_reasons=PAUSE_REASONS, moods=MOODS), 200
    since = datetime.now(timezone.utc) - timedelta(hours=PENDING_HOURS)
    return render_template("agent.html", extension=extension, state=api().agent_state(extension),
                           pending=unwrapped_calls(db(), extension, since), settings=api().crm_settings(),
                           pause_reasons=PAUSE_REASONS, moods=MOODS)


@bp.post("/api/agent/state")
def state():  # type: ignore[no-untyped-def]
    """Log in, log out, pause (with a reason) or unpause the signed-in agent."""
    extension = _extension()
    if extension is None:
        return _no_extension()
    data = _payload()
    try:
        return jsonify(api().agent_action(extension, str(data.get("action") or ""), str(data.get("reason") or "")))
    except ValueError as exc:
        return jsonify({"error": str(exc)}), 400


@bp.get("/api/card/<call_id>")
def card(call_id: str):  # type: ignore[no-untyped-def]
    """The screen-pop card of a call, as the signed-in agent sees it: only calls they took part in."""
    user = current_user() or {}
    if not may_read_call(db(), user, call_id, rang_at(call_id)):
        return jsonify({"error": "no such call"}), 404  # the same answer as an unknown id: no probing
    found = build_card(db(), call_id, api().crm_settings(), _extension())
    if found is None:
        return jsonify({"error": "no such call"}), 404
    return jsonify(found)


def rang_at(call_id: str) -> list[str]:
    """Extensions the call rang at, from the bus's recent events (a ringing call has no record of it yet)."""
    return [e.data.get("extension") for e in api().bus.since(0, "call.ringing")
            if e.topic == "call.ringing" and e.data.get("call_id") == call_id]


@bp.post("/api/wrapup")
def wrapup():  # type: ignore[no-untyped-def]
    """Save the outcome, moods, note and an optional callback time of a call the agent had."""
    extension = _extension()
    if extension is None:
        return _no_extension()
    data = _payload()
    moods = data.get("moods") or []
    if not isinstance(moods, list):
        return jsonify({"error": "moods must be a list"}), 400
    call_id = str(data.get("call_id") or "")
    if not may_wrap_up(db(), current_user() or {}, call_id):
        return jsonify({"error": "no such call of yours"}), 404
    try:
        saved = api().save_wrapup(extension=extension, user=current_user()["username"],
                                  call_id=call_id, outcome=str(data.get("outcome") or ""),
                                  moods=[str(m) for m in moods], note=str(data.get("note") or ""),
                                  callback_at=str(data.get("callback_at") or "") or None)
    except ValueError as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify(saved)


@bp.post("/calls/dial")
def dial():  # type: ignore[no-untyped-def]
    """Click-to-call: ring the agent's phone, then the number."""
    extension = _extension()
    data = _payload()
    number = str(data.get("number") or "").strip()
    if extension is None:
        error, call_id = "your account has no extension; ask an admin to link one", None
    elif not number:
        error, call_id = "enter a number to call", None
    else:
        try:
            error, call_id = None, api().click_to_call(extension, number)
        except ValueError as exc:
            error, call_id = str(exc), None
    if request.is_json:
        if error:
            return jsonify({"error": error}), 400
        return jsonify({"call_id": call_id, "number": number})
    if error:
        flash(f"Cannot call {number or 'that'}: {error}", "error")
    else:
        flash(f"Calling {number}: pick up your phone when it rings.", "info")
    return redirect(safe_next(request.form.get("next") or request.referrer) or url_for("console.agent"))
