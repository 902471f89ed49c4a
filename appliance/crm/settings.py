"""CRM settings: moods, outcomes, segment rules and alert thresholds, as provisioned in [crm]."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlite_utils import Database

from appliance.store.directory import get_setting

MOODS = ("calm", "talkative", "in a hurry", "nervous", "angry")
UPSET = ("nervous", "angry")
RULE_SEGMENTS = ("vip", "regular", "occasional")  # the segments a rule may name, highest first
SETTINGS_KEY = "crm"

log = logging.getLogger("switchboard.crm")


class CrmError(ValueError):
    """A CRM request that cannot be done, with a message fit to show the user."""


@dataclass(frozen=True)
class SegmentRule:
    """A customer with at least `calls` calls in the last `days` days is in `segment`."""

    segment: str
    calls: int
    days: int


@dataclass(frozen=True)
class CrmSettings:
    """The CRM's tunables; the defaults suit a small office."""

    region: str = "US"
    outcomes: tuple[str, ...] = ("resolved", "follow-up needed", "sale", "complaint", "information given")
    # Outcomes that settle a customer's matter: the repeat-call alert looks for calls without one.
    settled: tuple[str, ...] = ("resolved", "sale", "information given")
    rules: tuple[SegmentRule, ...] = (SegmentRule("regular", 3, 90), SegmentRule("occasional", 2, 365))
    new_days: int = 30
    repeat_calls: int = 3
    repeat_days: int = 7
    recent_calls: int = 5
    calm_share: float = 0.6

    def to_dict(self) -> dict:
        """A JSON-serialisable form, as stored in the settings table."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CrmSettings:
        """The settings from `to_dict`'s output; missing keys take their defaults."""
        values: dict[str, Any] = dict(data)
        if "outcomes" in values:
            values["outcomes"] = tuple(values["outcomes"])
        if "settled" in values:
            values["settled"] = tuple(values["settled"])
        if "rules" in values:
            values["rules"] = tuple(SegmentRule(**rule) for rule in values["rules"])
        return cls(**values)


def load_crm_settings(db: Database) -> CrmSettings:
    """The provisioned CRM settings (settings key "crm"), or the defaults when there are none."""
    data = get_setting(db, SETTINGS_KEY)
    if not data:
        return CrmSettings()
    try:
        return CrmSettings.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:  # written by provisioning, so only a hand edit gets here
        log.warning("stored CRM settings are unreadable (%s); using the defaults", exc)
        return CrmSettings()
