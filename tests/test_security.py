"""Tests for appliance.sip.security.BanList."""
from __future__ import annotations

import logging

import pytest

from appliance.sip.security import BanList


class Clock:
    """Settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs) -> tuple[BanList, Clock]:
    clock = Clock()
    return BanList(max_failures=3, window=60.0, ban_seconds=600.0, clock=clock, **kwargs), clock


def test_ban_starts_exactly_on_the_threshold_failure():
    bans, _ = make()
    assert [bans.record_failure("10.0.0.9") for _ in range(3)] == [False, False, True]
    assert bans.is_banned("10.0.0.9")
    assert not bans.is_banned("10.0.0.10")
    assert bans.record_failure("10.0.0.9") is False  # already banned: no second start


def test_ban_is_logged_once_with_counts(caplog):
    bans, _ = make(log=logging.getLogger("test.bans"))
    with caplog.at_level(logging.WARNING, logger="test.bans"):
        for _ in range(4):
            bans.record_failure("192.0.2.7")
    messages = [r.getMessage() for r in caplog.records if r.name == "test.bans"]
    assert messages == ["banned 192.0.2.7 for 600 s after 3 failed authentications"]
    assert caplog.records[0].levelno == logging.WARNING


def test_failures_outside_the_window_do_not_count():
    bans, clock = make()
    bans.record_failure("a")
    bans.record_failure("a")
    clock.now += 61
    assert bans.record_failure("a") is False
    assert bans.record_failure("a") is False
    assert bans.record_failure("a") is True


def test_success_clears_the_count():
    bans, _ = make()
    bans.record_failure("a")
    bans.record_failure("a")
    bans.record_success("a")
    assert bans.record_failure("a") is False
    assert bans.record_failure("a") is False
    assert bans.record_failure("a") is True


def test_ban_expires_and_counting_starts_again():
    bans, clock = make()
    for _ in range(3):
        bans.record_failure("a")
    clock.now += 599.5
    assert bans.is_banned("a")
    clock.now += 1
    assert not bans.is_banned("a")
    assert bans.bans() == []
    assert bans.record_failure("a") is False


def test_bans_lists_seconds_left_and_drops_expired():
    bans, clock = make()
    for _ in range(3):
        bans.record_failure("a")
    clock.now += 100
    for _ in range(3):
        bans.record_failure("b")
    clock.now += 50
    assert bans.bans() == [("a", pytest.approx(450.0)), ("b", pytest.approx(550.0))]
    clock.now += 460
    assert bans.bans() == [("b", pytest.approx(90.0))]


def test_unban_lifts_a_ban():
    bans, _ = make()
    for _ in range(3):
        bans.record_failure("a")
    assert bans.unban("a") is True
    assert not bans.is_banned("a")
    assert bans.unban("a") is False


def test_never_ban_sources_are_exempt():
    bans, _ = make(never_ban=["127.0.0.1"])
    assert not any(bans.record_failure("127.0.0.1") for _ in range(10))
    assert not bans.is_banned("127.0.0.1")


def test_tracked_sources_are_bounded_dropping_the_oldest():
    bans, _ = make(max_sources=100)
    bans.record_failure("old")
    bans.record_failure("old")
    for i in range(150):
        bans.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(bans._failures) == 100
    # "old" was dropped, so its two earlier failures are forgotten.
    assert bans.record_failure("old") is False


def test_bans_are_bounded_too():
    bans, _ = make(max_sources=10)
    for i in range(25):
        for _ in range(3):
            bans.record_failure(f"h{i}")
    assert len(bans.bans()) == 10
    assert bans.is_banned("h24") and not bans.is_banned("h0")


def test_is_banned_does_not_touch_the_clock_for_unknown_sources():
    calls = []
    bans = BanList(clock=lambda: calls.append(1) or 0.0)
    assert not bans.is_banned("203.0.113.1")
    assert calls == []


def test_rejects_nonsense_threshold():
    with pytest.raises(ValueError):
        BanList(max_failures=0)
