"""The CRM's rules: segments, expected handling, history, alerts, the screen-pop card, wrap-up validation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.calls.queue_config import Member, QueueConfig
from appliance.crm.alerts import acknowledge_alert, alert_on_wrapup, card_alerts, open_alerts, raise_repeat_alert
from appliance.crm.card import build_card
from appliance.crm.history import customer_calls, expected_handling
from appliance.crm.segments import computed_segment, effective_segment
from appliance.crm.settings import MOODS, CrmError, CrmSettings, SegmentRule
from appliance.crm.wrapup import callback_time, record_wrapup
from appliance.store import queues
from appliance.calls import queue_definitions
from appliance.crm import customer_store
from appliance.store.calls import finish_call, mark_answered, set_ivr_path, start_call
from appliance.crm.customer_store import create_customer, get_customer, refresh_segment, set_call_customer
from appliance.store.db import to_iso
from appliance.store.directory import upsert_extension
from appliance.store.wrapups import save_wrapup

FR = "FR"
SETTINGS = CrmSettings(region=FR)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _call(db, customer_id: int | None, started: datetime, talk: float | None = None, *, direction: str = "inbound",
          number: str = "+33612345678", agent: str = "201", end: bool = True) -> str:
    """A call record started at `started`, answered by `agent` for `talk` seconds (None: unanswered)."""
    from_number, to_number = (number, "201") if direction != "outbound" else ("201", number)
    call = start_call(db, sip_call_id=f"sip-{started.timestamp()}", direction=direction, line="itsp",
                      from_number=from_number, from_name="CALLER", to_number=to_number, started_at=started)
    if customer_id is not None:
        set_call_customer(db, call, customer_id)
    if talk is not None:
        mark_answered(db, call, agent, started + timedelta(seconds=5))
        if end:
            finish_call(db, call, "answered", at=started + timedelta(seconds=5 + talk))
    elif end:
        finish_call(db, call, "no-answer", at=started + timedelta(seconds=20))
    return call


def _wrap(db, call: str, customer_id: int, moods: list[str], outcome: str = "information given",
          agent: str = "201") -> None:
    save_wrapup(db, call_id=call, agent=agent, customer_id=customer_id, outcome=outcome, moods=moods, note="")


def _customer(db, name: str = "Ann", phone: str = "0612345678", **fields) -> int:
    return create_customer(db, region=FR, name=name, phones=[phone], **fields)


# --- segments ---


def test_computed_segment_rules_in_order():
    now = datetime(2026, 5, 4, tzinfo=timezone.utc)
    settings = CrmSettings(rules=(SegmentRule("vip", 5, 30), SegmentRule("regular", 3, 90),
                                  SegmentRule("occasional", 2, 365)), new_days=30)
    old = now - timedelta(days=400)
    days = lambda *ds: [now - timedelta(days=d) for d in ds]  # noqa: E731
    assert computed_segment(old, days(1, 2, 3, 4, 5), settings, now) == "vip"
    assert computed_segment(old, days(1, 2, 3, 4, 40), settings, now) == "regular"
    assert computed_segment(old, days(100, 200), settings, now) == "occasional"
    assert computed_segment(old, days(100, 400), settings, now) == "occasional"  # no rule, but not young
    assert computed_segment(now - timedelta(days=29), days(1), settings, now) == "new"
    assert computed_segment(now - timedelta(days=31), days(1), settings, now) == "occasional"
    assert effective_segment("vip", "new") == "vip" and effective_segment(None, "regular") == "regular"


def test_refresh_segment_counts_the_customers_calls(db):
    now = _now()
    ann = _customer(db)
    for days in (1, 10, 20):
        _call(db, ann, now - timedelta(days=days))
    _call(db, None, now - timedelta(days=2))  # someone else's call
    assert get_customer(db, ann)["segment_computed"] == "new"
    assert refresh_segment(db, ann, SETTINGS, now) == "regular"
    assert get_customer(db, ann)["segment_computed"] == "regular"
    assert refresh_segment(db, ann, SETTINGS, now + timedelta(days=85)) == "occasional"  # 2 left within 365 days
    pinned = _customer(db, "Bob", "0699999999", segment_override="vip")
    assert refresh_segment(db, pinned, SETTINGS, now) == "vip"
    assert get_customer(db, pinned)["segment_computed"] == "new"


def test_vip_routing_sees_the_effective_segment(db):
    ann = _customer(db)
    assert customer_store.customer_segment(db, "+33612345678") == "new"
    from appliance.crm.customer_store import update_customer
    update_customer(db, ann, region=FR, segment_override="vip")
    assert customer_store.customer_segment(db, "+33612345678") == "vip"


# --- expected handling and history ---


def test_expected_handling_customer_then_segment(db):
    now = _now()
    ann = _customer(db)
    bob = _customer(db, "Bob", "0699999999", segment_override="vip")
    cleo = _customer(db, "Cleo", "0688888888", segment_override="vip")
    assert expected_handling(db, ann, "new") is None
    for i, talk in enumerate((60, 100, 300)):
        _call(db, ann, now - timedelta(hours=i + 1), talk)
    _call(db, ann, now - timedelta(hours=9))  # unanswered: no duration
    assert expected_handling(db, ann, "new") == 100
    for i, talk in enumerate((40, 50)):
        _call(db, bob, now - timedelta(hours=i + 1), talk)
    assert expected_handling(db, cleo, "vip") == 45  # Cleo has no answered call: the vip median
    assert expected_handling(db, None, "regular") is None
    assert expected_handling(db, None, None) is None


def test_customer_calls_newest_first_with_wrapups_ivr_and_queue(db):
    now = _now()
    queue_definitions.save_queue(db, QueueConfig("sales", number="600", members=(Member("201"),)))
    ann = _customer(db)
    oldest = _call(db, ann, now - timedelta(days=3), 120)
    middle = _call(db, ann, now - timedelta(days=2), None)
    set_ivr_path(db, middle, [{"menu": "main", "key": "2", "action": "queue:sales", "label": "sales"}])
    entry = queues.enter_queue(db, queue="sales", call_id=middle, number="+33612345678", name=None, vip=False,
                               entered_at=(now - timedelta(days=2)).timestamp() + 10)
    queues.entry_left(db, entry, "abandoned", (now - timedelta(days=2)).timestamp() + 55)
    current = _call(db, ann, now - timedelta(minutes=1), 30, end=False)
    later = _call(db, ann, now, 10)
    _wrap(db, oldest, ann, ["calm"], "sale", agent="201")
    save_wrapup(db, call_id=oldest, agent="202", customer_id=ann, outcome="resolved", moods=["talkative"],
                note="transferred and solved")

    history = customer_calls(db, ann, limit=5, before_call=current)
    assert [h["call_id"] for h in history] == [middle, oldest]
    first, second = history
    assert first["disposition"] == "no-answer" and first["agent"] is None and first["duration"] is None
    assert first["ivr_text"] == "pressed 2: sales" and first["queue"] == "sales" and first["wait"] == 45
    assert first["outcome"] is None and first["moods"] == [] and first["note"] == ""
    assert second["outcome"] == "resolved" and second["moods"] == ["talkative"]  # the latest wrap-up
    assert second["note"] == "transferred and solved" and second["agent"] == "201" and second["duration"] == 120
    assert second["queue"] is None and second["wait"] is None
    assert [h["call_id"] for h in customer_calls(db, ann)] == [later, current, middle, oldest]
    assert [h["call_id"] for h in customer_calls(db, ann, limit=1)] == [later]


# --- alerts ---


def _history(db, customer_id: int, moods_list: list[list[str]], now: datetime, outcome: str = "resolved") -> list[str]:
    """Calls with wrap-ups, oldest first, one a day up to yesterday."""
    calls = []
    for i, moods in enumerate(moods_list):
        call = _call(db, customer_id, now - timedelta(days=len(moods_list) - i), 60)
        _wrap(db, call, customer_id, moods, outcome)
        calls.append(call)
    return calls


def test_upset_alert_when_usually_calm(db):
    now = _now()
    ann = _customer(db)
    calls = _history(db, ann, [["calm"], ["calm", "talkative"], ["in a hurry"], ["calm"], ["angry"]], now)
    assert card_alerts(db, ann, SETTINGS, now) == [
        {"kind": "upset", "message": "Usually calm, but was angry on the last call"}
    ]
    assert card_alerts(db, ann, SETTINGS, now + timedelta(days=8)) == []  # too long ago
    # the same wrap-up seen by alert_on_wrapup: stored once
    alert = alert_on_wrapup(db, customer_id=ann, call_id=calls[-1], moods=["angry", "nervous"], settings=SETTINGS)
    assert alert["kind"] == "upset" and alert["message"] == "Usually calm, but was nervous and angry on the last call"
    assert alert_on_wrapup(db, customer_id=ann, call_id=calls[-1], moods=["angry"], settings=SETTINGS) is None
    assert [a["id"] for a in open_alerts(db)] == [alert["id"]]


@pytest.mark.parametrize(
    "earlier",
    [
        [["calm"], ["angry"], ["nervous"]],  # 1 of 3 calm, under 0.6
        [["calm"]],  # only one earlier wrap-up
        [],
    ],
)
def test_no_upset_alert_without_a_calm_history(db, earlier):
    now = _now()
    ann = _customer(db)
    calls = _history(db, ann, [*earlier, ["angry"]], now)
    assert card_alerts(db, ann, SETTINGS, now) == []
    assert alert_on_wrapup(db, customer_id=ann, call_id=calls[-1], moods=["angry"], settings=SETTINGS) is None


def test_no_upset_alert_for_calm_moods(db):
    now = _now()
    ann = _customer(db)
    calls = _history(db, ann, [["calm"], ["calm"], ["calm"]], now)
    assert alert_on_wrapup(db, customer_id=ann, call_id=calls[-1], moods=["talkative"], settings=SETTINGS) is None
    assert open_alerts(db) == []


def test_repeat_alert(db):
    now = _now()
    ann = _customer(db)
    calls = _history(db, ann, [["calm"], ["calm"]], now, outcome="follow-up needed")
    assert card_alerts(db, ann, SETTINGS, now) == []
    _call(db, ann, now - timedelta(minutes=5))  # a third, unanswered
    assert card_alerts(db, ann, SETTINGS, now) == [{"kind": "repeat", "message": "3 calls in 7 days, none settled "
                                                    "(resolved, sale, information given); 1 without a wrap-up"}]
    assert card_alerts(db, ann, SETTINGS, now + timedelta(days=6, hours=23)) == []  # the first left the window
    first = raise_repeat_alert(db, customer_id=ann, call_id=calls[-1], settings=SETTINGS, now=now)
    assert first["kind"] == "repeat" and first["customer_id"] == ann
    assert raise_repeat_alert(db, customer_id=ann, call_id=calls[-1], settings=SETTINGS, now=now) is None
    save_wrapup(db, call_id=calls[0], agent="202", customer_id=ann, outcome="resolved", moods=[], note="")
    assert card_alerts(db, ann, SETTINGS, now) == []


def test_a_sale_or_a_callback_that_reached_them_settles_the_matter(db):
    """Issue 14, item 2: "sale", a completed callback and a call without a wrap-up raised the alert."""
    now = _now()
    ann = _customer(db)
    calls = _history(db, ann, [["calm"]], now, outcome="sale")
    _call(db, ann, now - timedelta(minutes=20), 60, direction="callback")
    _call(db, ann, now - timedelta(minutes=10))
    _call(db, ann, now - timedelta(minutes=5))
    assert card_alerts(db, ann, SETTINGS, now) == [] and calls
    cleo = _customer(db, "Cleo", "0688888888")  # a complaint, then a callback that reached her, then a call
    complaint = _call(db, cleo, now - timedelta(minutes=30), 60, number="+33688888888")
    save_wrapup(db, call_id=complaint, agent="201", customer_id=cleo, outcome="complaint", moods=[], note="")
    _call(db, cleo, now - timedelta(minutes=20), 60, direction="callback", number="+33688888888")
    _call(db, cleo, now - timedelta(minutes=10), number="+33688888888")
    _call(db, cleo, now - timedelta(minutes=5), number="+33688888888")
    assert card_alerts(db, cleo, SETTINGS, now) == []
    unsettled = CrmSettings(settled=("resolved",))
    bob = _customer(db, "Bob", "0699999999")
    for minutes in (30, 20, 10):
        _call(db, bob, now - timedelta(minutes=minutes), 60, number="+33699999999")
    assert card_alerts(db, bob, unsettled, now) == [
        {"kind": "repeat", "message": "3 calls in 7 days, none settled (resolved); 3 without a wrap-up"}]


def test_repeat_alert_once_a_day(db):
    day = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
    ann = _customer(db)
    for hours in (1, 2, 3):
        _call(db, ann, day - timedelta(hours=hours))
    assert raise_repeat_alert(db, customer_id=ann, call_id="c1", settings=SETTINGS, now=day) is not None
    assert raise_repeat_alert(db, customer_id=ann, call_id="c2", settings=SETTINGS,
                              now=day + timedelta(hours=14)) is None
    _call(db, ann, day + timedelta(hours=20))
    assert raise_repeat_alert(db, customer_id=ann, call_id="c3", settings=SETTINGS,
                              now=day + timedelta(hours=21)) is not None  # the next UTC day
    bob = _customer(db, "Bob", "0699999999")
    assert raise_repeat_alert(db, customer_id=bob, call_id="c4", settings=SETTINGS, now=day) is None


def test_open_alerts_and_acknowledge(db):
    now = _now()
    ann = _customer(db, company="Acme")
    for minutes in (1, 2, 3):
        _call(db, ann, now - timedelta(minutes=minutes))
    alert = raise_repeat_alert(db, customer_id=ann, call_id="c1", settings=SETTINGS, now=now)
    [row] = open_alerts(db)
    assert row["id"] == alert["id"] and row["customer_name"] == "Ann" and row["customer_company"] == "Acme"
    assert row["phone"] == "+33612345678" and row["phone_display"] == "+33 6 12 34 56 78"
    assert row["message"] == "3 calls in 7 days, none settled (resolved, sale, information given); 3 without a wrap-up"
    assert acknowledge_alert(db, alert["id"], "sue") is True
    assert acknowledge_alert(db, alert["id"], "sue") is False
    assert open_alerts(db) == []


# --- the card ---


def test_card_for_a_known_customer(db):
    now = _now()
    queue_definitions.save_queue(db, QueueConfig("sales", number="600", members=(Member("201"),)))
    ann = _customer(db, segment_override="vip")
    _history(db, ann, [["calm"], ["calm"], ["angry"]], now)
    call = _call(db, ann, now - timedelta(seconds=30), None, end=False)
    set_ivr_path(db, call, [{"menu": "main", "key": "1", "action": "queue:sales", "label": "sales"}])
    queues.enter_queue(db, queue="sales", call_id=call, number="+33612345678", name=None, vip=True,
                       entered_at=(now - timedelta(seconds=20)).timestamp())
    card = build_card(db, call, SETTINGS, extension="201")
    assert card["call_id"] == call and card["direction"] == "inbound" and card["line"] == "itsp"
    assert card["number"] == "+33612345678" and card["number_display"] == "+33 6 12 34 56 78"
    assert card["extension"] == "201" and card["internal"] is False and card["caller_name"] == "Ann"
    assert card["customer"]["id"] == ann and card["segment"] == "vip"
    assert card["expected_handling_s"] == 60
    assert card["alerts"] == [{"kind": "upset", "message": "Usually calm, but was angry on the last call"}]
    assert len(card["history"]) == 3 and call not in [h["call_id"] for h in card["history"]]
    assert card["ivr_text"] == "pressed 1: sales" and card["ivr_path"][0]["key"] == "1"
    assert card["queue"] == "sales" and card["queue_wait_s"] >= 20  # still waiting: the wait so far
    assert card["outcomes"] == list(SETTINGS.outcomes) and card["moods"] == list(MOODS)
    assert card["started_at"] == to_iso(now - timedelta(seconds=30))


def test_card_outbound_internal_unknown(db):
    now = _now()
    upsert_extension(db, "202", "Bob", "s3cret-202", "switchboard")
    ann = _customer(db)
    out = _call(db, ann, now, None, direction="outbound", end=False)
    card = build_card(db, out, SETTINGS)
    assert card["number"] == "+33612345678" and card["customer"]["name"] == "Ann" and card["caller_name"] == "Ann"
    internal = start_call(db, sip_call_id="i", direction="internal", line="extension", from_number="202",
                          from_name=None, to_number="201")
    card = build_card(db, internal, SETTINGS)
    assert card["internal"] is True and card["caller_name"] == "Bob" and card["number_display"] == "202"
    assert card["customer"] is None and card["history"] == [] and card["alerts"] == []
    assert card["expected_handling_s"] is None and card["queue"] is None and card["queue_wait_s"] is None
    # Ann (201) calls Bob by click-to-call: her card shows Bob, not herself (issue 14, item 4).
    upsert_extension(db, "201", "Ann", "s3cret-201", "switchboard")
    placed = start_call(db, sip_call_id="c2c", direction="internal", line="internal", from_number="201",
                        from_name="Ann", to_number="202")
    card = build_card(db, placed, SETTINGS, extension="201")
    assert (card["number"], card["caller_name"]) == ("202", "Bob")
    stranger = _call(db, None, now, None, number="+33700000001", end=False)
    card = build_card(db, stranger, SETTINGS)
    assert card["customer"] is None and card["segment"] is None and card["caller_name"] == "CALLER"
    assert build_card(db, "no-such-call", SETTINGS) is None


# --- wrap-ups ---


def test_record_wrapup_saves_refreshes_and_alerts(db):
    now = _now()
    ann = _customer(db)
    _history(db, ann, [["calm"], ["calm"]], now)
    call = _call(db, ann, now - timedelta(minutes=3), 60)
    result = record_wrapup(db, SETTINGS, call_id=call, agent="201", outcome="complaint",
                           moods=["angry", "in a hurry", "angry"], note="  wants a refund  ",
                           callback_at=(now + timedelta(days=1)).isoformat(), saved_by="ann")
    wrapup = result["wrapup"]
    assert wrapup["customer_id"] == ann and wrapup["moods"] == ["in a hurry", "angry"]
    assert wrapup["note"] == "wants a refund" and wrapup["saved_by"] == "ann"
    assert wrapup["callback_at"] == to_iso(now + timedelta(days=1))
    assert result["alert"]["kind"] == "upset" and result["alert"]["call_id"] == call
    assert get_customer(db, ann)["segment_computed"] == "regular"  # three calls: refreshed
    stranger = _call(db, None, now, 5)
    result = record_wrapup(db, SETTINGS, call_id=stranger, agent="201", outcome="resolved", moods=[], note="",
                           callback_at=None, saved_by=None)
    assert result["alert"] is None and result["wrapup"]["customer_id"] is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": "won"}, "unknown outcome 'won'"),
        ({"moods": ["grumpy"]}, "unknown mood 'grumpy'"),
        ({"note": "x" * 2001}, "longer than 2000"),
        ({"callback_at": "2020-01-01T10:00:00+00:00"}, "in the past"),
        ({"callback_at": "2099-01-01T10:00:00"}, "needs a time zone"),
        ({"callback_at": "tomorrow"}, "not a date and time"),
        ({"call_id": "nope"}, "no call 'nope'"),
        ({"agent": " "}, "agent"),
    ],
)
def test_record_wrapup_refusals(db, changes, message):
    ann = _customer(db)
    call = _call(db, ann, _now(), 30)
    args = {"call_id": call, "agent": "201", "outcome": "resolved", "moods": ["calm"], "note": "",
            "callback_at": None, "saved_by": None, **changes}
    with pytest.raises(CrmError, match=message):
        record_wrapup(db, SETTINGS, **args)
    assert db.execute("SELECT count(*) FROM wrapups").fetchone()[0] == 0


def test_callback_time_accepts_aware_datetimes_and_z():
    now = datetime(2026, 5, 4, tzinfo=timezone.utc)
    later = now + timedelta(hours=2)
    assert callback_time(later, now) == later
    assert callback_time("2026-05-04T02:00:00Z", now) == later
    assert callback_time("", now) is None and callback_time(None, now) is None
