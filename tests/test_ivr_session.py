"""IvrSession logic: menus, digits, dial-by-extension, timeouts, retries, fallback and night mode."""
from __future__ import annotations

import heapq
import itertools
from datetime import datetime, time, timezone

import pytest

from appliance.calls.hours import BusinessHours
from appliance.calls.ivr import MAX_MENU_VISITS, IvrSession
from appliance.calls.ivr_config import Action, IvrMenu


class FakeHandle:
    """A scheduled callback that can be cancelled."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just enough of an event loop: virtual time moved by advance()."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay, callback, *args):  # type: ignore[no-untyped-def]
        handle = FakeHandle()
        heapq.heappush(self._queue, (self.now + delay, next(self._order), handle, callback, args))
        return handle

    def call_soon(self, callback, *args):  # type: ignore[no-untyped-def]
        return self.call_later(0, callback, *args)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _, handle, callback, args = heapq.heappop(self._queue)
            self.now = when
            if not handle.cancelled:
                callback(*args)
        self.now = end


class FakeHost:
    """Records what the IVR asks for; prompts end when the test says so."""

    def __init__(self) -> None:
        self.played: list[str] = []
        self.on_done = None
        self.transfers: list[Action] = []
        self.callbacks = 0
        self.callback_ok = True
        self.hung_up = False
        self.paths: list[list[dict]] = []

    def play(self, prompt, on_done):  # type: ignore[no-untyped-def]
        self.played.append(prompt)
        self.on_done = on_done

    def stop_playing(self) -> None:
        self.on_done = None

    def finish_prompt(self) -> None:
        done, self.on_done = self.on_done, None
        assert done is not None, "nothing is playing"
        done()

    def transfer(self, action: Action) -> None:
        self.transfers.append(action)

    def request_callback(self, queue: str) -> bool:
        self.callbacks += 1
        return self.callback_ok

    def hangup(self) -> None:
        self.hung_up = True

    def path_changed(self, path: list[dict]) -> None:
        self.paths.append(list(path))


MAIN = IvrMenu(
    name="main", options={"1": Action("queue", "sales"), "2": Action("extension", "202", "billing"),
                          "3": Action("ivr", "support"), "9": Action("repeat"), "0": Action("hangup"),
                          "*": Action("callback")},
    dial_by_extension=True, timeout=5.0, digit_timeout=3.0, max_retries=2,
    fallback=Action("extension", "201"),
)
SUPPORT = IvrMenu(name="support", greeting=None, menu="menu", options={"1": Action("extension", "203")})
EXTENSIONS = {"201", "202", "203", "2040"}


def session(menus=None, hours=None, now=None):  # type: ignore[no-untyped-def]
    loop, host = FakeLoop(), FakeHost()
    table = {m.name: m for m in (menus or [MAIN, SUPPORT])}
    s = IvrSession(loop, host, menus=table.get, hours=(hours or {}).get,  # type: ignore[arg-type]
                   extension_exists=EXTENSIONS.__contains__,
                   extension_prefix=lambda d: any(e.startswith(d) and len(e) > len(d) for e in EXTENSIONS),
                   now=now or (lambda: datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)))
    return s, loop, host


def test_greeting_then_menu_then_option_transfers_and_records_the_label() -> None:
    s, loop, host = session()
    s.start("main")
    assert host.played == ["greeting"]
    host.finish_prompt()
    assert host.played == ["greeting", "menu"]
    s.digit("1")  # "1" starts no extension: acted on at once
    assert host.transfers == [Action("queue", "sales")]
    assert {"menu": "main", "key": "1", "action": "queue:sales", "label": "queue sales"} in s.path


def test_key_during_the_greeting_barges_in() -> None:
    s, loop, host = session()
    s.start("main")
    s.digit("0")
    assert host.played == ["greeting", "goodbye"]
    host.finish_prompt()
    assert host.hung_up


def test_option_that_prefixes_an_extension_waits_for_the_inter_digit_timeout() -> None:
    s, loop, host = session()
    s.start("main")
    host.finish_prompt()
    s.digit("2")
    loop.advance(2.9)
    assert host.transfers == []
    loop.advance(0.2)
    assert host.transfers == [Action("extension", "202", "billing")]
    assert s.path[-1]["label"] == "billing"


def test_dial_by_extension_rings_the_typed_number() -> None:
    s, loop, host = session()
    s.start("main")
    host.finish_prompt()
    host.finish_prompt()
    for key in "203":
        s.digit(key)
    assert host.transfers == [Action("extension", "203", "dialled 203")]


def test_typed_extension_that_prefixes_a_longer_one_waits() -> None:
    s, loop, host = session(menus=[IvrMenu(name="main", dial_by_extension=True, digit_timeout=2.0)])
    s.start("main")
    for key in "204":
        s.digit(key)
    assert host.transfers == []
    s.digit("0")
    assert host.transfers == [Action("extension", "2040", "dialled 2040")]


def test_invalid_choice_replays_then_falls_back_after_max_retries() -> None:
    s, loop, host = session()
    s.start("main")
    host.finish_prompt()
    host.finish_prompt()
    s.digit("7")
    assert host.played[-1] == "invalid"
    host.finish_prompt()
    assert host.played[-1] == "menu"
    s.digit("7")
    host.finish_prompt()
    host.finish_prompt()
    assert host.transfers == []
    s.digit("7")  # third failure with max_retries=2: the fallback
    assert host.transfers == [Action("extension", "201")]
    assert [step["event"] for step in s.path if step.get("event") in ("invalid", "fallback")] == [
        "invalid", "invalid", "invalid", "fallback"]


def test_no_input_timeout_replays_then_falls_back() -> None:
    s, loop, host = session()
    s.start("main")
    host.finish_prompt()
    host.finish_prompt()
    loop.advance(4.9)
    assert host.played[-1] == "menu"
    loop.advance(0.2)
    assert host.played[-1] == "no_input"
    host.finish_prompt()
    host.finish_prompt()
    loop.advance(5.1)
    host.finish_prompt()
    host.finish_prompt()
    loop.advance(5.1)
    assert host.transfers == [Action("extension", "201")]


def test_timeout_runs_only_after_the_menu_prompt_ends() -> None:
    s, loop, host = session()
    s.start("main")
    loop.advance(60)  # the greeting is still playing: no timeout yet
    assert host.played == ["greeting"]


def test_submenu_and_repeat() -> None:
    s, loop, host = session()
    s.start("main")
    host.finish_prompt()
    s.digit("9")
    assert host.played[-1] == "menu"
    host.finish_prompt()
    s.digit("3")
    assert s.menu is SUPPORT
    assert host.played[-1] == "menu"  # support has no greeting
    s.digit("1")
    assert host.transfers == [Action("extension", "203")]
    assert [step["menu"] for step in s.path if step.get("event") == "entered"] == ["main", "support"]


def test_callback_confirms_and_hangs_up() -> None:
    s, loop, host = session()
    s.start("main")
    s.digit("*")
    assert host.callbacks == 1
    assert host.played[-1] == "callback_confirmed"
    host.finish_prompt()
    assert host.hung_up


def test_callback_without_caller_id_says_goodbye() -> None:
    s, loop, host = session()
    host.callback_ok = False
    s.start("main")
    s.digit("*")
    assert host.played[-1] == "goodbye"


def test_transfer_failure_returns_to_the_menu() -> None:
    s, loop, host = session()
    s.start("main")
    s.digit("1")
    s.digit("5")  # keys while the transfer rings are ignored
    s.transfer_failed("SIP 486")
    assert host.played[-1] == "unavailable"
    assert s.path[-1] == {"menu": "main", "event": "unavailable", "reason": "SIP 486"}


HOURS = BusinessHours(name="office", timezone="Europe/Paris",
                      week={0: ((time(9), time(17)),)}, holidays=frozenset({"12-25"}))


@pytest.mark.parametrize("when, open_", [
    (datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc), True),    # Monday 11:00 in Paris
    (datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc), False),  # Monday 18:30 in Paris
    (datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc), False),   # Tuesday: no hours
])
def test_business_hours_choose_day_or_night(when: datetime, open_: bool) -> None:
    menu = IvrMenu(name="main", hours="office", night=Action("extension", "203"))
    s, loop, host = session(menus=[menu], hours={"office": HOURS}, now=lambda: when)
    s.start("main")
    if open_:
        assert host.played == ["greeting"] and host.transfers == []
    else:
        assert host.transfers == [Action("extension", "203")]
        assert s.path[0] == {"menu": "main", "event": "closed"}


def test_night_without_destination_plays_closed_and_hangs_up() -> None:
    menu = IvrMenu(name="main", hours="office")
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=timezone.utc)  # a Friday, but a holiday
    s, loop, host = session(menus=[menu], hours={"office": HOURS}, now=lambda: christmas)
    s.start("main")
    assert host.played == ["closed"]
    host.finish_prompt()
    assert host.hung_up


def test_fallback_loops_between_menus_end_with_goodbye() -> None:
    a = IvrMenu(name="a", greeting=None, max_retries=0, fallback=Action("ivr", "b"))
    b = IvrMenu(name="b", greeting=None, max_retries=0, fallback=Action("ivr", "a"))
    s, loop, host = session(menus=[a, b])
    s.start("a")
    for _ in range(MAX_MENU_VISITS + 2):
        if host.hung_up or host.on_done is None:
            break
        host.finish_prompt()
        loop.advance(10)
    assert host.played[-1] == "goodbye"


def test_missing_menu_says_goodbye() -> None:
    s, loop, host = session(menus=[])
    s.start("nowhere")
    assert host.played == ["goodbye"]


def test_describe_path_in_words() -> None:
    from appliance.calls.ivr import describe_path

    s, loop, host = session()
    s.start("main")
    s.digit("7")
    host.finish_prompt()
    s.digit("2")
    loop.advance(3.1)
    assert describe_path(s.path) == "pressed 2: billing"
    assert describe_path([{"menu": "main", "event": "closed"}]) == "out of hours"
