"""The queues' agents: log in, pause and log out (from the web, the CLI or a feature code), and their calls."""
from __future__ import annotations

import logging

from appliance.bus import Event
from appliance.calls.answering import open_channel
from appliance.calls.queue import Agent
from appliance.calls.router import FEATURE_CODES, Route
from appliance.media.prompts import Prompt
from appliance.calls.bridge import Call
from appliance.sip.sdp_local import MediaChoice
from appliance.store import directory
from appliance.store import queues as store_queues


log = logging.getLogger("switchboard.queue")
FEATURE_PROMPTS = {"login": "agent_logged_in", "logout": "agent_logged_out", "pause": "agent_paused",
                   "unpause": "agent_unpaused"}


class QueueAgents:
    """The agent half of QueueService: agent actions, feature codes and the calls agents are on."""

    def agent_action(self, extension: str, action: str, queue: str | None = None, reason: str = "") -> dict:
        """Log in, log out, pause or unpause an agent: the store first (the truth), then the live engine."""
        if directory.get_extension(self.db, extension) is None:
            raise ValueError(f"no extension {extension}")
        member_of = [cfg.name for cfg in self.engine.queues.values() if cfg.member(extension) is not None]
        if queue is not None and queue not in member_of:
            raise ValueError(f"{extension} is not a member of queue {queue}" if queue in self.engine.queues
                             else f"no queue named {queue}")
        queues = [queue] if queue is not None else member_of
        if action in ("login", "logout") and not queues:
            raise ValueError(f"{extension} is not a member of any queue")
        if action == "login":
            for name in queues:
                store_queues.set_login(self.db, extension, name, True)
                self.engine.login(extension, name)
        elif action == "logout":
            for name in queues:
                store_queues.set_login(self.db, extension, name, False)
                self.engine.logout(extension, name)
        elif action == "pause":
            store_queues.set_pause(self.db, extension, True, reason or "paused")
            self.engine.pause(extension, reason or "paused")
        elif action == "unpause":
            store_queues.set_pause(self.db, extension, False)
            self.engine.unpause(extension)
        else:
            raise ValueError(f"unknown agent action {action!r}")
        self.kick()
        agent = self.engine.agent(extension)
        return {"extension": extension, "state": agent.state if agent else "logged_out",
                "reason": agent.reason if agent else "", "queues": sorted(agent.queues) if agent else []}

    def _agent_changed(self, agent: Agent) -> None:
        self.bus.publish("agent.state", extension=agent.extension, state=agent.state, reason=agent.reason,
                         queues=sorted(agent.queues))
        if agent.state == "available":
            self.kick()

    def _call_event(self, event: Event) -> None:
        """Agents on calls outside the queue (direct calls, calls they make) are not offered queue calls."""
        data = event.data
        call_id = data.get("call_id")
        if call_id in self.managed:
            if event.topic == "call.ended":
                self.managed.discard(call_id)
            return
        if event.topic in ("call.answered", "call.connected"):
            for who in (data.get("answered_by"), data.get("from_number") if data.get("direction") != "inbound" else None):
                if who and self.engine.agent(who) is not None:
                    self._direct.setdefault(who, set()).add(call_id)
                    if self.engine.agent(who).busy == "":
                        self.engine.set_busy(who, "on_call")
        elif event.topic == "call.ended":
            for agent, calls in list(self._direct.items()):
                if call_id in calls:
                    calls.discard(call_id)
                    if not calls:
                        del self._direct[agent]
                        found = self.engine.agent(agent)
                        if found is not None and found.busy == "on_call":
                            self.engine.set_busy(agent, "")
                            self.kick()

    def feature(self, call: Call, route: Route) -> None:
        """B2BUA destination "feature": *45 log in, *46 log out, *47 pause, *48 unpause, said back to the agent."""
        extension = call.info.from_number
        action = FEATURE_CODES[route.number]
        call.answer_locally(f"feature:{route.number}",
                            lambda choice: self._feature_answered(call, extension, action, choice))

    def _feature_answered(self, call: Call, extension: str, action: str, choice: MediaChoice) -> None:
        channel = open_channel(self.loop, call, choice, lambda _key, _how: None, self.dtmf_inband)
        try:
            self.agent_action(extension, action, reason="paused from the phone" if action == "pause" else "")
            # The phone is still on this call while the box speaks: no offer until it hangs up. The
            # agent exists only now for *45, so the call.answered event could not mark it busy.
            self._direct.setdefault(extension, set()).add(call.info.record_id)
            agent = self.engine.agent(extension)
            if agent is not None and agent.busy == "":
                self.engine.set_busy(extension, "on_call")
            prompt = FEATURE_PROMPTS[action]
            log.info("agent %s: %s from the phone", extension, action)
        except ValueError as exc:
            log.info("agent %s: %s refused: %s", extension, action, exc)
            prompt = "invalid"

        def play(loaded: Prompt | None) -> None:
            if loaded is None or channel.closed:
                call.hangup(None)
            else:
                channel.play(loaded, lambda: call.hangup(None))

        self.speech.say([prompt], play)
