"""The [crm] table of the provisioning file: parsing, errors naming the key, and storing it."""
from __future__ import annotations

import pytest

from appliance.config import ConfigError, load_provisioning
from appliance.crm.settings import CrmSettings, SegmentRule, load_crm_settings
from appliance.provisioning import apply_provisioning
from office_text import ANN_AND_BOB

CRM = """
[crm]
region = "fr"
outcomes = ["resolved", "sale", "quote sent"]
new_days = 14
repeat_calls = 4
repeat_days = 10
recent_calls = 6
calm_share = 0.5

[crm.segments]
occasional = { calls = 2, days = 365 }
vip = { calls = 12, days = 90 }
regular = { calls = 4, days = 60 }
"""


def _write(tmp_path, body: str):
    path = tmp_path / "provision.toml"
    path.write_text(ANN_AND_BOB + body)
    return path


def test_crm_table_parses_with_rules_highest_first(tmp_path):
    crm = load_provisioning(_write(tmp_path, CRM)).crm
    assert crm == CrmSettings(
        region="FR",
        outcomes=("resolved", "sale", "quote sent"),
        rules=(SegmentRule("vip", 12, 90), SegmentRule("regular", 4, 60), SegmentRule("occasional", 2, 365)),
        new_days=14, repeat_calls=4, repeat_days=10, recent_calls=6, calm_share=0.5,
        settled=("resolved", "sale"),  # the default settled outcomes this office has
    )


def test_defaults_and_absence(tmp_path):
    assert load_provisioning(_write(tmp_path, "")).crm is None
    assert load_provisioning(_write(tmp_path, '[crm]\nregion = "GB"\n')).crm == CrmSettings(region="GB")
    no_rules = load_provisioning(_write(tmp_path, "[crm]\n[crm.segments]\n")).crm
    assert no_rules.rules == ()


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ('[crm]\nregion = "XX"', "crm.region", 'expected a two-letter country code such as "US"'),
        ("[crm]\nregion = 33", "crm.region", "expected a two-letter country code"),
        ('[crm]\noutcomes = ["sale"]\nsettled = ["resolved"]', "crm.settled", "not in outcomes: resolved"),
        ("[crm]\noutcomes = []", "crm.outcomes", "expected a non-empty list"),
        ('[crm]\noutcomes = "resolved"', "crm.outcomes", "expected a non-empty list"),
        ('[crm]\noutcomes = ["resolved", "Sale", "sale"]', "crm.outcomes[2]", 'duplicate outcome "sale"'),
        ('[crm]\noutcomes = ["resolved", "' + "x" * 41 + '"]', "crm.outcomes[1]", "1-40 characters"),
        ('[crm]\noutcomes = ["resolved", "  "]', "crm.outcomes[1]", "only spaces"),
        ("[crm]\nnew_days = -1", "crm.new_days", "expected an integer 0-3650"),
        ("[crm]\nrepeat_calls = 1", "crm.repeat_calls", "expected an integer 2-100"),
        ("[crm]\nrepeat_days = 0", "crm.repeat_days", "expected an integer 1-365"),
        ("[crm]\nrecent_calls = true", "crm.recent_calls", "expected an integer 2-100"),
        ("[crm]\ncalm_share = 0", "crm.calm_share", "greater than 0 and at most 1"),
        ("[crm]\ncalm_share = 1.5", "crm.calm_share", "greater than 0 and at most 1"),
        ('[crm]\ncolour = "blue"', "crm.colour", "unknown key (expected one of region, outcomes"),
        ("[crm.segments]\ngold = { calls = 1, days = 1 }", "crm.segments.gold",
         "unknown key (expected one of vip, regular, occasional)"),
        ("[crm.segments]\nnew = { calls = 1, days = 1 }", "crm.segments.new", "unknown key"),
        ("[crm.segments]\nregular = { calls = 3 }", "crm.segments.regular.days", "missing required key"),
        ("[crm.segments]\nregular = { calls = 0, days = 30 }", "crm.segments.regular.calls",
         "expected an integer 1-10000"),
        ("[crm.segments]\nregular = 3", "crm.segments.regular", "expected a table"),
    ],
)
def test_crm_errors_name_the_key(tmp_path, body, key, problem):
    with pytest.raises(ConfigError) as info:
        load_provisioning(_write(tmp_path, body + "\n"))
    assert info.value.key == key
    assert problem in info.value.problem


def test_crm_must_be_a_table(tmp_path):
    path = tmp_path / "provision.toml"
    path.write_text("crm = 3\n" + ANN_AND_BOB)
    with pytest.raises(ConfigError, match=r"provision.toml: crm: expected a table, got 3$"):
        load_provisioning(path)


def test_provisioning_stores_and_resets_the_settings(tmp_path, db):
    with_crm = load_provisioning(_write(tmp_path, CRM))
    apply_provisioning(db, with_crm, "switchboard")
    assert load_crm_settings(db) == with_crm.crm
    apply_provisioning(db, with_crm, "switchboard")  # idempotent
    assert load_crm_settings(db) == with_crm.crm
    apply_provisioning(db, load_provisioning(_write(tmp_path, "")), "switchboard")
    assert load_crm_settings(db) == CrmSettings()
    assert db.execute("SELECT count(*) FROM settings WHERE key = 'crm'").fetchone()[0] == 0
