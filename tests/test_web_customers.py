"""Customer pages on a real box: list and search, create and edit, history, roles, CSV import/export, quick-create."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from html import unescape
from pathlib import Path

import pytest

from web_client import csrf_from, login, make_user

from appliance.crm.phones import display
from appliance.store import calls as store_calls
from appliance.crm import customer_store as customers
from appliance.store.wrapups import save_wrapup

FR_PROVISION = """
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-201"

[crm]
region = "FR"
"""
ADA_PHONE = "+12125550123"     # typed "(212) 555-0123" in the default US region
BOB_PHONE = "+16465550199"


def location(response) -> str:  # type: ignore[no-untyped-def]
    return response.headers.get("Location", "")


def text(response) -> str:  # type: ignore[no-untyped-def]
    return unescape(response.get_data(as_text=True))


def token(client) -> str:  # type: ignore[no-untyped-def]
    """The session's CSRF token, read off a page as a browser would."""
    return csrf_from(client.get("/customers").data)


def post(client, url: str, data: dict | None = None, **kwargs):  # type: ignore[no-untyped-def]
    return client.post(url, data={**(data or {}), "csrf_token": token(client)}, **kwargs)


def upload(client, body: bytes, filename: str = "customers.csv", with_token: bool = True):  # type: ignore[no-untyped-def]
    data: dict = {"file": (io.BytesIO(body), filename)}
    if with_token:
        data["csrf_token"] = token(client)
    return client.post("/customers/import", data=data, content_type="multipart/form-data")


def names(db) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(c["name"] for c in customers.list_customers(db))


def table_rows(html: str, css_class: str) -> list[list[str]]:
    """The body rows of the table with this class, as cell texts."""
    table = re.search(rf'<table class="{css_class}">(.*?)</table>', html, re.DOTALL)
    assert table, f"no table {css_class}"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.DOTALL).group(1)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)]


@pytest.fixture
def admin(web_box, client):  # type: ignore[no-untyped-def]
    """The client logged in as an admin."""
    make_user(web_box.db, "boss", "admin")
    assert login(client, "boss").status_code == 302
    return client


@pytest.fixture
def agent(web_box, client):  # type: ignore[no-untyped-def]
    """The client logged in as agent Ann (extension 201); an admin exists too."""
    make_user(web_box.db, "boss", "admin")
    make_user(web_box.db, "ann", "agent", extension="201")
    assert login(client, "ann").status_code == 302
    return client


@pytest.fixture
def ada(web_box) -> int:
    return customers.create_customer(web_box.db, region="US", name="Ada Lovelace", company="Analytical Engines",
                                      phones=["(212) 555-0123"], tags=["math", "early"])


@pytest.fixture
def bob(web_box) -> int:
    return customers.create_customer(web_box.db, region="US", name="Bob Builder", company="Bricks Inc",
                                      phones=["646 555 0199"], segment_override="vip")


# --- list and search ---


def test_the_list_shows_every_customer_with_phones_segment_and_tags(admin, ada, bob) -> None:  # type: ignore[no-untyped-def]
    page = admin.get("/customers")
    assert page.status_code == 200
    html = text(page)
    rows = table_rows(html, "customer-list")
    assert [r[0] for r in rows] == ["Ada Lovelace", "Bob Builder"]
    ada_row, bob_row = rows
    assert ada_row[1] == "Analytical Engines" and ada_row[2] == display(ADA_PHONE) == "+1 212-555-0123"
    assert ada_row[3] == "new" and "math" in ada_row[4] and "early" in ada_row[4]
    assert bob_row[3] == "vip" and bob_row[2] == display(BOB_PHONE)
    assert f'href="/customers/{ada}"' in html and f'href="/customers/{bob}"' in html
    assert 'href="/customers/new"' in html
    # Admins and supervisors get the CSV links.
    assert 'href="/customers/import"' in html and 'href="/customers/export.csv"' in html


@pytest.mark.parametrize("query, found", [
    ("lovelace", ["Ada Lovelace"]),
    ("(212) 555-0123", ["Ada Lovelace"]),
    ("+1 212 555 0123", ["Ada Lovelace"]),
    ("212.555.0123", ["Ada Lovelace"]),
    ("555-01", ["Ada Lovelace", "Bob Builder"]),
    ("bricks", ["Bob Builder"]),
    ("Engines", ["Ada Lovelace"]),
    ("nobody here", []),
])
def test_search_by_name_number_in_any_format_or_company(admin, ada, bob, query: str, found: list[str]) -> None:  # type: ignore[no-untyped-def]
    page = admin.get("/customers", query_string={"q": query})
    assert page.status_code == 200
    html = text(page)
    rows = table_rows(html, "customer-list")
    if found:
        assert [r[0] for r in rows] == found
    else:
        assert rows == [[f"No customer matches “{query}”."]]
    assert f'value="{query}"' in html  # the box keeps what was typed


def test_search_reads_national_numbers_in_the_provisioned_region(tmp_path: Path) -> None:
    """With [crm] region = "FR", "06 12 34 56 78" finds +33612345678."""
    from live_box import LiveBox

    from web.app import create_app

    box = LiveBox(tmp_path / "fr-box", FR_PROVISION)
    try:
        client = create_app(box.box.api, testing=True).test_client()
        make_user(box.db, "boss", "admin")
        assert login(client, "boss").status_code == 302
        customers.create_customer(box.db, region="FR", name="Claire", phones=["+33 6 12 34 56 78"])
        customers.create_customer(box.db, region="FR", name="Denis", phones=["01 42 68 53 00"])
        for query in ("06 12 34 56 78", "0612345678", "+33612345678"):
            rows = table_rows(text(client.get("/customers", query_string={"q": query})), "customer-list")
            assert [r[0] for r in rows] == ["Claire"], query
        # The new-customer form reads numbers in the same region.
        created = post(client, "/customers/new", {"name": "Emile", "phones": "06 98 76 54 32"})
        assert created.status_code == 302
        assert customers.customer_by_phone(box.db, "+33698765432")["name"] == "Emile"
    finally:
        box.stop()


# --- create, show, edit, delete ---


def test_create_shows_the_new_customer(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    form = admin.get("/customers/new")
    assert form.status_code == 200
    html = text(form)
    for field in ("name", "company", "phones", "email", "segment_override", "tags", "notes"):
        found = re.search(rf'<(input|textarea|select) id="([^"]+)" name="{field}"', html)
        assert found, field
        assert f'<label for="{found.group(2)}">' in html, f"{field} has no label"
    created = post(admin, "/customers/new", {
        "name": "Grace Hopper", "company": "Navy", "phones": "(212) 555-0123\n\n+1 646 555 0199\n",
        "email": "grace@example.org", "segment_override": "automatic", "tags": "cobol, , compilers",
        "notes": "Prefers mornings.\nSpeaks slowly.",
    })
    assert created.status_code == 302
    customer_id = int(location(created).rsplit("/", 1)[1])
    stored = customers.get_customer(web_box.db, customer_id)
    assert stored["name"] == "Grace Hopper" and stored["company"] == "Navy"
    assert stored["phones"] == [ADA_PHONE, BOB_PHONE]
    assert stored["email"] == "grace@example.org" and stored["segment_override"] is None
    assert stored["tags"] == ["cobol", "compilers"] and stored["notes"] == "Prefers mornings.\nSpeaks slowly."
    page = admin.get(location(created))
    assert page.status_code == 200
    html = text(page)
    assert "Customer created." in html and "<h1 id=\"customer-title\">Grace Hopper</h1>" in html
    assert "automatic, from the calls" in html


def test_create_with_a_bad_phone_keeps_the_values_and_stores_nothing(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    refused = post(admin, "/customers/new", {
        "name": "Grace Hopper", "company": "Navy", "phones": "(212) 555-0123\nnot a phone", "email": "grace@example.org",
        "segment_override": "vip", "tags": "cobol", "notes": "keep me",
    })
    assert refused.status_code == 400
    html = text(refused)
    assert "not a phone number: 'not a phone'" in html
    assert 'value="Grace Hopper"' in html and 'value="Navy"' in html and 'value="grace@example.org"' in html
    assert "(212) 555-0123\nnot a phone</textarea>" in html and "keep me</textarea>" in html
    assert '<option value="vip" selected>' in html
    assert customers.list_customers(web_box.db) == []


def test_create_with_a_bad_segment_or_email_is_refused(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    bad_segment = post(admin, "/customers/new", {"name": "X", "segment_override": "platinum"})
    assert bad_segment.status_code == 400 and "Unknown segment" in text(bad_segment)
    bad_email = post(admin, "/customers/new", {"name": "X", "email": "not-an-email"})
    assert bad_email.status_code == 400 and "not an email address" in text(bad_email)
    assert customers.list_customers(web_box.db) == []


def test_show_has_details_call_buttons_and_the_call_history(web_box, admin, ada) -> None:  # type: ignore[no-untyped-def]
    db = web_box.db
    customers.update_customer(db, ada, region="US", segment_override="vip", notes="Line one\nLine two",
                              phones=[ADA_PHONE, "+1 415 555 2671"])
    start = datetime(2024, 5, 6, 9, 30, tzinfo=timezone.utc)
    first = store_calls.start_call(db, sip_call_id="a1", direction="inbound", line="main", from_number=ADA_PHONE,
                                   from_name=None, to_number="100", started_at=start, customer_id=ada)
    store_calls.set_ivr_path(db, first, [{"key": "2", "action": "queue", "label": "billing"}])
    store_calls.mark_answered(db, first, "201", at=start + timedelta(seconds=20))
    store_calls.finish_call(db, first, "answered", at=start + timedelta(seconds=145))
    save_wrapup(db, call_id=first, agent="201", customer_id=ada, outcome="complaint", moods=["nervous", "angry"],
                note="Invoice twice")
    second = store_calls.start_call(db, sip_call_id="a2", direction="inbound", line="main", from_number=ADA_PHONE,
                                    from_name=None, to_number="100", started_at=start + timedelta(days=2),
                                    customer_id=ada)
    store_calls.finish_call(db, second, "no-answer", at=start + timedelta(days=2, seconds=30))

    page = admin.get(f"/customers/{ada}")
    # Without an extension there is no phone to ring first: no Call buttons (issue 14, item 9).
    assert '<form method="post" action="/calls/dial"' not in text(page) and display(ADA_PHONE) in text(page)
    from appliance.store import users as store_users
    boss = next(u for u in store_users.list_users(db) if u["username"] == "boss")
    store_users.update_user(db, boss["id"], extension="201")
    page = admin.get(f"/customers/{ada}")
    assert page.status_code == 200
    html = text(page)
    assert "Analytical Engines" in html and "Line one<br>Line two" in html
    assert '<span class="badge badge-vip">vip</span>' in html and "set by hand; from the calls it would be new" in html
    # One Call button per phone: a POST form with the number and the CSRF token.
    forms = re.findall(r'<form method="post" action="([^"]+)" class="row">(.*?)</form>', html, re.DOTALL)
    dialled = [re.search(r'name="number" value="([^"]+)"', body).group(1) for _, body in forms]
    assert dialled == [ADA_PHONE, "+14155552671"]
    assert {action for action, _ in forms} == {"/calls/dial"}
    assert all('name="csrf_token"' in body and "<button type=\"submit\"" in body for _, body in forms)
    assert display("+14155552671") in html
    # The history, newest first.
    rows = table_rows(html, "call-history")
    assert rows[0][:2] == ["2024-05-08 09:30", "inbound"] and rows[0][6] == "no-answer"
    assert rows[1] == ["2024-05-06 09:30", "inbound", "pressed 2: billing", "", "201", "2:05", "complaint",
                       "nervous, angry", "Invoice twice"]
    # The edit form is on the page, filled in.
    assert f'action="/customers/{ada}"' in html and 'value="Ada Lovelace"' in html
    assert '<option value="vip" selected>' in html and "+1 212-555-0123\n+1 415-555-2671</textarea>" in html


def test_an_unknown_customer_is_a_404_page(admin) -> None:  # type: ignore[no-untyped-def]
    page = admin.get("/customers/9999")
    assert page.status_code == 404 and "Customer not found" in text(page)
    assert post(admin, "/customers/9999", {"name": "x"}).status_code == 404
    assert admin.get("/customers/9999/delete").status_code == 404


def test_edit_saves_and_a_refused_edit_changes_nothing(web_box, admin, ada, bob) -> None:  # type: ignore[no-untyped-def]
    saved = post(admin, f"/customers/{ada}", {
        "name": "Ada King", "company": "", "phones": "212-555-0123\n415 555 2671", "email": "ada@example.org",
        "segment_override": "regular", "tags": "countess", "notes": "",
    })
    assert saved.status_code == 302 and location(saved).endswith(f"/customers/{ada}")
    stored = customers.get_customer(web_box.db, ada)
    assert (stored["name"], stored["company"], stored["email"]) == ("Ada King", "", "ada@example.org")
    assert stored["phones"] == [ADA_PHONE, "+14155552671"]
    assert stored["segment_override"] == "regular" and stored["segment"] == "regular"
    assert stored["tags"] == ["countess"]
    assert "Changes saved." in text(admin.get(f"/customers/{ada}"))

    # Back to automatic.
    assert post(admin, f"/customers/{ada}", {"name": "Ada King", "phones": ADA_PHONE,
                                             "segment_override": "automatic"}).status_code == 302
    assert customers.get_customer(web_box.db, ada)["segment_override"] is None

    # Bob's number cannot be given to Ada: the page says whose it is and keeps the typed values.
    before = customers.get_customer(web_box.db, ada)
    refused = post(admin, f"/customers/{ada}", {"name": "Renamed", "phones": "(646) 555-0199",
                                                "segment_override": "automatic"})
    assert refused.status_code == 400
    html = text(refused)
    assert "already belongs to" in html and "Bob Builder" in html and 'value="Renamed"' in html
    after = customers.get_customer(web_box.db, ada)
    assert after == before


def test_delete_asks_first(web_box, admin, ada, bob) -> None:  # type: ignore[no-untyped-def]
    show = text(admin.get(f"/customers/{ada}"))
    assert f'action="/customers/{ada}/delete"' in show
    # The button on the customer page only leads to the question.
    asked = post(admin, f"/customers/{ada}/delete")
    assert asked.status_code == 200 and "Delete Ada Lovelace?" in text(asked)
    assert 'name="confirm" value="yes"' in text(asked)
    assert admin.get(f"/customers/{ada}/delete").status_code == 200
    assert customers.get_customer(web_box.db, ada) is not None
    done = post(admin, f"/customers/{ada}/delete", {"confirm": "yes"})
    assert done.status_code == 302 and location(done).endswith("/customers")
    assert customers.get_customer(web_box.db, ada) is None
    assert "Ada Lovelace was deleted." in text(admin.get("/customers"))
    assert admin.get(f"/customers/{ada}").status_code == 404
    assert names(web_box.db) == ["Bob Builder"]


# --- roles ---


def test_an_agent_can_view_and_quick_create_but_not_import_export_or_delete(web_box, agent, ada) -> None:  # type: ignore[no-untyped-def]
    listing = agent.get("/customers")
    assert listing.status_code == 200 and "Ada Lovelace" in text(listing)
    assert 'href="/customers/import"' not in text(listing) and 'href="/customers/export.csv"' not in text(listing)
    show = agent.get(f"/customers/{ada}")
    assert show.status_code == 200 and "Delete this customer" not in text(show)
    assert agent.get("/customers/new").status_code == 200

    assert agent.get("/customers/import").status_code == 403
    assert upload(agent, b"name,phones\nMallory,+1 202 555 0143\n").status_code == 403
    assert agent.get("/customers/export.csv").status_code == 403
    assert agent.get(f"/customers/{ada}/delete").status_code == 403
    assert post(agent, f"/customers/{ada}/delete", {"confirm": "yes"}).status_code == 403
    assert names(web_box.db) == ["Ada Lovelace"]

    made = agent.post("/api/customers", json={"number": "(202) 555-0143", "name": "Caller"},
                      headers={"X-CSRF-Token": token(agent)})
    assert made.status_code == 201
    assert made.get_json() == {"id": made.get_json()["id"], "name": "Caller", "segment": "new"}
    assert customers.customer_by_phone(web_box.db, "+12025550143")["id"] == made.get_json()["id"]


def test_a_supervisor_can_import_export_and_delete(web_box, client, ada) -> None:  # type: ignore[no-untyped-def]
    make_user(web_box.db, "boss", "admin")
    make_user(web_box.db, "sue", "supervisor")
    assert login(client, "sue").status_code == 302
    assert client.get("/customers/import").status_code == 200
    assert client.get("/customers/export.csv").status_code == 200
    assert post(client, f"/customers/{ada}/delete", {"confirm": "yes"}).status_code == 302
    assert customers.list_customers(web_box.db) == []


def test_logged_out_visitors_are_sent_to_login(web_box, client, ada) -> None:  # type: ignore[no-untyped-def]
    make_user(web_box.db, "boss", "admin")
    for path in ("/customers", f"/customers/{ada}", "/customers/new", "/customers/import", "/customers/export.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in location(response), path
    assert client.post("/api/customers", json={"number": "+1 202 555 0143"}).status_code in (400, 401)
    assert names(web_box.db) == ["Ada Lovelace"]


# --- CSV import and export ---


def test_import_reports_added_updated_and_rejected_rows_by_line(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    db = web_box.db
    kept = customers.create_customer(db, region="US", name="Keep Me", phones=["+1 212 555 0100"], notes="original")
    updated = customers.create_customer(db, region="US", name="Old Name", phones=["+1 212 555 0101"])
    before = customers.get_customer(db, kept)
    body = (
        "name,company,phones,email,segment,tags,notes\n"              # line 1
        "Ada Lovelace,Analytical,(212) 555-0123,ada@example.org,,math;early,\n"  # 2: added
        "Broken,,not-a-number,,,,\n"                                  # 3: rejected
        "\n"                                                          # 4: blank, skipped
        "Keep Me Changed,,+1 212 555 0100,not-an-email,,,changed\n"   # 5: rejected, Keep Me untouched
        "New Name,Acme,212-555-0101,,vip,,\n"                          # 6: updates Old Name
        '"Grace Hopper","Navy, US","(646) 555-0199; +1 415 555 2671",,regular,,"two\nlines"\n'  # 7-8: added
        "Someone,,,,platinum,,\n"                                     # 9: rejected
    ).encode()
    report = upload(admin, body)
    assert report.status_code == 200
    html = text(report)
    assert "Import report: customers.csv" in html
    counts = {kind: int(n) for n, kind in re.findall(r'<strong class="\w+">(\d+)</strong> (\w+)', html)}
    assert counts == {"added": 2, "updated": 1, "rejected": 3}
    rejected = table_rows(html, "import-rejected")
    assert [int(line) for line, _ in rejected] == [3, 5, 9]
    assert "not-a-number" in rejected[0][1] and "not an email address" in rejected[1][1]
    assert "platinum" in rejected[2][1]

    assert customers.get_customer(db, kept) == before
    new_name = customers.get_customer(db, updated)
    assert new_name["name"] == "New Name" and new_name["company"] == "Acme" and new_name["segment"] == "vip"
    grace = customers.customer_by_phone(db, "+14155552671")
    assert grace["name"] == "Grace Hopper" and grace["company"] == "Navy, US" and grace["phones"] == [
        BOB_PHONE, "+14155552671"]
    assert grace["notes"] == "two\nlines" and grace["segment_override"] == "regular"
    assert customers.customer_by_phone(db, ADA_PHONE)["tags"] == ["math", "early"]
    assert names(db) == ["Ada Lovelace", "Grace Hopper", "Keep Me", "New Name"]


def test_import_warns_about_unknown_columns_and_reads_utf8_with_bom(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    body = "\ufeffname,phones,favourite colour\nZoë Ångström,+1 212 555 0123,blue\n".encode()
    report = upload(admin, body)
    assert report.status_code == 200
    html = text(report)
    assert 'unknown column "favourite colour" ignored' in html
    assert names(web_box.db) == ["Zoë Ångström"]


def test_a_file_written_by_excel_in_windows_1252_is_read(web_box, admin) -> None:  # type: ignore[no-untyped-def]
    report = upload(admin, "name,company\nJosé,Café Ñandú\n".encode("cp1252"))
    assert report.status_code == 200 and names(web_box.db) == ["José"]
    assert customers.list_customers(web_box.db)[0]["company"] == "Café Ñandú"


@pytest.mark.parametrize("body, filename, message", [
    (None, None, "Choose a CSV file to import."),
    (b"", "empty.csv", "empty.csv is empty"),
    (b"  \n\n", "blank.csv", "blank.csv is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "photo.png", "photo.png is not a CSV file"),
    (b"PK\x03\x04\x14\x00\x06\x00", "book.xlsx", "Excel workbooks cannot be read"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "photo.csv", "it contains binary data"),
    (b"\xff\xd8\xff\xe0 not text \x81\x8d", "odd.csv", "could not be read as text"),
    (b"hello there\nthis is a letter\n", "letter.csv", "the first line must name the columns"),
    (b'name,phones\n"Ada,+12125550123\n', "quote.csv", "not valid CSV"),
])
def test_import_refuses_unusable_uploads_with_a_clear_page(web_box, admin, body, filename, message) -> None:  # type: ignore[no-untyped-def]
    if body is None:
        response = post(admin, "/customers/import", content_type="multipart/form-data")
    else:
        response = upload(admin, body, filename)
    assert response.status_code == 400
    html = text(response)
    assert message in html and 'class="error" role="alert"' in html
    assert 'enctype="multipart/form-data"' in html and 'accept=".csv,text/csv"' in html  # the form again
    assert "Traceback" not in html
    assert customers.list_customers(web_box.db) == []


def test_an_oversized_upload_is_a_clear_413_page(web_box, app, admin) -> None:  # type: ignore[no-untyped-def]
    limit = app.config["MAX_CONTENT_LENGTH"]
    row = b"Ada Lovelace,+1 212 555 0123\n"
    body = b"name,phones\n" + row * (limit // len(row) + 1)
    response = upload(admin, body)
    assert response.status_code == 413
    html = text(response)
    assert f"the limit is {limit // (1024 * 1024)} MB" in html and "Import customers" in html
    assert customers.list_customers(web_box.db) == []


def test_export_returns_the_customers_as_a_csv_attachment(web_box, admin, ada, bob) -> None:  # type: ignore[no-untyped-def]
    assert upload(admin, b"name,company,phones\nGrace Hopper,\"Navy, US\",(415) 555-2671\n").status_code == 200
    response = admin.get("/customers/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="customers.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"Ada Lovelace", "Bob Builder", "Grace Hopper"}
    assert by_name["Grace Hopper"]["company"] == "Navy, US" and by_name["Grace Hopper"]["phones"] == "+14155552671"
    assert by_name["Ada Lovelace"]["phones"] == ADA_PHONE and by_name["Bob Builder"]["segment"] == "vip"


def test_an_export_imports_back_as_updates(web_box, admin, ada, bob) -> None:  # type: ignore[no-untyped-def]
    before = {c["id"]: (c["name"], c["phones"], c["tags"], c["segment"]) for c in customers.list_customers(web_box.db)}
    exported = admin.get("/customers/export.csv").data
    html = text(upload(admin, exported, "customers.csv"))
    counts = {kind: int(n) for n, kind in re.findall(r'<strong class="\w+">(\d+)</strong> (\w+)', html)}
    assert counts == {"added": 0, "updated": 2, "rejected": 0}
    after = {c["id"]: (c["name"], c["phones"], c["tags"], c["segment"]) for c in customers.list_customers(web_box.db)}
    assert after == before


# --- CSRF ---


def test_the_csrf_token_is_required_on_every_post(web_box, admin, ada) -> None:  # type: ignore[no-untyped-def]
    no_token = [
        admin.post("/customers/new", data={"name": "Eve", "phones": "+1 202 555 0143"}),
        admin.post(f"/customers/{ada}", data={"name": "Eve"}),
        admin.post(f"/customers/{ada}/delete", data={"confirm": "yes"}),
        upload(admin, b"name,phones\nEve,+1 202 555 0143\n", with_token=False),
        admin.post("/api/customers", json={"number": "+1 202 555 0143", "name": "Eve"}),
        admin.post("/api/customers", data={"number": "+1 202 555 0143", "name": "Eve", "csrf_token": "forged"}),
    ]
    for response in no_token:
        assert response.status_code == 400
    assert "Reload the page" in text(no_token[0])
    assert names(web_box.db) == ["Ada Lovelace"]
    # The same requests with the token go through.
    assert post(admin, "/customers/new", {"name": "Eve", "phones": "+1 202 555 0143"}).status_code == 302
    assert names(web_box.db) == ["Ada Lovelace", "Eve"]


# --- quick-create (the console's unknown caller) ---


def test_quick_create_from_json_or_a_form_and_409_for_a_known_number(web_box, admin, ada) -> None:  # type: ignore[no-untyped-def]
    headers = {"X-CSRF-Token": token(admin)}
    made = admin.post("/api/customers", json={"number": "202.555.0143", "name": "  New Caller ", "company": "Acme"},
                      headers=headers)
    assert made.status_code == 201
    body = made.get_json()
    assert body["name"] == "New Caller" and body["segment"] == "new"
    stored = customers.get_customer(web_box.db, body["id"])
    assert stored["phones"] == ["+12025550143"] and stored["company"] == "Acme"

    by_form = post(admin, "/api/customers", {"number": "+1 415 555 2671"})
    assert by_form.status_code == 201 and by_form.get_json()["name"] == ""

    taken = admin.post("/api/customers", json={"number": "(212) 555-0123", "name": "Someone Else"}, headers=headers)
    assert taken.status_code == 409
    assert taken.get_json()["id"] == ada and "Ada Lovelace" in taken.get_json()["error"]
    assert customers.get_customer(web_box.db, ada)["name"] == "Ada Lovelace"
    assert len(customers.list_customers(web_box.db)) == 3


@pytest.mark.parametrize("payload, message", [
    ({"name": "No Number"}, "A phone number is needed."),
    ({"number": "   "}, "A phone number is needed."),
    ({"number": "hello"}, "hello is not a phone number."),
    ({"number": 2125550123}, "number must be text."),
    ({"number": "+1 202 555 0143", "name": "x" * 300}, "name is longer than 200 characters"),
    ({"number": "+1 202 555 0143", "call_id": "no-such-call"}, "There is no call 'no-such-call'."),
    ([1, 2], "The request body must be a JSON object."),
])
def test_quick_create_errors_are_json_400(web_box, admin, payload, message) -> None:  # type: ignore[no-untyped-def]
    response = admin.post("/api/customers", json=payload, headers={"X-CSRF-Token": token(admin)})
    assert response.status_code == 400
    assert response.get_json() == {"error": message}
    assert customers.list_customers(web_box.db) == []


def test_quick_create_links_the_call(web_box, agent) -> None:  # type: ignore[no-untyped-def]
    db = web_box.db
    call_id = store_calls.start_call(db, sip_call_id="q1", direction="inbound", line="main",
                                     from_number="2025550143", from_name=None, to_number="100")
    store_calls.mark_answered(db, call_id, "201")  # Ann's call: only her own calls may be tied to a customer
    made = agent.post("/api/customers", json={"number": "2025550143", "name": "Linked", "call_id": call_id},
                      headers={"X-CSRF-Token": token(agent)})
    assert made.status_code == 201
    assert store_calls.get_call(db, call_id)["customer_id"] == made.get_json()["id"]
    # The call now shows in the customer's history.
    rows = table_rows(text(agent.get(f"/customers/{made.get_json()['id']}")), "call-history")
    assert len(rows) == 1 and rows[0][1] == "inbound"
