"""What a waiting caller and a callback being dialled need from the queue service, written down.

QueueCaller and CallbackRun call their host back; these Protocols are that whole interface, so
each can be tested against a small fake host with a fake clock (tests/test_queue_caller.py).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from appliance.bus import EventBus
from appliance.calls.outbound_policy import Decision
from appliance.calls.queue import Entry, QueueEngine
from appliance.calls.queue_config import QueueConfig
from appliance.calls.records import CallLog
from appliance.calls.speech import Speech
from appliance.media.prompts import Prompt
from appliance.sip.targets import Target

if TYPE_CHECKING:
    from appliance.calls.callback_run import CallbackRun
    from appliance.calls.queue_caller import QueueCaller


class CallerHost(Protocol):
    """The queue service as a waiting caller (QueueCaller) sees it."""

    loop: asyncio.AbstractEventLoop
    bus: EventBus
    engine: QueueEngine
    speech: Speech
    ringback_region: str
    now: Callable[[], float]

    def refusal(self, cfg: QueueConfig) -> tuple[str, object, str | None] | None:
        """Why the queue cannot take a caller now (closed, empty, full), or None."""

    def note_refused(self, caller: QueueCaller, outcome: str) -> None:
        """A caller the queue did not take."""

    def enter_line(self, caller: QueueCaller) -> None:
        """The caller waits in line."""

    def leave_line(self, caller: QueueCaller, outcome: str, callback_id: str | None = None) -> None:
        """The caller left the line (abandoned, timeout, callback...)."""

    def targets_for(self, agents: tuple[str, ...], entry: Entry | None) -> tuple[list[Target], tuple[str, ...]]:
        """Where to ring these agents, and which of them can be rung."""

    def caller_answered(self, caller: QueueCaller, agent: str) -> None:
        """An agent took the caller."""

    def offers_missed(self, caller: QueueCaller, agents: tuple[str, ...], status: int) -> None:
        """Nobody offered the caller answered."""

    def offers_cancelled(self, caller: QueueCaller, agents: tuple[str, ...]) -> None:
        """The offers stopped because the caller left; not the agents' miss."""

    def caller_finished(self, caller: QueueCaller) -> None:
        """A connected caller's call ended."""

    def callback_decision(self, number: str, line: str | None, dial_as: str | None = None) -> Decision:
        """Whether the box may call this number back (the outbound policy)."""

    def store_callback(self, caller: QueueCaller, number: str) -> str:
        """Keep the caller's place as a callback; its id."""

    def hold_music(self, cfg: QueueConfig) -> Prompt | None:
        """What a queue plays between announcements."""

    def to_ivr(self, caller: QueueCaller, menu: str) -> None:
        """Send the caller to an IVR menu."""

    def to_queue(self, caller: QueueCaller, name: str) -> None:
        """Send the caller to another queue."""


class CallbackHost(Protocol):
    """The queue service as a callback being dialled (CallbackRun) sees it."""

    call_log: CallLog
    speech: Speech
    ringback_region: str
    customer_ring_timeout: float
    now: Callable[[], float]

    def customer_targets(self, row: dict) -> list[Target]:
        """Where to dial the customer of a callback row (its line, or the first that is up)."""

    def callback_agent_missed(self, run: CallbackRun, agents: tuple[str, ...], status: int) -> None:
        """The agents rung for a callback did not answer."""

    def callback_agent_answered(self, run: CallbackRun, agent: str) -> None:
        """An agent took the callback; the customer is dialled next."""

    def callback_completed(self, run: CallbackRun) -> None:
        """Agent and customer are talking."""

    def callback_attempt_failed(self, run: CallbackRun, status: str) -> None:
        """The customer did not answer this attempt."""

    def callback_interrupted(self, run: CallbackRun, who: str) -> None:
        """The agent or the customer hung up."""

    def callback_finished(self, run: CallbackRun) -> None:
        """The run is over."""
