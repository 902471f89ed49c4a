"""One callback being run: ring the agent, whisper who it is, dial the customer, bridge the two."""
from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING

from appliance.calls.queue import Entry
from appliance.calls.queue_config import QueueConfig
from appliance.calls.speech import Spoken
from appliance.media.channel import MediaChannel
from appliance.media.prompts import Prompt, digits_for_speech
from appliance.media.tones import ringback
from appliance.calls.outbound_call import OutboundCall

if TYPE_CHECKING:
    from appliance.calls.queue_hosts import CallbackHost

__all__ = ["CallbackRun", "attempt_status"]

log = logging.getLogger("switchboard.callbacks")


def attempt_status(status: int) -> str:
    """Words for why dialling the customer failed."""
    if status in (486, 600, 603):
        return "busy"
    if status in (408, 480, 487):
        return "no-answer"
    return f"failed ({status})"


class CallbackRun:
    """A claimed callback: the agent first (with a whisper), then the customer on the line it came from."""

    def __init__(self, service: CallbackHost, entry: Entry, row: dict, cfg: QueueConfig) -> None:
        self.service = service
        self.entry = entry
        self.row = row
        self.cfg = cfg
        self.out: OutboundCall | None = None
        self.offered: tuple[str, ...] = ()
        self.agent = ""
        self.stage = "agent"   # agent → whisper → customer → bridged → done
        self.bridged_at = 0.0

    @property
    def callback_id(self) -> str:
        """The callbacks row."""
        return self.entry.id

    def start(self, agents: tuple[str, ...]) -> None:
        """Ring the agents the engine chose."""
        service, row = self.service, self.row
        targets, self.offered = service.targets_for(agents, self.entry)
        if not targets:
            service.callback_not_started(self)
            return
        info = service.call_log.start(sip_call_id=uuid.uuid4().hex + "@switchboard", direction="callback",
                                      line=row.get("line") or "", from_number=row["number"],
                                      from_name=row.get("name") or "", to_number=row.get("queue") or "")
        service.managed.add(info.record_id)
        service.note_record(self, info.record_id)
        self.out = out = OutboundCall(service.b2bua, info)
        out.on_ended.append(self._ended)
        out.ring_agent(targets, self.cfg.ring_timeout, self._agent_answered, self._agent_failed)

    def _agent_failed(self, status: int) -> None:
        offered, self.offered = self.offered, ()
        self.stage = "done"
        self.service.callback_agent_missed(self, offered, status)

    def _agent_answered(self, channel: MediaChannel) -> None:
        assert self.out is not None
        self.agent = self.out.info.extension or (self.offered[0] if self.offered else "")
        self.stage = "whisper"
        self.service.callback_agent_answered(self, self.agent)
        waited = max(1, math.ceil((self.service.now() - self.entry.position_at) / 60))
        unit = "minute" if waited == 1 else "minutes"
        text = f"Callback for {digits_for_speech(self.row['number'])}, waited {waited} {unit}."
        self.service.speech.say([Spoken(text)], lambda prompt: self._whisper(channel, prompt))

    def _whisper(self, channel: MediaChannel, prompt: Prompt | None) -> None:
        if self.stage != "whisper" or channel.closed:
            return
        if prompt is None:
            self._dial(channel)
        else:
            log.info("callback %s: whisper to %s (%.1f s)", self.callback_id, self.agent, prompt.duration)
            channel.play(prompt, lambda: self._dial(channel))

    def _dial(self, channel: MediaChannel) -> None:
        if self.stage != "whisper" or self.out is None:
            return
        self.stage = "customer"
        targets = self.service.customer_targets(self.row)
        if not targets:
            self._customer_failed(503)
            return
        if targets[0][3] is not None:  # out on a trunk or a modem line: the record names it
            self.service.call_log.line_used(self.out.info, targets[0][2])
        self.out.dial_customer(targets, self.service.customer_ring_timeout,
                               on_ringing=lambda: channel.play(ringback(self.service.ringback_region)),
                               on_answered=self._bridged, on_failed=self._customer_failed,
                               number=self.row["number"])

    def _bridged(self) -> None:
        self.stage = "bridged"
        self.bridged_at = self.service.now()
        self.service.callback_completed(self)

    def _customer_failed(self, status: int) -> None:
        if self.stage != "customer":
            return
        self.stage = "done"
        self.service.callback_attempt_failed(self, attempt_status(status))
        if self.out is not None:
            self.out.hangup()

    def _ended(self, who: str) -> None:
        """The agent leg (and the customer's, if any) is gone."""
        stage, self.stage = self.stage, "done"
        if stage in ("whisper", "customer"):
            # The agent hung up before the customer answered: the callback goes back to its place.
            self.service.callback_interrupted(self, who)
        self.service.callback_finished(self)
