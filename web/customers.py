"""Customer pages: list and search, create and edit, call history, CSV import/export, quick-create."""
from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BuildError

from appliance.crm import csv_io, history, phones
from appliance.crm.access import may_read_call
from appliance.store import calls as store_calls
from appliance.crm import customer_store as store

from .auth import current_user, roles_required
from .console import rang_at
from .core import api, db

log = logging.getLogger("switchboard.web")

bp = Blueprint("customers", __name__)

PAGE_SIZE = 100
MAX_PAGE = 100_000
MAX_QUERY = 200
HISTORY_LIMIT = 50
AUTOMATIC = "automatic"
SEGMENT_CHOICES = (AUTOMATIC, *store.SEGMENTS)
MANAGERS = ("admin", "supervisor")
CSV_SUFFIXES = (".csv", ".txt")
DIAL_FALLBACK = "/calls/dial"


# ---------------------------------------------------------------- helpers


def _region() -> str:
    return api().crm_settings().region


def _is_manager() -> bool:
    user = current_user()
    return bool(user) and user.get("role") in MANAGERS


def _who() -> str:
    return (current_user() or {}).get("username") or "?"


def _dial_url() -> str:
    """Where the Call buttons post; the console owns the endpoint."""
    try:
        return url_for("console.dial")
    except BuildError:
        return DIAL_FALLBACK


def _show_phone(e164: str) -> str:
    return phones.display(e164)  # the text itself when it is not E.164


def _label(customer: dict) -> str:
    """What to call a customer in links and headings."""
    if customer.get("name"):
        return customer["name"]
    if customer.get("company"):
        return customer["company"]
    if customer.get("phones"):
        return _show_phone(customer["phones"][0])
    return f"Customer #{customer['id']}"


def _mss(seconds: Any) -> str:
    """Seconds as m:ss ("" when unknown)."""
    if seconds is None or seconds == "":
        return ""
    try:
        total = max(0, round(float(seconds)))
    except (TypeError, ValueError):
        return ""
    return f"{total // 60}:{total % 60:02d}"


def _when(stamp: str | None) -> str:
    """A stored UTC stamp as the office's local "YYYY-MM-DD HH:MM"."""
    return current_app.jinja_env.filters["local"](stamp, False) if stamp else ""


def _blank_form() -> dict[str, str]:
    return {"name": "", "company": "", "phones": "", "email": "", "segment_override": AUTOMATIC,
            "tags": "", "notes": ""}


def _form_from_customer(customer: dict) -> dict[str, str]:
    return {
        "name": customer.get("name") or "",
        "company": customer.get("company") or "",
        "phones": "\n".join(_show_phone(p) for p in customer.get("phones") or ()),
        "email": customer.get("email") or "",
        "segment_override": customer.get("segment_override") or AUTOMATIC,
        "tags": ", ".join(customer.get("tags") or ()),
        "notes": customer.get("notes") or "",
    }


def _form_from_request() -> dict[str, str]:
    form = _blank_form()
    for key in form:
        form[key] = request.form.get(key, form[key]).strip() if key != "notes" else request.form.get(key, "")
    return form


def _fields(form: dict[str, str]) -> dict[str, Any]:
    """The store's keyword arguments from the submitted form; CustomerError for a bad segment."""
    segment = form["segment_override"] or AUTOMATIC
    if segment not in SEGMENT_CHOICES:
        raise store.CustomerError(f"Unknown segment {segment!r}: choose one of {', '.join(SEGMENT_CHOICES)}.")
    return {
        "name": form["name"],
        "company": form["company"],
        "phones": [line.strip() for line in form["phones"].splitlines() if line.strip()],
        "email": form["email"],
        "segment_override": None if segment == AUTOMATIC else segment,
        "tags": [tag.strip() for tag in form["tags"].split(",") if tag.strip()],
        "notes": form["notes"].strip(),
    }


def _row(customer: dict) -> dict:
    """A customer as the list shows it."""
    return {
        "id": customer["id"],
        "label": _label(customer),
        "name": customer.get("name") or "",
        "company": customer.get("company") or "",
        "phones": [_show_phone(p) for p in customer.get("phones") or ()],
        "segment": customer.get("segment") or "",
        "tags": list(customer.get("tags") or ()),
    }


def _history_rows(customer_id: int) -> list[dict]:
    rows = []
    for call in history.customer_calls(db(), customer_id, limit=HISTORY_LIMIT):
        queue = call.get("queue") or ""
        wait = _mss(call.get("wait"))
        rows.append({
            "call_id": call.get("call_id"),
            "date": _when(call.get("started_at")),
            "started_at": call.get("started_at") or "",
            "direction": call.get("direction") or "",
            "ivr": call.get("ivr_text") or " > ".join(call.get("ivr_path") or ()),
            "queue": queue,
            "wait": wait,
            "agent": call.get("agent") or "",
            "duration": _mss(call.get("duration")),
            "outcome": call.get("outcome") or call.get("disposition") or "",
            "moods": ", ".join(call.get("moods") or ()),
            "note": call.get("note") or "",
        })
    return rows


def _missing(customer_id: int):  # type: ignore[no-untyped-def]
    return render_template("customer_missing.html", customer_id=customer_id), 404


def _render_show(customer: dict, form: dict[str, str] | None = None, error: str | None = None,
                 status: int = 200):  # type: ignore[no-untyped-def]
    page = render_template(
        "customer_show.html",
        customer=customer,
        label=_label(customer),
        phone_rows=[{"e164": p, "display": _show_phone(p)} for p in customer.get("phones") or ()],
        calls=_history_rows(customer["id"]),
        history_limit=HISTORY_LIMIT,
        form=form or _form_from_customer(customer),
        error=error,
        segments=SEGMENT_CHOICES,
        dial_url=_dial_url(),
        is_manager=_is_manager(),
        form_action=url_for("customers.update", customer_id=customer["id"]),
        submit_label="Save changes",
    )
    return page, status


# ---------------------------------------------------------------- list and search


@bp.get("/customers")
def index():  # type: ignore[no-untyped-def]
    """All customers, or those matching the search box (name, company or number in any format)."""
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    try:
        page = min(MAX_PAGE, max(1, int(request.args.get("page", "1"))))
    except ValueError:
        page = 1
    more = False
    if query:
        customers = store.search_customers(db(), query)  # also finds "(212) 555-0123" as +12125550123
    else:
        customers = store.list_customers(db(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        more = len(customers) > PAGE_SIZE
        customers = customers[:PAGE_SIZE]
    return render_template(
        "customers_list.html",
        query=query,
        rows=[_row(c) for c in customers],
        page=page,
        more=more,
        is_manager=_is_manager(),
    )


# ---------------------------------------------------------------- create, show, edit, delete


@bp.route("/customers/new", methods=["GET", "POST"])
def new():  # type: ignore[no-untyped-def]
    """The new-customer form; the values are kept when the store refuses them."""
    if request.method == "GET":
        return render_template("customer_new.html", form=_blank_form(), error=None, segments=SEGMENT_CHOICES,
                               form_action=url_for("customers.new"), submit_label="Create customer")
    form = _form_from_request()
    try:
        customer_id = store.create_customer(db(), region=_region(), **_fields(form))
    except store.CustomerError as exc:
        return render_template("customer_new.html", form=form, error=str(exc), segments=SEGMENT_CHOICES,
                               form_action=url_for("customers.new"), submit_label="Create customer"), 400
    flash("Customer created.", "status")
    return redirect(url_for("customers.show", customer_id=customer_id))


@bp.get("/customers/<int:customer_id>")
def show(customer_id: int):  # type: ignore[no-untyped-def]
    """A customer's details, edit form, phones with Call buttons and full call history."""
    customer = store.get_customer(db(), customer_id)
    if customer is None:
        return _missing(customer_id)
    return _render_show(customer)


@bp.post("/customers/<int:customer_id>")
def update(customer_id: int):  # type: ignore[no-untyped-def]
    """Save the edit form; on refusal the page comes back with the message and the typed values."""
    customer = store.get_customer(db(), customer_id)
    if customer is None:
        return _missing(customer_id)
    form = _form_from_request()
    try:
        store.update_customer(db(), customer_id, region=_region(), **_fields(form))
    except store.CustomerError as exc:
        return _render_show(customer, form=form, error=str(exc), status=400)
    flash("Changes saved.", "status")
    return redirect(url_for("customers.show", customer_id=customer_id))


@bp.route("/customers/<int:customer_id>/delete", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def delete(customer_id: int):  # type: ignore[no-untyped-def]
    """Ask first; delete only when the confirmation form is posted."""
    customer = store.get_customer(db(), customer_id)
    if customer is None:
        return _missing(customer_id)
    if request.method == "POST" and request.form.get("confirm") == "yes":
        store.delete_customer(db(), customer_id)
        log.info("customer #%d (%s) deleted by %s", customer_id, _label(customer), _who())
        flash(f"{_label(customer)} was deleted.", "status")
        return redirect(url_for("customers.index"))
    return render_template("customer_delete.html", customer=customer, label=_label(customer),
                           phones=[_show_phone(p) for p in customer.get("phones") or ()])


# ---------------------------------------------------------------- CSV import and export


def _max_upload() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"{limit / (1024 * 1024):.0f} MB" if limit else "the size limit"


def _import_error(message: str, status: int = 400):  # type: ignore[no-untyped-def]
    return render_template("customers_import.html", error=message, report=None, filename=None,
                           max_upload=_max_upload(), columns=csv_io.COLUMNS), status


def _decode_csv(data: bytes) -> str:
    """The upload as text: UTF-8 (with or without BOM), UTF-16 with a BOM, or Windows-1252 from Excel."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError("This file could not be read as text: save it as \"CSV UTF-8\" and try again.") from None
    if b"\x00" in data:
        raise ValueError("This is not a CSV file (it contains binary data): export your list as CSV and try again.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("This file could not be read as text: save it as \"CSV UTF-8\" and try again.")


@bp.route("/customers/import", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def import_csv():  # type: ignore[no-untyped-def]
    """Upload a CSV of customers; the report lists what was added, updated and rejected (by line)."""
    if request.method == "GET":
        return render_template("customers_import.html", error=None, report=None, filename=None,
                               max_upload=_max_upload(), columns=csv_io.COLUMNS)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_error("Choose a CSV file to import.")
    filename = upload.filename
    if not filename.lower().endswith(CSV_SUFFIXES):
        hint = " Excel workbooks cannot be read: use Save As, CSV." if filename.lower().endswith((".xls", ".xlsx")) else ""
        return _import_error(f"{filename} is not a CSV file (its name must end in .csv).{hint}")
    data = upload.read()
    if not data.strip():
        return _import_error(f"{filename} is empty: there is nothing to import.")
    try:
        text = _decode_csv(data)
    except ValueError as exc:
        return _import_error(f"{filename}: {exc}")
    try:
        report = csv_io.import_customers(db(), text, _region())
    except (ValueError, UnicodeError) as exc:  # CrmError: the file as a whole is unusable, nothing was stored
        return _import_error(f"{filename} could not be imported: {exc}")
    log.info("customer import %r by %s: %d added, %d updated, %d rejected", filename, _who(),
             report.added, report.updated, len(report.rejected))
    return render_template(
        "customers_import.html",
        error=None,
        filename=filename,
        report=report,
        warnings=list(getattr(report, "warnings", None) or ()),
        rejected=sorted(report.rejected),
        max_upload=_max_upload(),
        columns=csv_io.COLUMNS,
    )


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):  # type: ignore[no-untyped-def]
    """An upload over MAX_CONTENT_LENGTH: a clear page (or JSON for the API), nothing stored."""
    message = f"The upload is too large: the limit is {_max_upload()}. Split the file and import it in parts."
    if request.path.startswith("/api/"):
        return _json_error(message, 413)
    if request.endpoint == "customers.import_csv" and _is_manager():
        return _import_error(message, 413)
    return render_template("error.html", title="Too large", message=message), 413


@bp.get("/customers/export.csv")
@roles_required(*MANAGERS)
def export_csv():  # type: ignore[no-untyped-def]
    """Every customer as a CSV attachment."""
    body = csv_io.export_customers(db())
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"', "Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------- quick-create (console)


def _json_error(message: str, status: int = 400, **extra: Any):  # type: ignore[no-untyped-def]
    return jsonify({"error": message, **extra}), status


@bp.post("/api/customers")
def quick_create():  # type: ignore[no-untyped-def]
    """Create a customer from an unknown caller's number (JSON or form), linking the call when given."""
    if request.is_json:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return _json_error("The request body must be a JSON object.")
    else:
        payload = request.form
    values = {}
    for key in ("number", "name", "company", "call_id"):
        value = payload.get(key)
        if value is not None and not isinstance(value, str):
            return _json_error(f"{key} must be text.")
        values[key] = (value or "").strip()
    if not values["number"]:
        return _json_error("A phone number is needed.")
    region = _region()
    e164 = phones.normalise(values["number"], region)
    if e164 is None:
        return _json_error(f"{values['number']} is not a phone number.")

    def conflict(owner: dict):  # type: ignore[no-untyped-def]
        return _json_error(f"{_show_phone(e164)} already belongs to {_label(owner)}.", 409,
                           id=owner["id"], name=owner.get("name") or "", segment=owner.get("segment") or "")

    if values["call_id"] and (store_calls.get_call(db(), values["call_id"]) is None or not may_read_call(
            db(), current_user() or {}, values["call_id"], rang_at(values["call_id"]))):
        # Only a call of the user's own may be tied to a customer: others are answered like unknown ones.
        return _json_error(f"There is no call {values['call_id']!r}.")
    owner = store.customer_by_phone(db(), e164)
    if owner is not None and not owner.get("name") and not owner.get("company"):
        # The caller became a nameless "new" customer at the first ring: the card fills them in.
        try:
            store.update_customer(db(), owner["id"], region=region, name=values["name"], company=values["company"])
        except store.CustomerError as exc:
            return _json_error(str(exc))
        if values["call_id"]:
            store.set_call_customer(db(), values["call_id"], owner["id"])
        named = store.get_customer(db(), owner["id"]) or owner
        _announce(owner["id"], values["call_id"])
        return jsonify({"id": owner["id"], "name": named.get("name") or "", "segment": named.get("segment") or ""})
    if owner is not None:
        return conflict(owner)
    try:
        customer_id = store.create_customer(db(), region=region, name=values["name"], company=values["company"],
                                            phones=[e164])
    except store.CustomerError as exc:
        owner = store.customer_by_phone(db(), e164)  # created by someone else meanwhile
        if owner is not None:
            return conflict(owner)
        return _json_error(str(exc))
    if values["call_id"]:
        try:
            store.set_call_customer(db(), values["call_id"], customer_id)
        except KeyError:  # the call record vanished meanwhile: undo, so a retry starts clean
            store.delete_customer(db(), customer_id)
            return _json_error(f"There is no call {values['call_id']!r}.")
    customer = store.get_customer(db(), customer_id) or {"name": values["name"], "segment": "new"}
    _announce(customer_id, values["call_id"])
    return jsonify({"id": customer_id, "name": customer.get("name") or "", "segment": customer.get("segment") or ""}), 201


def _announce(customer_id: int, call_id: str) -> None:
    """Tell every open console that a card's customer changed, so all the agent's tabs show the new name."""
    api().bus.publish("crm.customer", customer_id=customer_id, call_id=call_id or None)
