"""One caller's walk through the IVR menus: prompts, digits, timeouts, retries, hours and actions."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from appliance.calls.hours import BusinessHours
from appliance.calls.ivr_config import Action, IvrMenu
from appliance.crm.ivr_text import describe_path

__all__ = ["IvrSession", "IvrHost", "MAX_MENU_VISITS", "describe_path"]

log = logging.getLogger("switchboard.ivr")

# A caller bounced between menus by fallbacks (or idling forever) is let go after this many menus.
MAX_MENU_VISITS = 20
_GOODBYE = "goodbye"


class IvrHost(Protocol):
    """What the IVR asks of the call it runs on."""

    def play(self, prompt: str, on_done: Callable[[], Any] | None) -> None:
        """Play a named prompt to the caller (on_done when it finishes)."""

    def stop_playing(self) -> None:
        """Cut the current prompt short (the caller pressed a key)."""

    def transfer(self, action: Action) -> None:
        """Send the caller to an extension or queue; the host calls transfer_failed() if that fails."""

    def request_callback(self, queue: str) -> bool:
        """Store a callback request for the caller; False if there is no number to call back."""

    def hangup(self) -> None:
        """End the call."""

    def path_changed(self, path: list[dict]) -> None:
        """The caller's path through the menus grew (store it with the call)."""


class IvrSession:
    """Runs menus for one answered call; digits come in through digit()."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: IvrHost,
                 menus: Callable[[str], IvrMenu | None], hours: Callable[[str], BusinessHours | None],
                 extension_exists: Callable[[str], bool], extension_prefix: Callable[[str], bool],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._loop = loop
        self._host = host
        self._menus = menus
        self._hours = hours
        self._extension_exists = extension_exists
        self._extension_prefix = extension_prefix  # is digits the start of a longer extension number?
        self._now = now
        self.menu: IvrMenu | None = None
        self.path: list[dict] = []
        self.failures = 0
        self.visits = 0
        self.done = False
        self._typed = ""
        self._timer: asyncio.TimerHandle | None = None
        self._waiting = False  # the menu has been played and the caller may type
        self._transferring = False

    # --- entering menus -------------------------------------------------------
    def start(self, name: str) -> None:
        """Enter the first menu."""
        self._enter(name, greet=True)

    def _enter(self, name: str, greet: bool) -> None:
        menu = self._menus(name)
        self.visits += 1
        if menu is None:
            log.error("IVR menu %r does not exist; hanging up", name)
            self._finish_with(_GOODBYE)
            return
        if self.visits > MAX_MENU_VISITS:
            log.info("IVR: caller went through %d menus; saying goodbye", self.visits - 1)
            self._finish_with(_GOODBYE)
            return
        self.menu = menu
        self.failures = 0
        self._typed = ""
        if menu.hours and not self._is_open(menu.hours):
            self._note(menu=menu.name, event="closed")
            if menu.night is None:
                self._finish_with("closed")
            else:
                self._act(menu.night, None)
            return
        self._note(menu=menu.name, event="entered")
        self._waiting = True  # callers who know the menu may press during the greeting
        if greet and menu.greeting:
            self._play(menu.greeting, self._play_menu)
        else:
            self._play_menu()

    def _is_open(self, hours_name: str) -> bool:
        hours = self._hours(hours_name)
        if hours is None:
            log.error("business hours %r do not exist; treating the office as open", hours_name)
            return True
        return hours.is_open(self._now())

    def _play_menu(self) -> None:
        assert self.menu is not None
        self._waiting = True
        if not self.menu.menu:  # menu = "": the greeting says it all, or keys are known by heart
            self._menu_played()
            return
        self._play(self.menu.menu, self._menu_played)

    def _menu_played(self) -> None:
        """The menu prompt ended: wait for the caller's choice."""
        assert self.menu is not None
        if not self._typed:
            self._arm(self.menu.timeout, self._no_input)

    # --- digits ---------------------------------------------------------------
    def digit(self, key: str) -> None:
        """A key the caller pressed (any DTMF source)."""
        if self.done or self.menu is None or self._transferring:
            return
        if not self._waiting:
            return  # keys during a goodbye or an announcement between menus are ignored
        self._host.stop_playing()
        self._cancel_timer()
        self._typed += key
        menu = self.menu
        typed = self._typed
        if menu.dial_by_extension and typed.isdigit() and self._extension_prefix(typed):
            # More digits may follow: wait, unless this is a complete extension no longer one starts with.
            self._arm(menu.digit_timeout, self._resolve)
            return
        self._resolve()

    def _resolve(self) -> None:
        """Act on what the caller typed."""
        self._cancel_timer()
        menu = self.menu
        assert menu is not None
        typed, self._typed = self._typed, ""
        if len(typed) == 1 and typed in menu.options:
            self._act(menu.options[typed], typed)
        elif menu.dial_by_extension and self._extension_exists(typed):
            self._act(Action("extension", typed, f"dialled {typed}"), typed)
        else:
            self._note(menu=menu.name, key=typed, event="invalid")
            self._retry("invalid")

    def _no_input(self) -> None:
        self._timer = None
        if self._typed:
            self._resolve()
            return
        assert self.menu is not None
        self._note(menu=self.menu.name, event="no input")
        self._retry("no_input")

    def _retry(self, prompt: str) -> None:
        menu = self.menu
        assert menu is not None
        self.failures += 1
        if self.failures > menu.max_retries:
            self._note(menu=menu.name, event="fallback", action=str(menu.fallback))
            self._act(menu.fallback, None)
            return
        self._waiting = True
        self._play(prompt, self._play_menu)

    # --- actions -------------------------------------------------------------
    def _act(self, action: Action, key: str | None) -> None:
        menu = self.menu
        assert menu is not None
        self._waiting = False
        if key is not None:
            self._note(menu=menu.name, key=key, action=str(action), label=action.label or _describe(action))
        kind = action.kind
        if kind == "repeat":
            self._waiting = True
            self._play_menu()
        elif kind == "hangup":
            self._finish_with(_GOODBYE)
        elif kind == "ivr":
            self._enter(action.target, greet=True)
        elif kind == "callback":
            self._finish_with("callback_confirmed" if self._host.request_callback(action.target) else _GOODBYE)
        elif kind in ("extension", "queue"):
            self._transferring = True
            self._host.transfer(action)
        else:
            log.error("IVR: unknown action %r", action)
            self._finish_with(_GOODBYE)

    def transfer_failed(self, reason: str) -> None:
        """The extension or queue could not take the caller: back to the menu, or the fallback."""
        if self.done:
            return
        self._transferring = False
        menu = self.menu
        assert menu is not None
        self._note(menu=menu.name, event="unavailable", reason=reason)
        self._retry("unavailable")

    def transferred(self) -> None:
        """The caller has reached a person: the IVR is finished."""
        self.close()

    # --- ending ---------------------------------------------------------------
    def _finish_with(self, prompt: str) -> None:
        self._waiting = False
        self._cancel_timer()
        self._play(prompt, self._hangup)

    def _hangup(self) -> None:
        self.close()
        self._host.hangup()

    def close(self) -> None:
        """Stop all timers (the call ended or left the IVR)."""
        self.done = True
        self._cancel_timer()

    # --- helpers ----------------------------------------------------------------
    def _play(self, prompt: str, on_done: Callable[[], Any]) -> None:
        if not self.done:
            self._host.play(prompt, on_done)

    def _arm(self, seconds: float, callback: Callable[[], Any]) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(seconds, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _note(self, **step: Any) -> None:
        step = {key: value for key, value in step.items() if value is not None}
        self.path.append(step)
        self._host.path_changed(self.path)


def _describe(action: Action) -> str:
    """Words for an action without a label: "extension 202", "queue sales"."""
    return f"{action.kind} {action.target}".strip()
