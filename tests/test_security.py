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
    assert [bans.record_failure("198.51.100.9") for _ in range(3)] == [False, False, True]
    assert bans.is_banned("198.51.100.9")
    assert not bans.is_banned("198.51.100.10")
    assert bans.record_failure("198.51.100.9") is False  # already banned: no second start


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


# --- issue 13, finding 6 and 7: the rules that made the ban easy to dodge, or turn on the office ---

def test_a_good_login_on_another_account_does_not_wipe_the_count():
    bans, _ = make()
    assert bans.record_failure("198.51.100.9", "201") is False
    assert bans.record_failure("198.51.100.9", "201") is False
    bans.record_success("198.51.100.9", "202")  # the attacker's own phone, say
    assert bans.record_failure("198.51.100.9", "201") is True
    bans2, _ = make()
    bans2.record_failure("198.51.100.8", "201")
    bans2.record_failure("198.51.100.8", "201")
    bans2.record_success("198.51.100.8", "201")  # the right password for that account does clear it
    assert bans2.record_failure("198.51.100.8", "201") is False


def test_slow_guessing_within_the_hour_is_banned():
    bans, clock = make_hourly()
    banned = False
    for _minute in range(10):  # 4 guesses a minute
        for _ in range(4):
            banned = bans.record_failure("198.51.100.9", "201") or banned
            clock.now += 15
    assert banned and bans.is_banned("198.51.100.9")


def test_many_addresses_on_one_account_are_banned_at_their_first_failure():
    bans, _ = make_hourly(account_failures=20)
    started = [bans.record_failure(f"198.51.{100 + i // 250}.{i % 250}", "201") for i in range(100)]
    assert not any(started[:20])  # 20 addresses with one guess each: the account is now under attack
    assert all(started[20:]), started
    assert bans.attacked_accounts() == ["201"]
    assert bans.record_failure("203.0.113.9", "202") is False  # other accounts are judged as before


def test_the_same_wrong_answer_repeated_counts_once():
    bans, _ = make()
    for _ in range(10):  # a retransmitted REGISTER with the same credentials
        assert bans.record_failure("198.51.100.9", "201", fingerprint="abc") is False
    assert not bans.is_banned("198.51.100.9")


def test_exempt_sources_are_never_banned_nor_blocked():
    trunk = {"192.0.2.10"}
    bans, _ = make(exempt=lambda source: source in trunk)
    assert not any(bans.record_failure("192.0.2.10", "x") for _ in range(10))
    bans.ban("192.0.2.10", 600)  # even a stored or hand-made ban never blocks a trunk
    assert not bans.is_banned("192.0.2.10")


def test_bans_are_reported_for_storage_and_restored():
    changes = []
    bans, clock = make(on_change=lambda source, until, reason: changes.append((source, until, reason)))
    for _ in range(3):
        bans.record_failure("198.51.100.9", "201")
    assert changes == [("198.51.100.9", clock.now + 600.0, "3 failed authentications")]
    again, _ = make()
    again.restore("198.51.100.9", clock.now + 300.0, "3 failed authentications")
    assert again.is_banned("198.51.100.9")
    again.restore("198.51.100.7", clock.now - 1, "old")
    assert not again.is_banned("198.51.100.7")
    bans.unban("198.51.100.9")
    assert changes[-1] == ("198.51.100.9", None, "lifted")


def make_hourly(**kwargs) -> tuple[BanList, Clock]:
    clock = Clock()
    return BanList(max_failures=10, window=3600.0, ban_seconds=3600.0, clock=clock, **kwargs), clock
