"""The queues at work: the engine's decisions turned into calls, records, events and callbacks."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

from appliance.bus import EventBus
from appliance.calls.answering import open_channel
from appliance.calls.callback_run import CallbackRun
from appliance.calls.callback_scheduler import CallbackScheduler
from appliance.calls.handover import Handover
from appliance.calls.ivr_config import Action
from appliance.calls.outbound_policy import OutboundPolicy
from appliance.calls.queue import Entry, QueueEngine
from appliance.calls.queue_agents import QueueAgents
from appliance.calls.queue_caller import QueueCaller
from appliance.calls.queue_callbacks import RETRY_SECONDS, QueueCallbacks
from appliance.calls.queue_config import QueueConfig
from appliance.calls.records import CallLog
from appliance.calls.router import Route
from appliance.calls.speech import Speech
from appliance.media.prompts import Prompt, PromptError, PromptLibrary
from appliance.calls.b2bua import B2BUA
from appliance.calls.bridge import Call
from appliance.sip.targets import Target, TrunkPeer
from appliance.sip.sdp_local import MediaChoice
from appliance.store import callbacks as store_callbacks
from appliance.store import directory
from appliance.calls import ivr_definitions as store_ivr
from appliance.store import queues as store_queues
from appliance.calls import queue_definitions
from appliance.crm import customer_store

__all__ = ["QueueService"]

log = logging.getLogger("switchboard.queue")

HOURS_CACHE_SECONDS = 2.0
CUSTOMER_RING_SECONDS = 45.0


class QueueService(QueueCallbacks, QueueAgents):
    """Owns the QueueEngine on the loop: callers, agents, offers, callbacks and their bookkeeping."""

    def __init__(self, loop: asyncio.AbstractEventLoop, b2bua: B2BUA, db: Any, prompts: PromptLibrary,
                 bus: EventBus, call_log: CallLog, handover: Handover,
                 trunk_by_name: Callable[[str], TrunkPeer | None], policy: OutboundPolicy,
                 ringback_region: str = "eu",
                 dtmf_inband: str = "auto", now: Callable[[], float] = time.time,
                 customer_ring_timeout: float = CUSTOMER_RING_SECONDS,
                 line_names: Callable[[], list[str]] | None = None) -> None:
        self.loop = loop
        self.b2bua = b2bua
        self.db = db
        self.prompts = prompts
        self.bus = bus
        self.call_log = call_log
        self.handover = handover  # menus a destination may send callers to
        self.trunk_by_name = trunk_by_name
        self.policy = policy  # every number a callback dials passes it, when asked for and again when dialled
        # Every line a callback may go out on, trunks first (modem lines after them).
        self.line_names = line_names or (lambda: [t["name"] for t in directory.list_trunks(db)])
        self.ringback_region = ringback_region
        self.dtmf_inband = dtmf_inband
        self.now = now
        self.customer_ring_timeout = customer_ring_timeout
        self.speech = Speech(loop, prompts)
        self.engine = QueueEngine({}, now=now, is_open=self.is_open, on_agent=self._agent_changed)
        self.scheduler = CallbackScheduler(loop, self.callback_due)
        self.callers: dict[str, QueueCaller] = {}   # entry id -> caller in a line
        self.runs: dict[str, CallbackRun] = {}      # callback id -> callback being dialled
        self.managed: set[str] = set()              # call records the queue itself put agents on
        self._direct: dict[str, set[str]] = {}      # agent -> other calls they are on
        self._wrapups: dict[str, asyncio.TimerHandle] = {}
        self._offer_started: dict[tuple[str, str], float] = {}
        self._hours: dict[str, tuple[float, bool]] = {}
        self._kick_pending = False
        self._unsubscribe: Callable[[], None] | None = None

    # --- life -------------------------------------------------------------------------
    def start(self) -> None:
        """Load queues, agents and callbacks from the store, and start the callback scheduler."""
        interrupted = store_callbacks.recover_interrupted(self.db)
        if interrupted:
            log.warning("%d callbacks were being dialled when the box stopped; they wait again", interrupted)
        self.scheduler.start()
        self.reload()
        for cfg in self.engine.queues.values():
            self.engine.seed_handling(cfg.name, store_queues.recent_handling_times(self.db, cfg.name))
        self._seed_answered_today()
        self.scheduler.every(30.0, self.kick, "queue-tick")  # notices business hours opening, clock jumps
        self._unsubscribe = self.bus.subscribe(self._call_event, "call.")

    def _seed_answered_today(self) -> None:
        """fewest-calls counts today's answers: a restart at noon must not forget the morning."""
        today = date.fromtimestamp(self.now())
        midnight = datetime.combine(today, datetime.min.time()).timestamp()
        counts: dict[str, int] = {}
        for (_queue, agent), answered in store_queues.answered_counts(self.db, midnight).items():
            counts[agent] = counts.get(agent, 0) + answered
        for extension, answered in counts.items():
            agent = self.engine.agent(extension)
            if agent is not None:
                agent.answered_today, agent.day = answered, today.isoformat()

    def stop(self) -> None:
        """Stop timers and jobs (the store keeps everything that must survive)."""
        self.scheduler.stop()
        for timer in self._wrapups.values():
            timer.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()

    def reload(self) -> None:
        """Re-read queues, logins, pauses and callbacks from the store (provisioning or the CLI changed them)."""
        self.engine.configure({cfg.name: cfg for cfg in queue_definitions.list_queues(self.db)})
        self._hours.clear()
        wanted = set(store_queues.logins(self.db))
        for agent in list(self.engine.agents.values()):
            for queue in list(agent.queues):
                if (agent.extension, queue) not in wanted:
                    self.engine.logout(agent.extension, queue)
        for extension, queue in sorted(wanted):
            try:
                self.engine.login(extension, queue)
            except ValueError as exc:
                log.info("stored login of %s to %s ignored: %s", extension, queue, exc)
        paused = store_queues.pauses(self.db)
        for agent in list(self.engine.agents.values()):
            if agent.paused and agent.extension not in paused:
                self.engine.unpause(agent.extension)
        for extension, reason in paused.items():
            if self.engine.agent(extension) is not None:
                self.engine.pause(extension, reason or "paused")
        self._load_callbacks()
        self.kick()

    # --- dispatch ---------------------------------------------------------------------
    def kick(self) -> None:
        """Look for offers to make, once, soon (many changes in one loop turn make one dispatch)."""
        if not self._kick_pending:
            self._kick_pending = True
            self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._kick_pending = False
        for offer in self.engine.dispatch():
            entry = offer.entry
            now = self.now()
            for agent in offer.agents:
                self._offer_started[(entry.id, agent)] = now
            try:
                self._make_offer(entry, offer.agents)
            except Exception:  # one broken offer must not stop the others, nor leave agents ringing
                log.exception("queue %s: offer of %s to %s failed", entry.queue, entry.id, ", ".join(offer.agents))
                self._release(entry, offer.agents, "cancelled")

    def _make_offer(self, entry: Entry, agents: tuple[str, ...]) -> None:
        if entry.kind == "call":
            caller = self.callers.get(entry.id)
            if caller is None:
                self._release(entry, agents, "cancelled")
                self.engine.remove(entry.id)
                return
            caller.offer(agents)
        else:
            self._run_callback(entry, agents)

    def targets_for(self, agents: tuple[str, ...], entry: Entry | None) -> tuple[list[Target], tuple[str, ...]]:
        """SIP targets for agents' phones; an offered agent with no registered phone misses the offer."""
        targets: list[Target] = []
        reachable: list[str] = []
        for agent in agents:
            bindings = self.b2bua.location.lookup(agent)
            if bindings:
                reachable.append(agent)
                targets += [(b.request_uri(), b.source, agent, None) for b in bindings]
            elif entry is not None:
                log.info("queue %s: agent %s is logged in but has no phone registered", entry.queue, agent)
                self.loop.call_soon(self._missed, entry, agent)
        return targets, tuple(reachable)

    def _missed(self, entry: Entry, agent: str) -> None:
        self._end_offer(entry, agent, "missed")
        if self.engine.offer_missed(entry.id, agent, miss=True):
            self._auto_paused(agent)
        self.kick()

    def _release(self, entry: Entry, agents: tuple[str, ...], outcome: str) -> None:
        for agent in agents:
            self._end_offer(entry, agent, outcome)
            self.engine.offer_missed(entry.id, agent, miss=False)

    def _end_offer(self, entry: Entry, agent: str, outcome: str) -> None:
        rang_at = self._offer_started.pop((entry.id, agent), None)
        if rang_at is None:
            return
        ids = {"entry_id": entry.id} if entry.kind == "call" else {"callback_id": entry.id}  # a caller's entry id is its row
        store_queues.record_offer(self.db, queue=entry.queue, agent=agent, rang_at=rang_at, ended_at=self.now(),
                                  outcome=outcome, **ids)

    def _auto_paused(self, agent: str) -> None:
        found = self.engine.agent(agent)
        reason = found.reason if found is not None else "missed calls"
        store_queues.set_pause(self.db, agent, True, reason)
        log.warning("agent %s paused: %s", agent, reason)

    # --- callers ----------------------------------------------------------------------
    def __call__(self, call: Call, route: Route) -> None:
        """B2BUA destination "queue:NAME": the box answers and the caller joins the line."""
        if route.number not in self.engine.queues:
            call.fail(480, "Temporarily Unavailable (no such queue)", "failed")
            return
        call.answer_locally(f"queue:{route.number}", lambda choice: self._answered(call, route.number, choice))

    def _answered(self, call: Call, name: str, choice: MediaChoice) -> None:
        open_channel(self.loop, call, choice, lambda _key, _how: None, self.dtmf_inband)
        self.join(call, name)

    def join(self, call: Call, name: str) -> str | None:
        """Take a caller the box holds into queue name; None when taken, else why not (the IVR's hook)."""
        cfg = self.engine.queues.get(name)
        if cfg is None:
            return f"no queue named {name}"
        QueueCaller(self, call, cfg).start()
        return None

    def refusal(self, cfg: QueueConfig) -> tuple[str, Action, str | None] | None:
        """Why a new caller cannot wait in cfg: (outcome, destination, lead prompt), or None."""
        if not self.is_open(cfg.name):
            return "closed", cfg.closed, "closed"
        if not self.engine.members_logged_in(cfg.name):
            return "empty", cfg.empty, "queue_full"
        if len([e for e in self.engine.waiting(cfg.name) if e.kind == "call"]) >= cfg.max_length:
            return "full", cfg.full, "queue_full"
        return None

    def note_refused(self, caller: QueueCaller, outcome: str) -> None:
        """Record a caller turned away at the door (closed, nobody logged in, full)."""
        info = caller.call.info
        now = self.now()
        caller.row_id = store_queues.enter_queue(self.db, queue=caller.cfg.name, call_id=info.record_id,
                                                 number=info.from_number, name=info.display_name,
                                                 vip=self._is_vip(info.from_number), entered_at=now)
        store_queues.entry_left(self.db, caller.row_id, outcome, now)
        self.bus.publish("queue.left", queue=caller.cfg.name, call_id=info.record_id, outcome=outcome, wait=0.0)
        log.info("call %s: queue %s %s", info.record_id, caller.cfg.name, outcome)

    def enter_line(self, caller: QueueCaller) -> None:
        """Put the caller in the line."""
        info = caller.call.info
        vip = self._is_vip(info.from_number)
        caller.row_id = store_queues.enter_queue(self.db, queue=caller.cfg.name, call_id=info.record_id,
                                                 number=info.from_number, name=info.display_name, vip=vip,
                                                 entered_at=caller.position_at)
        entry = Entry(id=caller.row_id, queue=caller.cfg.name, kind="call", number=info.from_number,
                      position_at=caller.position_at, vip=vip, name=info.display_name)
        caller.entry = entry
        self.callers[entry.id] = caller
        self.managed.add(info.record_id)
        position = self.engine.add(entry)
        self.call_log.note(info, queue=caller.cfg.name)
        self.bus.publish("queue.joined", queue=caller.cfg.name, call_id=info.record_id, number=info.from_number,
                         vip=vip, position=position)
        log.info("call %s: queue %s joined at position %d%s", info.record_id, caller.cfg.name, position,
                 " (VIP)" if vip else "")
        self.kick()

    def leave_line(self, caller: QueueCaller, outcome: str, callback_id: str | None = None) -> None:
        """The caller is out of the line without reaching an agent."""
        entry = caller.entry
        if entry is None:
            return
        caller.entry = None
        self.callers.pop(entry.id, None)
        self.engine.remove(entry.id)
        now = self.now()
        store_queues.entry_left(self.db, caller.row_id, outcome, now, callback_id)
        self.call_log.note(caller.call.info, queue_outcome=outcome, queue_wait=round(now - entry.entered_at, 3))
        self.bus.publish("queue.left", queue=entry.queue, call_id=caller.record_id, outcome=outcome,
                         wait=round(now - entry.entered_at, 3))
        log.info("call %s: left queue %s (%s) after %.1f s", caller.record_id, entry.queue, outcome,
                 now - entry.entered_at)
        self.kick()

    def caller_answered(self, caller: QueueCaller, agent: str) -> None:
        """An agent took the caller."""
        entry = caller.entry
        if entry is None:
            return
        caller.entry = None
        self.callers.pop(entry.id, None)
        others = self.engine.offer_answered(entry.id, agent)
        self._end_offer(entry, agent, "answered")
        for other in others:
            self._end_offer(entry, other, "cancelled")
        now = self.now()
        caller.answered_at = now
        store_queues.entry_answered(self.db, caller.row_id, agent, now)
        wait = round(now - entry.entered_at, 3)
        self.call_log.note(caller.call.info, queue_outcome="answered", queue_wait=wait)
        self.bus.publish("queue.answered", queue=entry.queue, call_id=caller.record_id, agent=agent, wait=wait)
        log.info("call %s: agent %s answered from queue %s after %.1f s", caller.record_id, agent, entry.queue, wait)
        self.kick()

    def offers_missed(self, caller: QueueCaller, agents: tuple[str, ...], status: int) -> None:
        """Nobody of those rung answered (timeout or rejection): each takes a miss."""
        entry = caller.entry
        if entry is None:
            return
        for agent in agents:
            self._end_offer(entry, agent, "missed")
            if self.engine.offer_missed(entry.id, agent, miss=True):
                self._auto_paused(agent)
        log.info("call %s: %s did not answer (SIP %d)", caller.record_id, ", ".join(agents), status)
        self.kick()
        self.loop.call_later(RETRY_SECONDS, self.kick)

    def offers_cancelled(self, caller: QueueCaller, agents: tuple[str, ...]) -> None:
        """The box stopped ringing agents for a reason of the caller's: not their miss."""
        if caller.entry is not None:
            self._release(caller.entry, agents, "cancelled")
        self.kick()

    def caller_finished(self, caller: QueueCaller) -> None:
        """A call an agent took from the queue ended."""
        now = self.now()
        store_queues.entry_ended(self.db, caller.row_id, now)
        talk = now - caller.answered_at if caller.answered_at else None
        self._agent_done(caller.agent, caller.cfg, talk)

    def _agent_done(self, agent: str, cfg: QueueConfig, talk: float | None) -> None:
        if not agent:
            return
        if talk is not None:
            self.engine.record_handling(cfg.name, talk)
        self.engine.call_ended(agent)
        if cfg.wrapup > 0:
            old = self._wrapups.pop(agent, None)
            if old is not None:
                old.cancel()
            self._wrapups[agent] = self.loop.call_later(cfg.wrapup, self._wrapup_done, agent)
        else:
            self._wrapup_done(agent)

    def _wrapup_done(self, agent: str) -> None:
        self._wrapups.pop(agent, None)
        self.engine.wrapup_done(agent)
        self.kick()

    def default_queue(self) -> str:
        """Where callbacks asked for without a queue go: the first queue by name ("" when there is none)."""
        return min(self.engine.queues, default="")

    def to_ivr(self, caller: QueueCaller, menu: str) -> None:
        """A destination sends the caller to an IVR menu."""
        caller.detach()
        if not self.handover.to_menu(caller.call, menu):
            caller.call.hangup(None)

    def to_queue(self, caller: QueueCaller, name: str) -> None:
        """A destination sends the caller to another queue (they start at its end)."""
        caller.detach()
        if self.join(caller.call, name) is not None:
            caller.call.hangup(None)

    def hold_music(self, cfg: QueueConfig) -> Prompt | None:
        """The queue's music, looped; None if it cannot be loaded."""
        try:
            return self.prompts.get(cfg.hold_music).looped()
        except PromptError as exc:
            log.error("queue %s: hold music %r unavailable: %s", cfg.name, cfg.hold_music, exc)
            return None

    # --- facts ------------------------------------------------------------------------
    def is_open(self, name: str) -> bool:
        """Whether queue name is within its business hours now (cached for a moment)."""
        cfg = self.engine.queues.get(name)
        if cfg is None or not cfg.hours:
            return True
        now = self.loop.time()
        hit = self._hours.get(name)
        if hit is None or hit[0] <= now:
            hours = store_ivr.get_hours(self.db, cfg.hours)
            is_open = True if hours is None else hours.is_open(datetime.now(timezone.utc))
            hit = (now + HOURS_CACHE_SECONDS, is_open)
            self._hours[name] = hit
        return hit[1]

    def _is_vip(self, number: str) -> bool:
        return bool(number) and customer_store.customer_segment(self.db, number) == "vip"

    def status(self, queue: str | None = None) -> dict:
        """Live state for `switchboard queue status`."""
        queues = self.engine.snapshot(queue)
        names = {ext["number"]: ext.get("name") or "" for ext in directory.list_extensions(self.db)}
        for item in queues:
            item["open"] = self.is_open(item["name"])
            for agent in item.get("agents", []):
                agent["name"] = names.get(agent["extension"], "")
            item["callbacks"] = [
                {key: row.get(key) for key in ("id", "number", "name", "position_at", "due_at", "attempts",
                                               "state", "next_attempt_at")}
                for row in store_callbacks.list_callbacks(self.db, states=("pending", "dialing"), queue=item["name"])]
        return {"queues": queues, "live": True}

    def control(self, command: str, args: dict) -> dict:
        """Commands from the control socket."""
        if command == "queue_status":
            name = args.get("queue")
            if name and name not in self.engine.queues:
                raise ValueError(f"no queue named {name}")
            return self.status(name)
        if command == "agent":
            return self.agent_action(str(args["extension"]), str(args["action"]), args.get("queue"),
                                     args.get("reason") or "")
        if command == "reload":
            self.reload()
            return {}
        if command == "cancel_callback":
            return {"cancelled": self.cancel_callback(str(args["id"]), str(args.get("by") or "the command line"))}
        raise ValueError(f"unknown command {command!r}")
