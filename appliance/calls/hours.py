"""Business hours: weekly open intervals and holidays in the office's time zone (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from itertools import pairwise
from typing import Any

from appliance.local_time import zone

__all__ = [
    "DAY_NAMES", "END_OF_DAY", "BusinessHours",
    "parse_day", "format_day", "parse_holiday", "zone",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
END_OF_DAY = time.max
"""How "24:00" is held, since no datetime.time is 24:00; an interval ending there includes it."""

_UTC = timezone.utc
_CLOCK = re.compile(r"([01]?[0-9]|2[0-4]):([0-5][0-9])")
_HOLIDAY = re.compile(r"(?:([0-9]{4})-)?([0-9]{2})-([0-9]{2})")

Interval = tuple[time, time]


def _clock(text: str, is_end: bool) -> time:
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f'bad time "{text.strip()}": expected HH:MM, e.g. "09:00"')
    hour, minute = int(match[1]), int(match[2])
    if hour == 24:
        if minute or not is_end:
            raise ValueError(f'bad time "{text.strip()}": 24:00 is only allowed as the end of an interval')
        return END_OF_DAY
    return time(hour, minute)


def _show(t: time) -> str:
    return "24:00" if t == END_OF_DAY else t.strftime("%H:%M")


def parse_day(text: str) -> tuple[Interval, ...]:
    """Open intervals from "09:00-12:30, 14:00-18:00"; "closed" or "" is a closed day."""
    if not isinstance(text, str):
        raise ValueError(f'expected intervals like "09:00-12:30, 14:00-18:00" or "closed", got {text!r}')
    if text.strip().lower() in ("", "closed"):
        return ()
    intervals: list[Interval] = []
    for part in text.split(","):
        start_text, dash, end_text = part.partition("-")
        if not dash:
            raise ValueError(f'bad interval "{part.strip()}": expected START-END, e.g. "09:00-17:00"')
        start, end = _clock(start_text, False), _clock(end_text, True)
        if end == start:
            raise ValueError(f'empty interval "{part.strip()}": the end must be after the start')
        if end < start:
            raise ValueError(
                f'interval "{part.strip()}" ends before it starts: intervals crossing midnight are not '
                f'supported, split it into "{_show(start)}-24:00" today and "00:00-{_show(end)}" the next day'
            )
        intervals.append((start, end))
    intervals.sort()
    for (s1, e1), (s2, e2) in pairwise(intervals):
        if s2 < e1:
            raise ValueError(f"intervals {_show(s1)}-{_show(e1)} and {_show(s2)}-{_show(e2)} overlap")
    return tuple(intervals)


def format_day(intervals: Iterable[Interval]) -> str:
    """The text form parse_day reads back; "closed" for no intervals."""
    return ", ".join(f"{_show(s)}-{_show(e)}" for s, e in intervals) or "closed"


def parse_holiday(text: str) -> str:
    """A holiday as given ("YYYY-MM-DD" one date, "MM-DD" every year), checked to be a real date."""
    match = _HOLIDAY.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f'expected a date "YYYY-MM-DD" or a yearly "MM-DD", got {text!r}')
    year = int(match[1]) if match[1] else 2000  # a leap year, so "02-29" is a valid yearly date
    try:
        date(year, int(match[2]), int(match[3]))
    except ValueError:
        raise ValueError(f'"{text}" is not a real date') from None
    return text


@dataclass(frozen=True)
class BusinessHours:
    """When the office is open: a weekly timetable plus closed days, in the office's own time zone."""

    name: str
    timezone: str
    week: Mapping[int, tuple[Interval, ...]]
    holidays: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        zone(self.timezone)
        for day in self.week:
            if day not in range(7):
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {day!r}")
        for holiday in self.holidays:
            parse_holiday(holiday)

    def is_open(self, when: datetime) -> bool:
        """Whether the office is open at `when` (aware in any zone, or naive UTC)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        local = when.astimezone(zone(self.timezone))
        day = local.date()
        if day.isoformat() in self.holidays or day.strftime("%m-%d") in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        intervals = self.week.get(local.weekday(), ())
        return any(start <= now and (now < end or end == END_OF_DAY) for start, end in intervals)

    def to_dict(self) -> dict:
        """JSON-serialisable form: every weekday by name as parse_day text, holidays sorted."""
        return {
            "name": self.name,
            "timezone": self.timezone,
            "week": {DAY_NAMES[i]: format_day(self.week.get(i, ())) for i in range(7)},
            "holidays": sorted(self.holidays),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BusinessHours:
        """The inverse of to_dict; a weekday left out is closed."""
        unknown = set(d) - {"name", "timezone", "week", "holidays"}
        if unknown:
            raise ValueError(f"unknown business hours field(s): {', '.join(sorted(unknown))}")
        days = d.get("week") or {}
        bad = set(days) - set(DAY_NAMES)
        if bad:
            raise ValueError(f"unknown weekday(s) {', '.join(sorted(bad))}: expected {', '.join(DAY_NAMES)}")
        week = {i: parse_day(days[n]) for i, n in enumerate(DAY_NAMES) if n in days}
        return cls(d["name"], d["timezone"], {i: v for i, v in week.items() if v},
                   frozenset(d.get("holidays") or ()))
