"""One caller in a queue: hold music, announcements, the callback key, and offers to agents."""
from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from appliance.calls.ivr_config import Action
from appliance.calls.queue import Entry
from appliance.calls.queue_config import QueueConfig
from appliance.calls.speech import Part, Spoken, key_words
from appliance.media.prompts import Prompt, digits_for_speech
from appliance.media.tones import ringback
from appliance.calls.bridge import Call

if TYPE_CHECKING:
    from appliance.calls.queue_hosts import CallerHost

__all__ = ["QueueCaller", "dialable"]

log = logging.getLogger("switchboard.queue")

CONFIRM_SECONDS = 10.0   # silence after the callback question before the caller goes back to holding
DIGIT_SECONDS = 6.0      # silence after a typed digit that ends the number, as # does
OFFER_SECONDS = 8.0      # how long the callback offer waits for the key when the queue cannot hold the caller
MAX_TYPED = 16


def dialable(number: str) -> bool:
    """Whether a caller ID or typed number can be called back."""
    digits = number[1:] if number.startswith("+") else number
    return digits.isdigit() and 3 <= len(digits) <= MAX_TYPED


class QueueCaller:
    """A caller the box answered and holds for queue cfg until an agent answers, they leave, or it gives up."""

    def __init__(self, service: CallerHost, call: Call, cfg: QueueConfig) -> None:
        self.service = service
        self.call = call
        self.cfg = cfg
        self.loop: asyncio.AbstractEventLoop = service.loop
        self.channel = call.channel
        self.entry: Entry | None = None   # in the line while not None
        self.row_id = ""                  # queue_entries row
        self.position_at = service.now()  # the place a callback keeps
        self.state = "new"                # new → waiting → ringing → connected; or left
        self.mode = "hold"                # hold | confirm | enter | offer (a destination's callback offer)
        self.offered: tuple[str, ...] = ()
        self.agent = ""
        self.answered_at = 0.0
        self._typed = ""
        self._announce_timer: asyncio.TimerHandle | None = None
        self._max_wait_timer: asyncio.TimerHandle | None = None
        self._input_timer: asyncio.TimerHandle | None = None
        self._wanted = 0  # bumped by each thing played, so a late-rendered announcement is not played over it

    @property
    def record_id(self) -> str:
        """The caller's call record."""
        return self.call.info.record_id

    # --- entering ---------------------------------------------------------------------
    def start(self) -> None:
        """Take the caller in, or send them to the queue's closed/empty/full destination."""
        if self.channel is None or self.channel.closed:
            return
        self.channel.set_digit_handler(lambda key, _how: self.digit(key))
        self.call.on_finish.append(self._caller_gone)
        service, cfg = self.service, self.cfg
        reason = service.refusal(cfg)
        if reason is not None:
            outcome, action, lead = reason
            service.note_refused(self, outcome)
            self.state = "left"
            self._destination(action, lead)
            return
        self.state = "waiting"
        service.enter_line(self)
        self._max_wait_timer = self.loop.call_later(cfg.max_wait, self._max_wait)
        self._announce()

    # --- what the caller hears ---------------------------------------------------------
    def _say(self, parts: list[Part], then) -> None:  # type: ignore[no-untyped-def]
        self._wanted += 1
        wanted = self._wanted

        def play(prompt: Prompt | None) -> None:
            if wanted != self._wanted or self.channel is None or self.channel.closed or self.channel.connected:
                return
            if prompt is None:
                self.loop.call_soon(then)
            else:
                self.channel.play(prompt, then)

        self.service.speech.say(parts, play)

    def _hold(self) -> None:
        """Music until the next announcement."""
        if self.state not in ("waiting", "ringing") or self.mode != "hold" or self.channel is None:
            return
        self._wanted += 1
        music = self.service.hold_music(self.cfg)
        if music is not None and not self.channel.connected:
            self.channel.play(music, loop=True)
        if self.cfg.announce_every:
            self._cancel(self._announce_timer)
            self._announce_timer = self.loop.call_later(self.cfg.announce_every, self._announce)

    def _announce(self) -> None:
        """Position, expected wait and the callback key, then music again."""
        self._announce_timer = None
        if self.state not in ("waiting", "ringing") or self.mode != "hold" or self.entry is None:
            return
        cfg, engine = self.cfg, self.service.engine
        position = engine.position(self.entry.id)
        minutes = max(1, math.ceil(engine.expected_wait(cfg.name, position) / 60))
        parts: list[Part] = []
        if cfg.announce_position:
            parts += ["queue_position", Spoken(str(position))]
        if cfg.announce_wait:
            parts += ["expected_wait", Spoken(str(minutes)), "minutes"]
        if cfg.callback_key:
            parts += ["callback_offer", Spoken(key_words(cfg.callback_key))]
        self.service.bus.publish("queue.announced", queue=cfg.name, call_id=self.record_id, position=position,
                                 expected_wait_minutes=minutes if cfg.announce_wait else None)
        if parts:
            self._say(parts, self._hold)
        else:
            self._hold()

    # --- offers to agents --------------------------------------------------------------
    def offer(self, agents: tuple[str, ...]) -> None:
        """Ring these agents (already marked ringing by the engine) for the caller."""
        targets, reachable = self.service.targets_for(agents, self.entry)
        if not targets or self.entry is None:
            return
        self.state = "ringing"
        self.offered = reachable
        self.call.transfer(targets, on_ringing=lambda _label: None, on_answered=self._answered,
                           on_failed=self._not_answered, timeout=self.cfg.ring_timeout)

    def _answered(self, agent: str) -> None:
        self.state = "connected"
        self.agent = agent
        self.mode = "hold"
        self._stop_timers()
        self.service.caller_answered(self, agent)

    def _not_answered(self, status: int) -> None:
        offered, self.offered = self.offered, ()
        if self.state != "ringing":
            return
        self.state = "waiting"
        self.service.offers_missed(self, offered, status)

    def _release_offers(self) -> None:
        """Stop ringing agents (the caller leaves the line); they are free again, and it is not their miss."""
        offered, self.offered = self.offered, ()
        if self.state == "ringing":
            self.call.cancel_transfer()
            self.state = "waiting"
        if offered:
            self.service.offers_cancelled(self, offered)

    # --- the caller's keys -------------------------------------------------------------
    def digit(self, key: str) -> None:
        """A key the caller pressed."""
        log.debug("call %s: queue key %s (state %s, mode %s)", self.record_id, key, self.state, self.mode)
        if self.state in ("connected", "new") or self.call.state == "ended":
            return
        if self.mode in ("hold", "offer"):
            if self.cfg.callback_key and key == self.cfg.callback_key:
                self._ask_callback()
        elif self.mode == "confirm":
            if key == "1" and not self._typed:
                self._callback_confirmed(self.call.info.from_number, typed=False)
            elif key.isdigit():
                self.mode = "enter"
                self._typed_digit(key)
        elif self.mode == "enter":
            if key == "#":
                self._typed_done()
            elif key.isdigit():
                self._typed_digit(key)

    def _ask_callback(self) -> None:
        self._cancel(self._announce_timer)
        self._typed = ""
        number = self.call.info.from_number
        if dialable(number) and self.service.callback_decision(number, self.call.info.line).allowed:
            self.mode = "confirm"
            self._say(["callback_number", Spoken(digits_for_speech(number)), "callback_confirm"],
                      lambda: self._arm_input(CONFIRM_SECONDS))
        else:
            self.mode = "enter"
            self._say(["callback_enter"], lambda: self._arm_input(CONFIRM_SECONDS))

    def _arm_input(self, seconds: float) -> None:
        self._cancel(self._input_timer)
        self._input_timer = self.loop.call_later(seconds, self._input_timeout)

    def _typed_digit(self, key: str) -> None:
        self._wanted += 1
        if self.channel is not None:
            self.channel.stop()  # typing over the question cuts it short
        if len(self._typed) < MAX_TYPED:
            self._typed += key
        self._arm_input(DIGIT_SECONDS)

    def _typed_done(self) -> None:
        self._cancel(self._input_timer)
        if dialable(self._typed) and self.service.callback_decision(self._typed, self.call.info.line).allowed:
            self._callback_confirmed(self._typed, typed=True)
        else:
            self._typed = ""
            self._say(["invalid", "callback_enter"], lambda: self._arm_input(CONFIRM_SECONDS))

    def _input_timeout(self) -> None:
        self._input_timer = None
        if self.mode == "enter" and self._typed:
            self._typed_done()
            return
        self._back_from_callback()

    def _back_from_callback(self) -> None:
        """The caller did not finish asking for a callback: back to holding, or goodbye if not in line."""
        self._typed = ""
        if self.state in ("waiting", "ringing"):
            self.mode = "hold"
            self._hold()
        else:
            self._goodbye()

    def _callback_confirmed(self, number: str, typed: bool) -> None:
        self._cancel(self._input_timer)
        self._release_offers()
        self.service.store_callback(self, number)
        self.state = "left"
        self.mode = "done"
        self._stop_timers()
        parts: list[Part] = ["callback_number", Spoken(digits_for_speech(number))] if typed else []
        self._say(parts + ["callback_confirmed"], self._hangup)

    # --- leaving ------------------------------------------------------------------------
    def _max_wait(self) -> None:
        self._max_wait_timer = None
        if self.state not in ("waiting", "ringing"):
            return
        self._release_offers()
        self.service.leave_line(self, "timeout")
        self.state = "left"
        self._destination(self.cfg.timeout, "queue_timeout")

    def _destination(self, action: Action, lead: str | None) -> None:
        """Where a caller goes who cannot (or can no longer) wait in this queue."""
        self.mode = "hold"
        self._cancel(self._announce_timer)
        kind = action.kind
        lead_parts: list[Part] = [lead] if lead else []
        if kind == "callback" and self.cfg.callback_key:
            self.mode = "offer"
            self._say(lead_parts + ["callback_offer", Spoken(key_words(self.cfg.callback_key))],
                      lambda: self._arm_offer())
        elif kind == "extension":
            self._ring_extension(action.target, lead_parts)
        elif kind == "ivr":
            self.service.to_ivr(self, action.target)
        elif kind == "queue" and action.target != self.cfg.name:
            self.service.to_queue(self, action.target)
        else:
            self._say(lead_parts + ["goodbye"], self._hangup)

    def _arm_offer(self) -> None:
        self._cancel(self._input_timer)
        self._input_timer = self.loop.call_later(OFFER_SECONDS, self._offer_timeout)

    def _offer_timeout(self) -> None:
        self._input_timer = None
        if self.mode == "offer":
            self._goodbye()

    def _ring_extension(self, number: str, lead: list[Part]) -> None:
        targets, _ = self.service.targets_for((number,), None)
        if not targets:
            self._say(lead + ["goodbye"], self._hangup)
            return

        def ringing(_label: str) -> None:
            self._wanted += 1
            if self.channel is not None and not self.channel.connected:
                self.channel.play(ringback(self.service.ringback_region))

        self.call.transfer(targets, on_ringing=ringing, on_answered=lambda _who: None,
                           on_failed=lambda _status: self._goodbye())

    def _goodbye(self) -> None:
        self.mode = "done"
        self._say(["goodbye"], self._hangup)

    def _hangup(self) -> None:
        if self.call.state != "ended":
            self.call.hangup(None)

    def _caller_gone(self) -> None:
        """The call ended (either side hung up, or the box did)."""
        self._stop_timers()
        state, self.state = self.state, "left"
        if state == "connected":
            self.service.caller_finished(self)
        elif state in ("waiting", "ringing"):
            offered, self.offered = self.offered, ()
            if offered:
                self.service.offers_cancelled(self, offered)
            self.service.leave_line(self, "abandoned")

    def detach(self) -> None:
        """Another handler (IVR, another queue) takes the caller: stop everything of this queue's."""
        self._stop_timers()
        self._wanted += 1
        self.mode = "done"

    def _stop_timers(self) -> None:
        for timer in (self._announce_timer, self._max_wait_timer, self._input_timer):
            self._cancel(timer)
        self._announce_timer = self._max_wait_timer = self._input_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
