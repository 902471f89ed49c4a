"""The one outbound policy: every way of writing an international, premium or satellite number is caught."""
from __future__ import annotations

import pytest

from appliance.calls.outbound_policy import DialRights, NumberClassifier, OutboundPolicy, PolicySettings
from appliance.calls.router import DialPlan

NO_INTERNATIONAL = DialRights(allow_external=True, allow_international=False)
INTERNATIONAL = DialRights(allow_external=True, allow_international=True)

# The independent test's variants (issue 13, finding 4), for an office in the US (011) and in France (00).
SLIPPED_PAST = ["01144207946000", "*670044207946000", "*31+44207946000", "*0044207946000",
                "**0044207946000", "*67 011 44 20 7946 000", "#31#0044207946000"]
ALWAYS_REFUSED = ["0044207946000", "+44207946000", "+44 20-7946-000", "00 44 (20) 7946 000"]


def policy(region: str = "US", **settings: object) -> OutboundPolicy:
    return OutboundPolicy(lambda: PolicySettings(**settings), lambda: region)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", SLIPPED_PAST + ALWAYS_REFUSED)
def test_international_variants_are_refused_without_the_right(number: str) -> None:
    decision = policy("US").check(number, NO_INTERNATIONAL)
    assert not decision.allowed and decision.status == 403, decision


@pytest.mark.parametrize("number", ["*670044207946000", "*31+44207946000", "**0044207946000", "0044207946000"])
def test_france_uses_00_and_star_codes_are_stripped_first(number: str) -> None:
    assert not policy("FR").check(number, NO_INTERNATIONAL).allowed


def test_011_is_international_only_where_the_region_dials_it() -> None:
    assert NumberClassifier("US").classify("01144207946000")[0] == "international"
    assert NumberClassifier("GB").classify("01144207946000")[0] == "national"  # 0114: Sheffield


@pytest.mark.parametrize("region,number", [("US", "2125551234"), ("US", "*67 212 555 1234"),
                                           ("US", "+1 212 555 1234"), ("GB", "02079460000"),
                                           ("GB", "+442079460000"), ("FR", "0145678901")])
def test_national_numbers_go_out(region: str, number: str) -> None:
    decision = policy(region).check(number, NO_INTERNATIONAL)
    assert decision.allowed and decision.kind == "national", decision


@pytest.mark.parametrize("region,number", [("US", "0088213234567"), ("US", "+88213234567"),
                                           ("GB", "00870773111111"), ("US", "*67+88213234567")])
def test_satellite_and_global_networks_are_refused_even_with_international_rights(region: str, number: str) -> None:
    decision = policy(region).check(number, INTERNATIONAL)
    assert not decision.allowed and decision.kind == "satellite", decision
    assert policy(region).check(number, DialRights(allow_international=True, allow_satellite=True)).allowed


@pytest.mark.parametrize("region,number", [("US", "19005551234"), ("GB", "09065123456"), ("FR", "0899123456"),
                                           ("US", "011449065123456")])
def test_premium_rate_is_refused_by_default(region: str, number: str) -> None:
    decision = policy(region).check(number, INTERNATIONAL)
    assert not decision.allowed and decision.kind == "premium", decision


@pytest.mark.parametrize("number", ["12#34", "20a5551234", "212;555", "2+125551234", "*", "#", "1234*", "%32"])
def test_characters_a_number_does_not_have_are_refused(number: str) -> None:
    decision = policy("US").check(number, INTERNATIONAL)
    assert not decision.allowed and decision.status == 484, decision


@pytest.mark.parametrize("region,number", [("US", "911"), ("GB", "999"), ("FR", "112"), ("GB", "112")])
def test_emergency_numbers_always_go_out(region: str, number: str) -> None:
    assert policy(region).check(number, DialRights(allow_external=False)).allowed


def test_callback_policy_defaults_to_national_and_can_be_widened_or_turned_off() -> None:
    assert policy("US").check_callback("2125551234").allowed
    assert not policy("US").check_callback("0044207946000").allowed
    assert not policy("US").check_callback("0088213234567").allowed
    assert policy("US", callbacks="international").check_callback("0044207946000").allowed
    assert not policy("US", callbacks="international").check_callback("0088213234567").allowed
    assert not policy("US", callbacks="off").check_callback("2125551234").allowed


def test_a_callback_for_an_agent_has_the_agents_rights(caplog: pytest.LogCaptureFixture) -> None:
    barred = {"number": "201", "allow_international": False}
    allowed = {"number": "202", "allow_international": True}
    with caplog.at_level("INFO", "switchboard.calls.policy"):
        assert not policy("US").check_callback("0044207946000", barred).allowed
    assert "refused" in caplog.text and "extension 201" in caplog.text
    assert policy("US").check_callback("0044207946000", allowed).allowed
    assert not policy("US").check_callback("2125551234", {"number": "203", "allow_external": False}).allowed


def test_the_dial_plan_applies_the_policy_after_the_trunk_prefix() -> None:
    plan = DialPlan(lambda n: None, lambda: [{"name": "itsp", "outbound_prefix": "9"}], policy("US"))
    caller = {"number": "201", "allow_international": False}
    for dialled in ("9" + n for n in SLIPPED_PAST[:5] + ALWAYS_REFUSED[:2]):
        route = plan.from_extension(caller, dialled)
        assert route.kind == "reject" and route.status == 403, (dialled, route)
    assert plan.from_extension(caller, "92125551234").kind == "trunk"
