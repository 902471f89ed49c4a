"""The web's front door on a real box: first-admin setup, login, roles, CSRF, throttling, sessions."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from web_client import PASSWORD, csrf_from, login, make_user

from appliance.store import users
from appliance.store.db import open_database
from web.throttle import LoginThrottle

ROOT = Path(__file__).resolve().parent.parent


def location(response) -> str:  # type: ignore[no-untyped-def]
    return response.headers.get("Location", "")


def post(client, url: str, data: dict | None = None, page: str = "/"):  # type: ignore[no-untyped-def]
    """POST with the token read off `page`, as a browser would."""
    token = csrf_from(client.get(page).data)
    return client.post(url, data={**(data or {}), "csrf_token": token})


# --- first admin ---


def test_a_fresh_box_has_no_users_and_sends_everyone_to_setup(web_box, client) -> None:  # type: ignore[no-untyped-def]
    assert users.list_users(web_box.db) == []
    for path in ("/", "/login", "/status", "/admin/users", "/customers"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert location(response).endswith("/setup"), path
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    page = client.get("/setup")
    assert page.status_code == 200 and b'name="code"' in page.data


def test_setup_needs_the_code_then_closes(web_box, client) -> None:  # type: ignore[no-untyped-def]
    code = web_box.box.api.setup_code()
    token = csrf_from(client.get("/setup").data)
    form = {"username": "boss", "password": PASSWORD, "password2": PASSWORD, "csrf_token": token}
    wrong = client.post("/setup", data={**form, "code": "AAAA-BBBB-CCCC"})
    assert wrong.status_code == 400 and b"setup code is wrong" in wrong.data
    assert users.list_users(web_box.db) == []
    differ = client.post("/setup", data={**form, "password2": PASSWORD + "x", "code": code})
    assert differ.status_code == 400 and users.list_users(web_box.db) == []
    weak = client.post("/setup", data={**form, "password": "password123", "password2": "password123", "code": code})
    assert weak.status_code == 400 and b"too well known" in weak.data
    # Typed in lower case without hyphens: still the code.
    done = client.post("/setup", data={**form, "code": code.replace("-", "").lower()})
    assert done.status_code == 302
    [boss] = users.list_users(web_box.db)
    assert boss["username"] == "boss" and boss["role"] == "admin"
    assert location(done).endswith("/status")
    assert client.get("/status").status_code == 200  # logged in straight away
    assert web_box.box.api.setup_code() is None
    assert location(client.get("/setup")).endswith("/login")
    again = post(client, "/setup", {**form, "username": "mallory", "code": code}, page="/status")
    assert again.status_code == 302 and [u["username"] for u in users.list_users(web_box.db)] == ["boss"]


# --- login and roles ---


@pytest.fixture
def office(web_box):  # type: ignore[no-untyped-def]
    """An admin, a supervisor and an agent on extension 201."""
    db = web_box.db
    return {"boss": make_user(db, "boss", "admin"), "sue": make_user(db, "sue", "supervisor"),
            "ann": make_user(db, "ann", "agent", "201")}


def test_login_redirects_by_role(app, office) -> None:  # type: ignore[no-untyped-def]
    from web.auth import optional_url

    homes = {"boss": "status.index", "sue": "supervisor.index", "ann": "console.agent"}
    for name, endpoint in homes.items():
        client = app.test_client()
        response = login(client, name)
        assert response.status_code == 302, name
        with app.test_request_context():
            expected = optional_url(endpoint)
        if expected is not None:  # the role's page exists (the console and supervisor views may come later)
            assert location(response).endswith(expected), name
        landing = client.get(location(response), follow_redirects=True)
        assert landing.status_code == 200, name  # never a 403 page
        assert client.get("/login").status_code == 302  # already logged in
    assert location(login(app.test_client(), "boss")).endswith("/status")


def test_wrong_password_and_unknown_user_get_the_same_answer(client, office, caplog) -> None:  # type: ignore[no-untyped-def]
    wrong = login(client, "boss", PASSWORD + "x")
    unknown = login(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong username or password" in wrong.data and b"Wrong username or password" in unknown.data
    assert location(client.get("/status")).startswith("/login")
    assert any("failed login" in r.getMessage() and "nobody" in r.getMessage() for r in caplog.records)


def test_next_is_followed_only_within_the_site(app, office) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    first = client.get("/admin/users?x=1")
    assert first.status_code == 302 and "/login?next=" in location(first)
    assert location(login(client, "boss", next="/admin/users?x=1")).endswith("/admin/users?x=1")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client = app.test_client()
        assert location(login(client, "boss", next=evil)).endswith("/status"), evil


def test_roles_are_enforced(app, office) -> None:  # type: ignore[no-untyped-def]
    agent = app.test_client()
    login(agent, "ann")
    assert agent.get("/admin/users").status_code == 403
    assert agent.get("/status").status_code == 403
    assert b"does not have access" in agent.get("/status").data
    sup = app.test_client()
    login(sup, "sue")
    assert sup.get("/admin/users").status_code == 403
    assert sup.get("/status").status_code == 200
    boss = app.test_client()
    login(boss, "boss")
    page = boss.get("/admin/users")
    assert page.status_code == 200
    for name in (b"boss", b"sue", b"ann"):
        assert name in page.data


def test_anonymous_is_sent_to_login_and_api_gets_401_json(client, office) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/admin/users")
    assert page.status_code == 302 and location(page).startswith("/login?next=")
    api = client.get("/api/x")
    assert api.status_code == 401 and api.is_json and api.get_json()["error"] == "login required"
    wants_json = client.get("/status", headers={"Accept": "application/json"})
    assert wants_json.status_code == 401 and wants_json.is_json
    assert client.get("/login").status_code == 200


def test_session_cookie_flags(client, office) -> None:  # type: ignore[no-untyped-def]
    response = login(client, "boss")
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("switchboard_session=")]
    assert cookies
    assert "HttpOnly" in cookies[-1]
    assert "SameSite=Strict" in cookies[-1]
    assert "Expires=" in cookies[-1]  # a permanent session, bounded by PERMANENT_SESSION_LIFETIME


def test_logout_ends_the_session(client, office) -> None:  # type: ignore[no-untyped-def]
    login(client, "boss")
    assert client.get("/status").status_code == 200
    out = post(client, "/logout", page="/status")
    assert out.status_code == 302 and location(out).endswith("/login")
    assert location(client.get("/status")).startswith("/login")


def test_a_cookie_replayed_after_logout_opens_nothing(app, office) -> None:  # type: ignore[no-untyped-def]
    """Issue 13, finding 9: the cookie copied before logout used to open /agent for its 12-hour life."""
    browser = app.test_client()
    login(browser, "ann")
    assert browser.get("/agent").status_code == 200
    stolen = browser.get_cookie("switchboard_session").value
    assert post(browser, "/logout", page="/agent").status_code == 302
    thief = app.test_client()
    thief.set_cookie("switchboard_session", stolen)
    assert location(thief.get("/agent")).startswith("/login")


def test_healthz_says_only_ok_and_pages_carry_security_headers(client, office) -> None:  # type: ignore[no-untyped-def]
    """Issue 13, findings 11 and 12."""
    health = client.get("/healthz")
    assert health.status_code == 200 and health.data == b"ok\n"
    page = client.get("/login")
    headers = page.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in page.data and b" style=" not in page.data


def test_password_change_logs_other_sessions_out(web_box, app, office) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "sue")
    login(phone, "sue")
    assert phone.get("/status").status_code == 200
    boss = app.test_client()
    login(boss, "boss")
    reset = post(boss, f"/admin/users/{office['sue']}/password", {"password": "new-harbour-77"}, page="/admin/users")
    assert reset.status_code == 303
    assert location(laptop.get("/status")).startswith("/login")
    assert location(phone.get("/status")).startswith("/login")
    assert login(laptop, "sue").status_code == 401
    assert login(laptop, "sue", "new-harbour-77").status_code == 302


def test_disabled_user_is_logged_out(web_box, app, office) -> None:  # type: ignore[no-untyped-def]
    sue = app.test_client()
    login(sue, "sue")
    users.set_disabled(web_box.db, office["sue"], True)
    assert location(sue.get("/status")).startswith("/login")
    assert login(sue, "sue").status_code == 401


# --- CSRF ---


def test_post_without_or_with_a_wrong_token_is_refused(web_box, client, office) -> None:  # type: ignore[no-untyped-def]
    login(client, "boss")
    form = {"username": "eve", "password": PASSWORD, "role": "supervisor", "extension": ""}
    missing = client.post("/admin/users", data=form)
    assert missing.status_code == 400 and b"Reload the page" in missing.data
    wrong = client.post("/admin/users", data={**form, "csrf_token": "not-the-token"})
    assert wrong.status_code == 400
    header_wrong = client.post("/admin/users", data=form, headers={"X-CSRF-Token": "nope"})
    assert header_wrong.status_code == 400
    assert "eve" not in [u["username"] for u in users.list_users(web_box.db)]
    # The login form is protected too.
    other = client.application.test_client()
    assert other.post("/login", data={"username": "boss", "password": PASSWORD}).status_code == 400
    # With the page's token (field or header) it works.
    token = csrf_from(client.get("/admin/users").data)
    ok = client.post("/admin/users", data={**form, "csrf_token": token})
    assert ok.status_code == 303 and "eve" in [u["username"] for u in users.list_users(web_box.db)]
    ok2 = client.post("/admin/users", data={**form, "username": "eve2"}, headers={"X-CSRF-Token": token})
    assert ok2.status_code == 303


def test_login_rotates_the_csrf_token(client, office) -> None:  # type: ignore[no-untyped-def]
    before = csrf_from(client.get("/login").data)
    login(client, "boss")
    after = csrf_from(client.get("/status").data)
    assert before != after
    form = {"username": "eve", "password": PASSWORD, "role": "supervisor", "csrf_token": before}
    assert client.post("/admin/users", data=form).status_code == 400


# --- throttling ---


def test_guessing_slows_down_but_never_locks_the_user_out_of_a_known_address(app, office) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for _ in range(5):
        assert login(client, "sue", "wrong-password-1").status_code == 401
    blocked = login(client, "sue", PASSWORD)  # sue never logged in from here: the wait applies
    assert blocked.status_code == 429
    assert b"1 minute" in blocked.data
    assert location(client.get("/status")).startswith("/login")
    # Other users (from the same address) are unaffected.
    assert login(app.test_client(), "boss").status_code == 302
    # boss has logged in from here: a colleague's five wrong guesses do not keep boss out.
    guesser = app.test_client()
    for _ in range(5):
        assert login(guesser, "boss", "wrong-password-1").status_code == 401
    assert login(app.test_client(), "boss").status_code == 302


def test_throttle_delays_grow_per_user_and_per_address_and_expire() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(4):
        throttle.failure("198.51.100.1", "ann")
    assert throttle.blocked("198.51.100.1", "ann") == 0
    throttle.failure("198.51.100.1", "ann")
    assert throttle.blocked("198.51.100.9", "ANN") == 30  # the username, from anywhere
    assert throttle.blocked("198.51.100.1", "bob") == 0
    throttle.failure("198.51.100.1", "ann")
    assert throttle.blocked("198.51.100.9", "ann") == 60  # each failure doubles the wait...
    for _ in range(10):
        throttle.failure("198.51.100.1", "ann")
    assert throttle.blocked_minutes("198.51.100.9", "ann") == 15  # ...up to 15 minutes
    now[0] += 15 * 60 + 1
    assert throttle.blocked("198.51.100.9", "ann") == 0
    # Old failures fall out of the hour's window.
    for _ in range(4):
        throttle.failure("198.51.100.1", "cleo")
    now[0] += 61 * 60
    throttle.failure("198.51.100.1", "cleo")
    assert throttle.blocked(None, "cleo") == 0
    # 20 failures from one address make it wait, whatever the names.
    for i in range(20):
        throttle.failure("198.51.100.2", f"user{i}")
    assert throttle.blocked("198.51.100.2", "someone") > 0
    assert throttle.blocked("198.51.100.3", "someone") == 0
    # A good login clears the name's count and makes the address known-good for that name.
    for _ in range(4):
        throttle.failure("198.51.100.4", "dan")
    throttle.success("dan", "198.51.100.4")
    for _ in range(6):
        throttle.failure("198.51.100.66", "dan")
    assert throttle.blocked("198.51.100.66", "dan") > 0
    assert throttle.blocked("198.51.100.4", "dan") == 0
    # An admin's unlock lifts a wait at once.
    assert throttle.unlock("dan") is True
    assert throttle.blocked("198.51.100.66", "dan") == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(clock=lambda: 0.0, max_entries=100)
    for i in range(1000):
        throttle.failure(f"198.51.{100 + i // 250}.{i % 250}", f"name{i}")
    assert len(throttle) <= 101


# --- admin pages ---


def test_admin_creates_users_and_errors_keep_the_form(web_box, client, office) -> None:  # type: ignore[no-untyped-def]
    login(client, "boss")
    bad = post(client, "/admin/users", {"username": "bob", "password": PASSWORD, "role": "agent", "extension": ""},
               page="/admin/users")
    assert bad.status_code == 400
    assert b"needs the extension" in bad.data and b'value="bob"' in bad.data
    assert PASSWORD.encode() not in bad.data
    good = post(client, "/admin/users", {"username": "bob", "password": PASSWORD, "role": "agent", "extension": "202"},
                page="/admin/users")
    assert good.status_code == 303
    bob = [u for u in users.list_users(web_box.db) if u["username"] == "bob"][0]
    assert bob["role"] == "agent" and bob["extension"] == "202"
    assert b"User bob created" in client.get("/admin/users").data


def test_admin_cannot_disable_themself_or_the_last_admin(web_box, client, office) -> None:  # type: ignore[no-untyped-def]
    login(client, "boss")
    me = post(client, f"/admin/users/{office['boss']}/disable", page="/admin/users")
    assert me.status_code == 400 and b"your own account" in me.data
    assert users.get_user(web_box.db, office["boss"])["disabled"] is False
    demote = post(client, f"/admin/users/{office['boss']}/role", {"role": "agent", "extension": "201"},
                  page="/admin/users")
    assert demote.status_code == 400 and users.get_user(web_box.db, office["boss"])["role"] == "admin"
    ok = post(client, f"/admin/users/{office['sue']}/disable", page="/admin/users")
    assert ok.status_code == 303 and users.get_user(web_box.db, office["sue"])["disabled"] is True
    post(client, f"/admin/users/{office['sue']}/enable", page="/admin/users")
    assert users.get_user(web_box.db, office["sue"])["disabled"] is False
    promote = post(client, f"/admin/users/{office['sue']}/role", {"role": "admin", "extension": ""},
                   page="/admin/users")
    assert promote.status_code == 303 and users.get_user(web_box.db, office["sue"])["role"] == "admin"


def test_pages_are_built_on_the_base_template(client, office) -> None:  # type: ignore[no-untyped-def]
    login(client, "boss")
    html = client.get("/status").data.decode()
    assert html.startswith("<!doctype html>") and '<html lang="en">' in html
    assert 'name="viewport"' in html and 'name="csrf-token"' in html
    assert html.count('rel="stylesheet"') == 1 and "style.css" in html
    assert 'href="#main"' in html and 'action="/logout"' in html
    assert 'href="/admin/users"' in html and "boss" in html


# --- CLI ---


def test_cli_admin_create(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = subprocess.run([sys.executable, "-m", "appliance.cli", "admin", "create", "boss", "--password-stdin",
                          "--data-dir", str(data)], input=PASSWORD + "\n", capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    weak = subprocess.run([sys.executable, "-m", "appliance.cli", "admin", "create", "boss2", "--password-stdin",
                           "--data-dir", str(data)], input="password123\n", capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert weak.returncode == 2 and "too well known" in weak.stderr
    listed = subprocess.run([sys.executable, "-m", "appliance.cli", "user", "list", "--data-dir", str(data)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert listed.returncode == 0 and "boss" in listed.stdout and "admin" in listed.stdout
    db = open_database(data / "switchboard.db")
    try:
        user = users.authenticate(db, "boss", PASSWORD)
        assert user is not None and user["role"] == "admin"
        assert users.setup_code(db) is None
    finally:
        db.conn.close()


def test_bans_show_on_the_status_page_and_only_an_admin_lifts_one(web_box, app, office) -> None:  # type: ignore[no-untyped-def]
    """Issue 13, finding 6: a phone with a wrong password got its address banned; the owner lifts it."""
    web_box.call(lambda: web_box.box.bans.ban("192.0.2.44", 600, "5 failed authentications"))
    sue = app.test_client()
    login(sue, "sue")
    page = sue.get("/status").data
    assert b"192.0.2.44" in page and b"5 failed authentications" in page and b"Lift ban" not in page
    assert post(sue, "/status/bans/lift", {"source": "192.0.2.44"}, page="/status").status_code == 403
    boss = app.test_client()
    login(boss, "boss")
    assert b"Lift ban on 192.0.2.44" in boss.get("/status").data
    assert post(boss, "/status/bans/lift", {"source": "192.0.2.44"}, page="/status").status_code == 302
    assert b"192.0.2.44" not in boss.get("/status").data.split(b"may connect again")[-1]
    assert web_box.call(lambda: web_box.box.bans.bans()) == []
