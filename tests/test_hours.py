"""Business hours: parsing days and holidays, is_open across time zones and DST, and the [[hours]] table."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from appliance.calls.hours import (
    DAY_NAMES,
    END_OF_DAY,
    BusinessHours,
    format_day,
    parse_day,
    parse_holiday,
)
from appliance.config import ConfigError, load_provisioning

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
ALL_DAY = parse_day("00:00-24:00")


def office(**changes) -> BusinessHours:
    """Mon-Fri 09:00-12:30 and 14:00-18:00 in Paris, Friday until 17:00, weekend closed."""
    weekday = parse_day("09:00-12:30, 14:00-18:00")
    week = {0: weekday, 1: weekday, 2: weekday, 3: weekday, 4: parse_day("09:00-17:00")}
    return BusinessHours(**{"name": "office", "timezone": "Europe/Paris", "week": week, **changes})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parse_day / format_day ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-17:00", ((time(9), time(17)),)),
        ("09:00-12:30, 14:00-18:00", ((time(9), time(12, 30)), (time(14), time(18)))),
        ("14:00-18:00,09:00-12:30", ((time(9), time(12, 30)), (time(14), time(18)))),  # sorted
        (" 9:00 - 12:00 ", ((time(9), time(12)),)),
        ("09:00-12:00, 12:00-13:00", ((time(9), time(12)), (time(12), time(13)))),  # touching is fine
        ("00:00-24:00", ((time(0), END_OF_DAY),)),
        ("20:00-24:00", ((time(20), END_OF_DAY),)),
        ("closed", ()),
        (" Closed ", ()),
        ("", ()),
    ],
)
def test_parse_day(text, expected):
    assert parse_day(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("09:00-12:00, 11:00-13:00", "intervals 09:00-12:00 and 11:00-13:00 overlap"),
        ("09:00-18:00, 10:00-11:00", "overlap"),
        ("22:00-02:00", "intervals crossing midnight are not supported"),
        ("22:00-02:00", 'split it into "22:00-24:00" today and "00:00-02:00" the next day'),
        ("09:00-09:00", "empty interval"),
        ("09:00", "expected START-END"),
        ("9-17", 'bad time "9"'),
        ("09:00-17:60", 'bad time "17:60"'),
        ("25:00-26:00", 'bad time "25:00"'),
        ("24:00-24:00", "24:00 is only allowed as the end"),
        ("09:00-24:30", "24:00 is only allowed as the end"),
        ("open", "expected START-END"),
        ("09:00-12:00,", "expected START-END"),
        (9, "expected intervals"),
    ],
)
def test_parse_day_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_day(text)


def test_format_day_reads_back():
    for text in ("09:00-12:30, 14:00-18:00", "00:00-24:00", "closed"):
        assert format_day(parse_day(text)) == text
        assert parse_day(format_day(parse_day(text))) == parse_day(text)


# --- holidays ---


@pytest.mark.parametrize("text", ["2026-12-25", "01-01", "02-29", "2028-02-29"])
def test_parse_holiday_accepts(text):
    assert parse_holiday(text) == text


@pytest.mark.parametrize("text", ["2026-02-29", "13-01", "00-10", "12-32", "2026/12/25", "1-1", "Christmas", 20261225])
def test_parse_holiday_rejects(text):
    with pytest.raises(ValueError, match="date"):
        parse_holiday(text)


# --- is_open ---


def test_weekday_intervals_in_winter():
    hours = office()  # Paris is UTC+1 in January; 2026-01-05 is a Monday
    assert not hours.is_open(utc(2026, 1, 5, 7, 59))
    assert hours.is_open(utc(2026, 1, 5, 8, 0))  # 09:00 Paris
    assert hours.is_open(utc(2026, 1, 5, 11, 29, 59))
    assert not hours.is_open(utc(2026, 1, 5, 11, 30))  # 12:30: the end is exclusive
    assert not hours.is_open(utc(2026, 1, 5, 12, 59))
    assert hours.is_open(utc(2026, 1, 5, 13, 0))
    assert not hours.is_open(utc(2026, 1, 5, 17, 0))
    # Friday closes at 17:00
    assert hours.is_open(utc(2026, 1, 9, 15, 59))
    assert not hours.is_open(utc(2026, 1, 9, 16, 0))


def test_weekday_intervals_in_summer():
    hours = office()  # Paris is UTC+2 in July; 2026-07-06 is a Monday
    assert not hours.is_open(utc(2026, 7, 6, 6, 59))
    assert hours.is_open(utc(2026, 7, 6, 7, 0))
    assert not hours.is_open(utc(2026, 7, 6, 16, 0))


def test_missing_and_closed_days_are_closed():
    hours = office()
    for day in (10, 11):  # Saturday and Sunday 2026-01-10/11
        assert not any(hours.is_open(utc(2026, 1, day, h)) for h in range(24))
    assert not BusinessHours("never", "UTC", {}).is_open(utc(2026, 1, 5, 12))


def test_the_local_date_decides_the_weekday():
    # 23:30 UTC on Sunday is already 00:30 Monday in Paris.
    hours = BusinessHours("night", "Europe/Paris", {0: parse_day("00:00-01:00")})
    assert hours.is_open(utc(2026, 1, 4, 23, 30))
    assert not hours.is_open(utc(2026, 1, 5, 23, 30))


def test_naive_datetimes_are_utc():
    hours = office()
    assert hours.is_open(datetime(2026, 1, 5, 8, 0))
    assert not hours.is_open(datetime(2026, 1, 5, 7, 59))
    assert hours.is_open(datetime(2026, 1, 5, 8, 0)) == hours.is_open(utc(2026, 1, 5, 8, 0))


def test_aware_datetimes_in_any_zone():
    hours = office()
    new_york = ZoneInfo("America/New_York")
    assert hours.is_open(datetime(2026, 1, 5, 3, 0, tzinfo=new_york))  # 09:00 Paris
    assert not hours.is_open(datetime(2026, 1, 5, 2, 59, tzinfo=new_york))
    assert hours.is_open(datetime(2026, 1, 5, 9, 0, tzinfo=PARIS))
    assert hours.is_open(datetime(2026, 1, 5, 17, 0, tzinfo=timezone(timedelta(hours=9))))  # 09:00 Paris


def test_spring_forward_day_in_paris():
    # 2026-03-29 (Sunday): at 02:00 CET the clocks jump to 03:00 CEST (01:00 UTC).
    hours = BusinessHours("sunday", "Europe/Paris", {6: parse_day("03:00-05:00")})
    assert not hours.is_open(utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert hours.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST: a fixed UTC+1 would say 02:00
    assert hours.is_open(utc(2026, 3, 29, 2, 59))  # 04:59 CEST
    assert not hours.is_open(utc(2026, 3, 29, 3, 0))  # 05:00 CEST


def test_fall_back_day_in_paris():
    # 2026-10-25 (Sunday): at 03:00 CEST the clocks go back to 02:00 CET, so 02:00-03:00 happens twice.
    hours = BusinessHours("sunday", "Europe/Paris", {6: parse_day("02:00-03:00")})
    assert not hours.is_open(utc(2026, 10, 24, 23, 59))  # 01:59 CEST
    assert hours.is_open(utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert hours.is_open(utc(2026, 10, 25, 1, 30))  # 02:30 CET, the second time round
    assert not hours.is_open(utc(2026, 10, 25, 2, 0))  # 03:00 CET


def test_all_day_includes_the_last_instant():
    hours = BusinessHours("always", "UTC", {0: ALL_DAY})
    assert hours.is_open(utc(2026, 1, 5, 0, 0))
    assert hours.is_open(datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=UTC))
    assert not hours.is_open(utc(2026, 1, 6, 0, 0))


def test_holidays_for_one_date_and_every_year():
    week = {day: ALL_DAY for day in range(7)}
    hours = BusinessHours("office", "Europe/Paris", week, frozenset({"2026-12-25", "01-01"}))
    assert not hours.is_open(utc(2026, 12, 25, 12))
    assert hours.is_open(utc(2025, 12, 25, 12))  # a dated holiday is that year only
    assert hours.is_open(utc(2026, 12, 26, 12))
    for year in (2026, 2027, 2030):
        assert not hours.is_open(utc(year, 1, 1, 12))  # MM-DD is every year
        assert hours.is_open(utc(year, 1, 2, 12))
    # The holiday is the office's local date: 23:30 UTC on the 24th is already the 25th in Paris.
    assert not hours.is_open(utc(2026, 12, 24, 23, 30))
    assert hours.is_open(utc(2026, 12, 24, 22, 30))
    assert hours.is_open(utc(2026, 12, 25, 23, 30))  # the 26th in Paris


# --- construction and round trip ---


def test_round_trip_through_json():
    hours = office(holidays=frozenset({"2026-12-25", "01-01"}))
    data = json.loads(json.dumps(hours.to_dict()))
    assert data["week"]["mon"] == "09:00-12:30, 14:00-18:00"
    assert data["week"]["sat"] == "closed"
    assert list(data["week"]) == list(DAY_NAMES)
    assert data["holidays"] == ["01-01", "2026-12-25"]
    assert BusinessHours.from_dict(data) == hours
    always = BusinessHours("always", "UTC", {d: ALL_DAY for d in range(7)})
    assert BusinessHours.from_dict(always.to_dict()) == always
    assert BusinessHours.from_dict({"name": "x", "timezone": "UTC"}) == BusinessHours("x", "UTC", {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"name": "x", "timezone": "UTC", "week": {"monday": "closed"}}, "unknown weekday"),
        ({"name": "x", "timezone": "UTC", "week": {"mon": "18:00-09:00"}}, "crossing midnight"),
        ({"name": "x", "timezone": "UTC", "holidays": ["someday"]}, "expected a date"),
        ({"name": "x", "timezone": "UTC", "colour": "red"}, "unknown business hours field"),
    ],
)
def test_from_dict_rejects(data, message):
    with pytest.raises(ValueError, match=message):
        BusinessHours.from_dict(data)


def test_constructor_validates():
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessHours("x", "Europe/Nowhere", {})
    with pytest.raises(ValueError, match="weekday must be 0"):
        BusinessHours("x", "UTC", {7: ALL_DAY})
    with pytest.raises(ValueError, match="not a real date"):
        BusinessHours("x", "UTC", {}, frozenset({"02-30"}))


# --- the [[hours]] table ---

HOURS = '[[hours]]\nname = "office"\ntimezone = "Europe/Paris"\n'


def _load(tmp_path, body: str):
    path = tmp_path / "provision.toml"
    path.write_text(body)
    return load_provisioning(path)


def test_hours_table_parses(tmp_path):
    body = HOURS + 'mon = "09:00-12:30, 14:00-18:00"\nfri = "09:00-17:00"\nsat = "closed"\n'
    body += 'holidays = ["2026-12-25", "01-01"]\n'
    body += '\n[[hours]]\nname = "always"\ntimezone = "UTC"\n' + "".join(f'{d} = "00:00-24:00"\n' for d in DAY_NAMES)
    office_hours, always = _load(tmp_path, body).hours
    assert office_hours == BusinessHours(
        "office", "Europe/Paris",
        {0: parse_day("09:00-12:30, 14:00-18:00"), 4: parse_day("09:00-17:00")},
        frozenset({"2026-12-25", "01-01"}),
    )
    assert always.week == {d: ALL_DAY for d in range(7)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('hours = "9-5"\n', "hours: expected an array of tables"),
        ('[[hours]]\ntimezone = "UTC"\n', "hours[0].name: missing required key"),
        ('[[hours]]\nname = "office"\n', "hours[0].timezone: missing required key"),
        ('[[hours]]\nname = "the office"\ntimezone = "UTC"\n', "hours[0].name: expected 1-32 letters"),
        (HOURS + HOURS, 'hours[1].name: duplicate hours "office" (also hours[0])'),
        (HOURS.replace("Europe/Paris", "Europe/Atlantis"), "hours[0].timezone: unknown time zone 'Europe/Atlantis'"),
        (HOURS.replace('"Europe/Paris"', "1"), "hours[0].timezone: expected a non-empty string"),
        (HOURS + 'monday = "09:00-17:00"\n', "hours[0].monday: unknown key (expected one of name, timezone, mon"),
        (HOURS + 'tue = "09:00-17"\n', 'hours[0].tue: bad time "17"'),
        (HOURS + 'wed = "18:00-09:00"\n', "hours[0].wed: interval \"18:00-09:00\" ends before it starts"),
        (HOURS + 'thu = "09:00-13:00, 12:00-18:00"\n', "hours[0].thu: intervals 09:00-13:00 and 12:00-18:00 overlap"),
        (HOURS + "sun = 9\n", "hours[0].sun: expected intervals"),
        (HOURS + 'holidays = "01-01"\n', "hours[0].holidays: expected a list of dates"),
        (HOURS + 'holidays = ["01-01", "2026-02-30"]\n', 'hours[0].holidays[1]: "2026-02-30" is not a real date'),
        (HOURS + 'holidays = ["01-01", "Xmas"]\n', 'hours[0].holidays[1]: expected a date "YYYY-MM-DD"'),
    ],
)
def test_bad_hours_table(tmp_path, body, message):
    path = tmp_path / "provision.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_provisioning(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
