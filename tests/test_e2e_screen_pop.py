"""Screen pop end to end: SIPp calls in on a trunk, a SIPp uas plays the agent's phone, chromium is the agent."""
from __future__ import annotations

import pytest
from browser import sign_in
from peers import LOCALHOST
from queue_office import Office, queue_table
from queue_peers import answering, query, wait_for
from screen_pop_office import PASSWORD, add_customer_with_past, add_user

pytestmark = pytest.mark.peers

CALLER = "+12125550123"


@pytest.fixture
def office(office_factory) -> Office:  # type: ignore[no-untyped-def]
    """Queue sales (ring-all) with agent 201 logged in, web users ann (agent 201), sam (supervisor) and an admin."""
    made = office_factory(queue_table(strategy="ring-all", members=["201"], ring_timeout=8), web=True)
    add_user(made.box, "root", "admin")  # until an admin exists every page leads to the setup form
    add_user(made.box, "ann", "agent", "201")
    add_user(made.box, "sam", "supervisor")
    made.login("201")
    return made


def base(office: Office) -> str:
    """The box's web address."""
    return f"http://{LOCALHOST}:{office.box.http_port}"


def test_card_pops_with_name_segment_and_history_and_wrapup_is_stored(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    customer_id = add_customer_with_past(office.box, CALLER, "Dana Scully", "FBI", "vip", [
        ("sale", ["calm"], 240.0), ("complaint", ["talkative"], 300.0), ("resolved", ["calm"], 180.0)])
    office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=2500, talk_ms=1500))
    tabs = [new_page(), new_page()]
    for tab in tabs:  # the same agent in two browsers: both pop
        sign_in(tab, base(office), "ann", PASSWORD)
        tab.wait_for_selector("#live[data-live='1']")
    # The state buttons show the state: "Available" is the filled one (issue 14, item 8).
    assert tabs[0].get_attribute("#go-available", "aria-pressed") == "true"
    assert "secondary" in (tabs[0].get_attribute("#go-pause", "class") or "")

    caller = office.call(CALLER, callee_hangs_up=True)
    for tab in tabs:
        tab.wait_for_selector("#card[data-call-id] .who")
        assert tab.inner_text("#card .who") == "Dana Scully · FBI"
        assert tab.inner_text("#card .badges .badge-vip") == "vip"
        history = tab.locator("#card .history tbody tr")
        assert history.count() == 3
        assert "resolved" in history.nth(0).inner_text() and "sale" in history.nth(2).inner_text()
        assert "about 4:00 min" in tab.inner_text("#card .facts")  # median of 4:00, 5:00, 3:00
        assert "sales" in tab.inner_text("#card .facts")  # waited in the queue
    page = tabs[0]
    page.wait_for_selector("#card[data-state='talking'] .timer")
    page.wait_for_selector("#wrapup:not([hidden])")
    assert page.inner_text("#wrapup-for").startswith("For the call with Dana Scully")  # item 6: which call
    assert caller.wait(30) == 0

    # Two clicks: the outcome, then Save.
    page.click("#wrapup input[value='follow-up needed']")
    page.click("#wrapup-save")
    page.wait_for_selector("#wrapup", state="hidden")
    tabs[1].wait_for_selector("#wrapup", state="hidden")  # the other tab closes its form too
    assert page.locator("#card .flash-info").all_inner_texts() == ["Wrap-up saved: follow-up needed"]  # once
    call = wait_for(lambda: query(office.box, "SELECT * FROM calls WHERE direction = 'inbound' AND "
                                  "sip_call_id NOT LIKE 'past-%'"), 10, "the call record")[0]
    assert call["customer_id"] == customer_id
    saved = query(office.box, "SELECT * FROM wrapups WHERE call_id = ?", (call["id"],))
    assert [(w["agent"], w["outcome"], w["saved_by"]) for w in saved] == [("201", "follow-up needed", "ann")]


def test_unknown_caller_becomes_a_new_customer_named_from_the_card(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=6000, talk_ms=500))
    page, other_tab = new_page(), new_page()
    for tab in (page, other_tab):
        sign_in(tab, base(office), "ann", PASSWORD)
        tab.wait_for_selector("#live[data-live='1']")
    caller = office.call("+13125550199", callee_hangs_up=True)

    page.wait_for_selector("#card .quick-create:not([hidden])")
    assert page.inner_text("#card .who") == "Unknown caller"
    assert page.inner_text("#card .badges .badge-new") == "new"
    page.fill("#card .quick-create input[name=name]", "Fox Mulder")
    page.click("#card .quick-create button")
    page.wait_for_selector("#card .who:text('Fox Mulder')")
    other_tab.wait_for_selector("#card .who:text('Fox Mulder')")  # every tab of the agent (issue 14, item 7)
    assert caller.wait(40) == 0
    rows = query(office.box, "SELECT c.name, c.segment, p.phone FROM customers c JOIN customer_phones p "
                 "ON p.customer_id = c.id")
    assert rows == [{"name": "Fox Mulder", "segment": "new", "phone": "+13125550199"}]

    # The wrap-up by keyboard alone: it opens with the first outcome focused; Space picks it, Enter saves.
    page.wait_for_selector("#wrapup:not([hidden])")
    assert page.evaluate("document.activeElement.name") == "outcome"
    page.keyboard.press("ArrowDown")  # the next outcome
    page.keyboard.press("Enter")
    page.wait_for_selector("#wrapup", state="hidden")
    saved = query(office.box, "SELECT outcome FROM wrapups")
    assert saved == [{"outcome": "follow-up needed"}]


def test_usually_calm_customer_marked_angry_alerts_the_supervisor_live(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    add_customer_with_past(office.box, CALLER, "Walter Skinner", "", None, [
        ("resolved", ["calm"], 100.0), ("resolved", ["calm"], 100.0), ("sale", ["calm"], 100.0)])
    office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=300, talk_ms=800))
    agent, supervisor = new_page(), new_page()
    sign_in(agent, base(office), "ann", PASSWORD)
    sign_in(supervisor, base(office), "sam", PASSWORD, then="/supervisor")
    for page in (agent, supervisor):
        page.wait_for_selector("#live[data-live='1']")
    assert "No alerts" in supervisor.inner_text("#supervisor-live")

    caller = office.call(CALLER, callee_hangs_up=True)
    agent.wait_for_selector("#wrapup:not([hidden])")
    assert caller.wait(30) == 0
    agent.click("#wrapup input[value='complaint']")
    agent.check("#wrapup input[value='angry']")
    agent.click("#wrapup-save")
    supervisor.wait_for_selector("#alerts .alert-upset")
    assert "Walter Skinner" in supervisor.inner_text("#alerts")


def test_click_to_call_rings_the_agent_first_then_the_customer(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    add_customer_with_past(office.box, CALLER, "Dana Scully", "FBI", None, [])
    phone = office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=300, talk_ms=None))
    customer = office.customer(answering(office.workdir, "dana_phone", ring_ms=300, talk_ms=1000), trunk=0)
    page = new_page()
    sign_in(page, base(office), "ann", PASSWORD)
    page.wait_for_selector("#live[data-live='1']")

    page.fill("#dial-number", "(212) 555-0123")
    page.click("#dial-form button")
    page.wait_for_selector("#card .who:text('Dana Scully · FBI')")  # the card pops for calls the agent places
    assert customer.finish(30)[0] == 0
    assert phone.finish(30)[0] == 0
    call = wait_for(lambda: [r for r in query(office.box, "SELECT * FROM calls WHERE direction = 'outbound'")
                             if r["ended_at"]], 10, "the outbound record")[0]
    assert (call["from_number"], call["answered_by"], call["line"]) == ("201", "201", "itsp0")
    assert call["to_number"].endswith("2125550123") and call["customer_id"] is not None
    request_line = next(line for line in customer.received()[0].splitlines() if line.startswith("INVITE "))
    assert "sip:2125550123@" in request_line  # the national number, as the agent would dial it


def test_callback_pops_the_customers_card_when_the_agents_phone_rings(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    add_customer_with_past(office.box, CALLER, "Dana Scully", "FBI", None, [("follow-up needed", ["calm"], 60.0)])
    phone = office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=1500, talk_ms=None))
    customer = office.customer(answering(office.workdir, "dana_phone", ring_ms=300, talk_ms=1000), trunk=0)
    page = new_page()
    sign_in(page, base(office), "ann", PASSWORD)
    page.wait_for_selector("#live[data-live='1']")

    office.cli_ok("callback", "add", CALLER, "--queue", "sales", "--name", "Dana")
    page.wait_for_selector("#card[data-call-id] .who")
    assert page.inner_text("#card .who") == "Dana Scully · FBI"
    assert "callback" in page.inner_text("#card .badges")
    assert "follow-up needed" in page.inner_text("#card .history")
    assert customer.finish(40)[0] == 0 and phone.finish(30)[0] == 0
    page.wait_for_selector("#wrapup:not([hidden])")


@pytest.mark.parametrize("path", ["/agent", "/customers", "/supervisor"])
def test_pages_fit_a_phone_screen(office: Office, new_page, path: str) -> None:  # type: ignore[no-untyped-def]
    add_customer_with_past(office.box, CALLER, "Dana Scully", "Federal Bureau of Investigation", "vip", [])
    page = new_page(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(page, base(office), "sam" if path == "/supervisor" else "ann", PASSWORD, then=path)
    if path == "/customers":
        page.wait_for_selector("text=Dana Scully")
    else:
        page.wait_for_selector("#live[data-live='1']")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow} px wider than a 360 px screen"


def test_a_colleagues_call_pops_the_colleague_and_asks_for_no_wrapup(office: Office, new_page) -> None:  # type: ignore[no-untyped-def]
    """Issue 14, item 6: internal calls got a customer card and a sales wrap-up."""
    from peers import SCENARIOS, free_media_port, sipp, users_file
    from queue_office import SECRETS

    office.phones.start("201", answering(office.workdir, "ann_phone", ring_ms=1500, talk_ms=800))
    page = new_page()
    sign_in(page, base(office), "ann", PASSWORD)
    page.wait_for_selector("#live[data-live='1']")
    csv = users_file(office.workdir, {"202": SECRETS["202"]}, "bob.csv")
    result = sipp(f"{LOCALHOST}:{office.box.sip_port}", "-sf", str(SCENARIOS / "call_uac_wait_bye.xml"),
                  "-inf", str(csv), "-s", "201", "-m", "1", "-mp", str(free_media_port()),
                  "-timeout", "20", "-timeout_error", cwd=office.workdir)
    assert result.returncode == 0, result.errors
    page.wait_for_selector("#card[data-state='ended']")
    assert page.inner_text("#card .who") == "Agent 202"  # the colleague, not a customer
    assert page.is_hidden("#wrapup")  # no wrap-up unless asked for
    page.click("#card button:text('Wrap up this call')")
    page.wait_for_selector("#wrapup:not([hidden])")
    assert page.inner_text("#wrapup-for").startswith("For the call with Agent 202")
