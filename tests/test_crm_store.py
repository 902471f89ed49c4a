"""Phones, settings, appliance.store.customers and wrapups, and the customer part of store.queues."""
from __future__ import annotations

import pytest

from appliance.crm.phones import display, normalise
from appliance.crm.settings import CrmSettings, SegmentRule, load_crm_settings
from appliance.crm import customer_store
from appliance.store.calls import get_call, start_call
from appliance.crm.customer_store import (
    CustomerError,
    add_phones,
    caller_customer,
    count_customers,
    create_customer,
    customer_by_phone,
    delete_customer,
    get_customer,
    list_customers,
    search_customers,
    set_call_customer,
    update_customer,
)
from appliance.store.directory import set_setting
from appliance.store.wrapups import call_wrapups, get_wrapup, save_wrapup, set_wrapup_callback

FR = "FR"


def _call(db, number: str = "+33612345678") -> str:
    return start_call(db, sip_call_id="x", direction="inbound", line="itsp", from_number=number, from_name=None,
                      to_number="201", started_at="2026-05-04T09:00:00Z")


# --- phones ---


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),
        ("0033612345678", "FR", "+33612345678"),
        ("33612345678", "FR", "+33612345678"),  # a trunk that drops the "+"
        ("(212) 555-0123", "US", "+12125550123"),
        ("011 44 20 7946 0000", "US", "+442079460000"),
        ("+44 7700 900123", "FR", "+447700900123"),  # fictional range: possible, not valid
        ("447700900123", "US", "+447700900123"),
        ("anonymous", "FR", None),
        ("201", "FR", None),
        ("112", "FR", None),
        ("555-0123", "US", None),  # local only
        ("", "FR", None),
        ("+3" + "3" * 80, "FR", None),
    ],
)
def test_normalise(raw, region, expected):
    assert normalise(raw, region) == expected


def test_display_is_international():
    assert display("+33612345678") == "+33 6 12 34 56 78"
    assert display("201") == "201"


# --- settings ---


def test_settings_default_then_stored(db):
    assert load_crm_settings(db) == CrmSettings()
    custom = CrmSettings(region="FR", outcomes=("resolved", "sale"), rules=(SegmentRule("vip", 10, 30),),
                         new_days=7, calm_share=0.5)
    set_setting(db, "crm", custom.to_dict())
    assert load_crm_settings(db) == custom


def test_unreadable_settings_fall_back_to_defaults(db):
    set_setting(db, "crm", {"colour": "blue"})
    assert load_crm_settings(db) == CrmSettings()


# --- customers ---


def test_create_and_get(db):
    cid = create_customer(db, region=FR, name=" Ann Martin ", company="Acme", phones=["06 12 34 56 78", "+33612345678",
                          "01 42 68 53 00"], email="ann@acme.fr", tags=["golf", "Golf", "key account"],
                          notes="likes mornings\nno calls on Fridays")
    c = get_customer(db, cid)
    assert c["name"] == "Ann Martin" and c["company"] == "Acme" and c["email"] == "ann@acme.fr"
    assert c["phones"] == ["+33612345678", "+33142685300"]
    assert c["tags"] == ["golf", "key account"]
    assert c["segment"] == "new" and c["segment_computed"] == "new" and c["segment_override"] is None
    assert c["notes"] == "likes mornings\nno calls on Fridays"
    assert customer_by_phone(db, "+33142685300")["id"] == cid
    assert customer_by_phone(db, "+33999999999") is None
    assert get_customer(db, cid + 1) is None


def test_a_phone_belongs_to_one_customer(db):
    ann = create_customer(db, region=FR, name="Ann", phones=["0612345678"])
    with pytest.raises(CustomerError, match=r"\+33 6 12 34 56 78 already belongs to customer #\d+ \(Ann\)"):
        create_customer(db, region=FR, name="Bob", phones=["0699999999", "+33612345678"])
    assert count_customers(db) == 1
    assert customer_by_phone(db, "+33699999999") is None
    bob = create_customer(db, region=FR, name="Bob", phones=["0699999999"])
    with pytest.raises(CustomerError, match="already belongs to customer"):
        update_customer(db, bob, region=FR, name="Robert", phones=["0612345678"])
    assert get_customer(db, bob)["name"] == "Bob"  # the whole update was refused
    assert get_customer(db, ann)["phones"] == ["+33612345678"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phones": ["anonymous"]}, "not a phone number: 'anonymous'"),
        ({"email": "ann"}, "not an email address"),
        ({"email": "ann@@acme.fr"}, "not an email address"),
        ({"email": "ann@localhost"}, "not an email address"),
        ({"segment_override": "gold"}, "unknown segment 'gold'"),
        ({"tags": ["a;b"]}, "a tag cannot contain"),
        ({"tags": ["x" * 41]}, "longer than 40"),
        ({"name": "x" * 201}, "name is longer than 200"),
        ({"name": "Ann\nBob"}, "control characters"),
    ],
)
def test_bad_fields_are_refused(db, fields, message):
    with pytest.raises(CustomerError, match=message):
        create_customer(db, region=FR, **{"name": "Ann", **fields})
    assert count_customers(db) == 0


def test_update_replaces_phones_and_changes_fields(db):
    cid = create_customer(db, region=FR, name="Ann", phones=["0612345678", "0142685300"], tags=["a"])
    update_customer(db, cid, region=FR, phones=["0700000001"], segment_override="vip", tags="b; c", email="a@b.fr")
    c = get_customer(db, cid)
    assert c["phones"] == ["+33700000001"] and c["segment"] == "vip" and c["segment_computed"] == "new"
    assert c["tags"] == ["b", "c"] and c["email"] == "a@b.fr" and c["name"] == "Ann"
    assert customer_by_phone(db, "+33612345678") is None
    add_phones(db, cid, ["0612345678", "07 00 00 00 01"], FR)
    assert get_customer(db, cid)["phones"] == ["+33700000001", "+33612345678"]
    with pytest.raises(CustomerError, match="unknown customer field 'segment'"):
        update_customer(db, cid, region=FR, segment="vip")
    with pytest.raises(CustomerError, match="no customer #999"):
        update_customer(db, 999, region=FR, name="Nobody")


def test_search_and_list(db):
    ann = create_customer(db, region=FR, name="Ann Martin", company="Acme", phones=["0612345678"])
    bob = create_customer(db, region=FR, name="bob", company="Zeta", email="bob@zeta.io")
    nameless = create_customer(db, region=FR, phones=["0700000001"])
    assert [c["id"] for c in list_customers(db)] == [ann, bob, nameless]
    assert [c["id"] for c in list_customers(db, limit=1, offset=1)] == [bob]
    assert [c["id"] for c in search_customers(db, "mart")] == [ann]
    assert [c["id"] for c in search_customers(db, "ACME")] == [ann]
    assert [c["id"] for c in search_customers(db, "zeta.io")] == [bob]
    assert [c["id"] for c in search_customers(db, "345")] == [ann]
    assert [c["id"] for c in search_customers(db, "06 12 34")] == [ann]  # national form
    assert [c["id"] for c in search_customers(db, "+33 6 12 34 56 78")] == [ann]
    assert search_customers(db, "100%") == []
    assert search_customers(db, "_") == []  # LIKE wildcards are literal
    assert len(search_customers(db, "")) == 3


def test_delete_unlinks_calls(db):
    cid = create_customer(db, region=FR, name="Ann", phones=["0612345678"])
    call = _call(db)
    set_call_customer(db, call, cid)
    assert get_call(db, call)["customer_id"] == cid
    assert delete_customer(db, cid) is True
    assert get_call(db, call)["customer_id"] is None
    assert customer_by_phone(db, "+33612345678") is None
    assert delete_customer(db, cid) is False
    with pytest.raises(KeyError):
        set_call_customer(db, "nope", cid)


def test_caller_customer_creates_once(db):
    first = caller_customer(db, "0612345678", FR)
    assert first is not None
    assert caller_customer(db, "+33 6 12 34 56 78", FR) == first
    c = get_customer(db, first)
    assert c["name"] == "" and c["segment"] == "new" and c["phones"] == ["+33612345678"]
    assert caller_customer(db, "anonymous", FR) is None
    assert caller_customer(db, "0699999999", FR, create=False) is None
    assert count_customers(db) == 1


# --- wrap-ups ---


def test_wrapup_save_replace_and_callback(db):
    call = _call(db)
    saved = save_wrapup(db, call_id=call, agent="201", customer_id=None, outcome="sale", moods=["calm"], note="ok",
                        callback_at="2030-01-01T10:00:00+01:00", saved_by="ann")
    assert saved["moods"] == ["calm"] and saved["callback_at"] == "2030-01-01T09:00:00.000Z"
    set_wrapup_callback(db, call, "201", "cb1")
    again = save_wrapup(db, call_id=call, agent="201", customer_id=None, outcome="resolved", moods=[], note="")
    assert again["outcome"] == "resolved" and again["callback_id"] == "cb1" and again["callback_at"] is None
    save_wrapup(db, call_id=call, agent="202", customer_id=None, outcome="sale", moods=[], note="")
    assert {w["agent"] for w in call_wrapups(db, call)} == {"201", "202"}
    assert get_wrapup(db, call, "203") is None
    with pytest.raises(KeyError):
        set_wrapup_callback(db, call, "203", "cb2")


# --- store.queues on the new tables ---


def test_queues_customer_segment_and_upsert(db):
    set_setting(db, "crm", CrmSettings(region="GB").to_dict())
    vip = customer_store.upsert_customer(db, "+44 7700 900123", "Ann", "vip")
    assert customer_store.customer_segment(db, "07700 900123") == "vip"
    assert customer_store.customer_segment(db, "447700900123") == "vip"
    assert customer_store.customer_segment(db, "07700 900124") is None
    assert customer_store.customer_segment(db, "anonymous") is None
    assert customer_store.upsert_customer(db, "07700900123", segment="regular") == vip
    c = get_customer(db, vip)
    assert c["name"] == "Ann" and c["segment_override"] == "regular"
    assert customer_store.upsert_customer(db, "07700900123", "Annie") == vip  # "new": back to the rules
    c = get_customer(db, vip)
    assert c["name"] == "Annie" and c["segment_override"] is None and c["segment"] == "new"
    assert customer_store.customer_segment(db, "+447700900123") == "new"
    with pytest.raises(ValueError, match="unknown segment"):
        customer_store.upsert_customer(db, "07700900123", segment="gold")
    with pytest.raises(ValueError, match="not a phone number"):
        customer_store.upsert_customer(db, "call me")
    assert customer_store.SEGMENTS == ("new", "occasional", "regular", "vip")
