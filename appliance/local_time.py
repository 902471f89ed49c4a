"""The office's time zone: UTC is stored, local time is what a person reads ([box] timezone)."""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def office_zone(name: str = "") -> tzinfo:
    """The zone called name, or the system's own when name is empty."""
    if name:
        return zone(name)
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def zone_name(tz: tzinfo) -> str:
    """How a person recognises the zone: its IANA key, else its abbreviation now."""
    return getattr(tz, "key", None) or datetime.now(tz).strftime("%Z") or "local time"


def local_time(value: str | None, tz: tzinfo, seconds: bool = True) -> str:
    """An ISO UTC time from the store as local wall-clock time ("" for none)."""
    if not value:
        return ""
    return from_iso(value).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called name; ValueError if this system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f'unknown time zone {name!r}: expected an IANA name such as "Europe/Paris"') from None


def from_iso(text: str) -> datetime:
    """Parse a stored timestamp back into an aware UTC datetime."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
