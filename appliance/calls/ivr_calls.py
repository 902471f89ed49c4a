"""Calls routed to "ivr:NAME": the box answers, runs the menus, and hands the caller on."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from appliance.calls.handover import Handover
from appliance.calls.ivr import IvrSession, describe_path
from appliance.calls.ivr_config import Action, IvrMenu
from appliance.calls.router import Route
from appliance.calls.answering import open_channel
from appliance.media.channel import MediaChannel
from appliance.media.prompts import PromptError, PromptLibrary
from appliance.calls.recording import RecordingPolicy
from appliance.media.tones import ringback
from appliance.calls.b2bua import B2BUA
from appliance.calls.bridge import Call
from appliance.sip.sdp_local import MediaChoice
from appliance.store import directory
from appliance.calls import ivr_definitions as store_ivr

__all__ = ["IvrDestination", "CallHost"]

log = logging.getLogger("switchboard.ivr")

CACHE_SECONDS = 2.0  # how long a menu read from the store is reused for new calls



class IvrDestination:
    """The B2BUA destination for route kind "ivr"."""

    def __init__(self, loop: asyncio.AbstractEventLoop, b2bua: B2BUA, db: Any, prompts: PromptLibrary,
                 recording: RecordingPolicy, handover: Handover, ringback_region: str = "eu",
                 dtmf_inband: str = "auto",
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.loop = loop
        self.b2bua = b2bua
        self.db = db
        self.prompts = prompts
        self.recording = recording
        self.ringback_region = ringback_region
        self.dtmf_inband = dtmf_inband
        self.now = now
        self.handover = handover  # the queues take callers pressing a queue: key, and run their callbacks
        self._menus: dict[str, tuple[float, IvrMenu | None]] = {}
        self._hours: dict[str, tuple[float, Any]] = {}

    def __call__(self, call: Call, route: Route) -> None:
        """Answer a call for menu route.number and start the menus once the caller ACKs."""
        name = route.number
        menus = self._menu_cache()
        if menus(name) is None:
            log.error("call %s: IVR menu %r does not exist", call.info.record_id, name)
            call.fail(480, "Temporarily Unavailable (no such IVR menu)", "failed")
            return
        call.answer_locally(f"ivr:{name}", lambda choice: self._run(call, name, choice, menus))

    def _menu_cache(self) -> Callable[[str], IvrMenu | None]:
        """Menu lookup for one call: each menu read once (a call sees one version of it)."""
        seen: dict[str, IvrMenu | None] = {}

        def lookup(name: str) -> IvrMenu | None:
            if name not in seen:
                seen[name] = self._fresh(self._menus, name, store_ivr.get_menu)
            return seen[name]

        return lookup

    def _fresh(self, cache: dict, name: str, load: Callable[[Any, str], Any]) -> Any:
        """A menu or hours table from memory, re-read from the store once it is CACHE_SECONDS old.

        Provisioning runs in another process; a short expiry lets its changes reach new calls
        within seconds while a busy IVR does not parse the same JSON for every call.
        """
        now = self.loop.time()
        hit = cache.get(name)
        if hit is None or hit[0] <= now:
            hit = (now + CACHE_SECONDS, load(self.db, name))
            cache[name] = hit
        return hit[1]

    def _run(self, call: Call, name: str, choice: MediaChoice, menus: Callable[[str], IvrMenu | None]) -> None:
        host = CallHost(self, call)
        channel = open_channel(self.loop, call, choice, host.digit, self.dtmf_inband)
        menu = menus(name)
        if self.recording.wants(call.info, asked=bool(menu and menu.record)):
            recorder, relative = self.recording.open(call.info)
            channel.record(recorder)
            self.b2bua.calls.recording(call.info, relative)
        log.info("call %s: IVR %s answered (%s, DTMF %s)", call.info.record_id, name, choice.codec,
                 "in band" if choice.event_pt is None else f"RFC 4733 pt {choice.event_pt}")
        self._start_session(call, host, channel, name, menus)

    def enter(self, call: Call, name: str) -> None:
        """Run menu name for a caller the box already holds (a queue sends them back to a menu)."""
        channel = call.channel
        if channel is None or channel.closed:
            return
        host = CallHost(self, call)
        channel.set_digit_handler(host.digit)
        self._start_session(call, host, channel, name, self._menu_cache())

    def _start_session(self, call: Call, host: "CallHost", channel: MediaChannel, name: str,
                       menus: Callable[[str], IvrMenu | None]) -> None:
        host.channel = channel
        session = IvrSession(self.loop, host,
                             menus=menus,
                             hours=lambda hours: self._fresh(self._hours, hours, store_ivr.get_hours),
                             extension_exists=lambda number: directory.get_extension(self.db, number) is not None,
                             extension_prefix=self._starts_longer_extension, now=self.now)
        host.session = session
        call.on_finish.append(session.close)
        session.start(name)

    def _starts_longer_extension(self, digits: str) -> bool:
        """Whether some extension number begins with digits and is longer (more may be typed)."""
        return any(row["number"].startswith(digits) and len(row["number"]) > len(digits)
                   for row in directory.list_extensions(self.db))


class CallHost:
    """Adapts one answered call to what IvrSession asks of it."""

    def __init__(self, owner: IvrDestination, call: Call) -> None:
        self.owner = owner
        self.call = call
        self.channel: MediaChannel | None = None
        self.session: IvrSession | None = None
        self._wanted = 0  # bumped by each play/stop, so a prompt loaded late is not played over a newer one

    def digit(self, key: str, how: str) -> None:
        """A digit heard on the call."""
        log.debug("call %s: digit %s (%s)", self.call.info.record_id, key, how)
        if self.session is not None:
            self.session.digit(key)

    def play(self, prompt: str, on_done: Callable[[], None] | None) -> None:
        """Play a named prompt; a prompt that cannot be loaded is skipped, not fatal."""
        self._wanted += 1
        prompts = self.owner.prompts
        if prompts.cached(prompt):
            self._play_loaded(prompt, on_done, self._wanted)
            return
        # Not in memory yet (first boot renders prompts with espeak-ng): load it off the loop.
        wanted = self._wanted
        future = self.owner.loop.run_in_executor(None, self._load, prompt)
        future.add_done_callback(lambda _f: self._play_loaded(prompt, on_done, wanted))

    def _load(self, prompt: str) -> None:
        try:
            self.owner.prompts.get(prompt)
        except PromptError as exc:
            log.error("prompt %r unavailable: %s", prompt, exc)

    def _play_loaded(self, prompt: str, on_done: Callable[[], None] | None, wanted: int) -> None:
        channel = self.channel
        if channel is None or channel.closed or wanted != self._wanted:
            return  # the call ended, or something else was asked for meanwhile
        if not self.owner.prompts.cached(prompt):
            if on_done is not None:
                self.owner.loop.call_soon(on_done)
            return
        channel.play(self.owner.prompts.get(prompt), on_done)

    def stop_playing(self) -> None:
        """Cut the current prompt short."""
        self._wanted += 1
        if self.channel is not None:
            self.channel.stop()

    def transfer(self, action: Action) -> None:
        """Ring an extension (or hand over to a queue) for the caller."""
        session = self.session
        assert session is not None
        # Stored before anyone's phone rings: the screen pop shows how the caller got there.
        self.owner.b2bua.calls.path(self.call.info, session.path, store=True)
        if action.kind == "queue":
            refused = self.owner.handover.to_queue(self.call, action.target)
            if refused is None:
                session.close()  # the queue has the caller now, with its own music and destinations
            else:
                self.owner.loop.call_soon(session.transfer_failed, refused)
            return
        bindings = self.owner.b2bua.location.lookup(action.target)
        if not bindings:
            self.owner.loop.call_soon(session.transfer_failed, f"{action.target} is not registered")
            return
        targets = [(b.request_uri(), b.source, action.target, None) for b in bindings]
        self.call.transfer(targets, on_ringing=self._ringing, on_answered=lambda _who: session.transferred(),
                           on_failed=lambda status: session.transfer_failed(f"SIP {status}"))

    def _ringing(self, _label: str) -> None:
        self._wanted += 1
        if self.channel is not None and not self.channel.connected:
            self.channel.play(ringback(self.owner.ringback_region))

    def request_callback(self, queue: str) -> bool:
        """Ask for a callback to the caller's number (in queue, or the queues' default); False if there is none."""
        info = self.call.info
        number = info.from_number
        if not number or not number.lstrip("+").isdigit():
            log.info("call %s: callback requested but the caller ID %r cannot be dialled", info.record_id, number)
            return False
        menu = self.session.menu.name if self.session and self.session.menu else ""
        if not self.owner.handover.has_callbacks:  # no queue service to check and run it: nothing is stored
            log.warning("call %s: callback requested but no queue runs callbacks", info.record_id)
            return False
        try:
            callback_id = self.owner.handover.callback(info, number, queue, f"ivr:{menu}")
        except ValueError as exc:
            log.info("call %s: callback to %s refused: %s", info.record_id, number, exc)
            return False
        self.owner.b2bua.calls.note(info, callback_id=callback_id)
        return True

    def hangup(self) -> None:
        """The IVR is done with the caller."""
        self.call.hangup(None)

    def path_changed(self, path: list[dict]) -> None:
        """Store the path so far with the call, and log the caller's latest choice for the installer."""
        self.owner.b2bua.calls.path(self.call.info, path)
        latest = describe_path(path[-1:])
        if latest:
            log.info("call %s: %s", self.call.info.record_id, latest)
