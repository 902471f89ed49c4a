"""Segments from call counts: pure functions, no storage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from appliance.crm.settings import CrmSettings


def computed_segment(created_at: datetime, call_times: Iterable[datetime], settings: CrmSettings,
                     now: datetime) -> str:
    """The first rule whose call count within its days is met; else "new" while young, then "occasional"."""
    times = list(call_times)
    for rule in settings.rules:
        since = now - timedelta(days=rule.days)
        if sum(1 for t in times if since <= t <= now) >= rule.calls:
            return rule.segment
    return "new" if now - created_at < timedelta(days=settings.new_days) else "occasional"


def effective_segment(override: str | None, computed: str) -> str:
    """A manual override wins over the computed segment."""
    return override or computed


def lookback_days(settings: CrmSettings) -> int:
    """How far back calls matter to any rule."""
    return max((rule.days for rule in settings.rules), default=0)
