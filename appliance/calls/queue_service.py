"""The queues at work: the engine's decisions turned into calls, records, events and callbacks."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

from appliance.bus import Event, EventBus
from appliance.calls.answering import open_channel
from appliance.calls.callback_run import CallbackRun
from appliance.calls.callback_scheduler import CallbackScheduler
from appliance.calls.ivr_calls import IvrDestination
from appliance.calls.ivr_config import Action
from appliance.calls.outbound_policy import Decision, OutboundPolicy
from appliance.calls.queue import Agent, Entry, QueueEngine
from appliance.calls.queue_caller import QueueCaller
from appliance.calls.queue_config import QueueConfig
from appliance.calls.records import CallInfo, CallLog
from appliance.calls.router import FEATURE_CODES, Route
from appliance.calls.speech import Speech
from appliance.media.prompts import Prompt, PromptError, PromptLibrary
from appliance.calls.b2bua import B2BUA
from appliance.calls.bridge import Call
from appliance.sip.targets import TrunkPeer
from appliance.sip.sdp_local import MediaChoice
from appliance.sip.transport import Peer
from appliance.store import callbacks as store_callbacks
from appliance.store import calls as store_calls
from appliance.store import directory
from appliance.calls import ivr_definitions as store_ivr
from appliance.store import queues as store_queues
from appliance.calls import queue_definitions
from appliance.crm import customer_store
from appliance.store.db import from_iso

__all__ = ["QueueService"]

log = logging.getLogger("switchboard.queue")

HOURS_CACHE_SECONDS = 2.0
RETRY_SECONDS = 3.0  # after every agent missed a caller, the round starts again this much later
CUSTOMER_RING_SECONDS = 45.0
REFUSED_STATUSES = (403, 404, 484)  # the dial plan refused the call: no callback may revive it
FEATURE_PROMPTS = {"login": "agent_logged_in", "logout": "agent_logged_out", "pause": "agent_paused",
                   "unpause": "agent_unpaused"}
Target = tuple[str, Peer, str, TrunkPeer | None]


def _epoch(text: str | None) -> float:
    return from_iso(text).timestamp() if text else 0.0


class QueueService:
    """Owns the QueueEngine on the loop: callers, agents, offers, callbacks and their bookkeeping."""

    def __init__(self, loop: asyncio.AbstractEventLoop, b2bua: B2BUA, db: Any, prompts: PromptLibrary,
                 bus: EventBus, call_log: CallLog, ivr: IvrDestination | None,
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
        self.ivr = ivr
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

    def _load_callbacks(self) -> None:
        rows = store_callbacks.list_callbacks(self.db, states=("pending",))
        pending = {row["id"] for row in rows}
        for cfg in self.engine.queues.values():
            for entry in self.engine.waiting(cfg.name):
                if entry.kind == "callback" and entry.id not in pending and entry.id not in self.runs:
                    self.engine.remove(entry.id)  # cancelled or finished elsewhere
                    self.scheduler.cancel(entry.id)
        for row in rows:
            if row["queue"] in self.engine.queues and row["id"] not in self.runs:
                self._queue_callback(row)

    def _queue_callback(self, row: dict) -> None:
        """Put a pending callback in its line (or refresh it there) and schedule its wake-up."""
        eligible = max(_epoch(row.get("due_at")), _epoch(row.get("next_attempt_at")))
        entry = self.engine.entry(row["id"])
        if entry is None:
            entry = Entry(id=row["id"], queue=row["queue"], kind="callback", number=row["number"],
                          position_at=_epoch(row["position_at"]), vip=self._is_vip(row["number"]),
                          name=row.get("name") or "", eligible_at=eligible)
            self.engine.add(entry)
        else:
            entry.eligible_at = eligible
        if eligible > self.now():
            self.scheduler.at(row["id"], datetime.fromtimestamp(eligible, timezone.utc))

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

    def store_callback(self, caller: QueueCaller, number: str) -> str:
        """The caller asked to be called back: the request keeps the caller's place in line."""
        info = caller.call.info
        callback_id, created = store_callbacks.request_callback(
            self.db, number=number, name=info.display_name or None, queue=caller.cfg.name,
            source=f"queue:{caller.cfg.name}", call_id=info.record_id, line=info.line,
            position_at=datetime.fromtimestamp(caller.position_at, timezone.utc))
        self.leave_line(caller, "callback", callback_id)
        row = store_callbacks.get_callback(self.db, callback_id)
        if row is not None and callback_id not in self.runs:
            self._queue_callback(row)
        self.call_log.note(info, callback_id=callback_id)
        self.bus.publish("callback.requested", callback_id=callback_id, number=number, queue=caller.cfg.name,
                         created=created, call_id=info.record_id)
        log.info("call %s: callback %s for %s in queue %s (%s)", info.record_id, callback_id, number,
                 caller.cfg.name, "new" if created else "updated")
        self.kick()
        return callback_id

    def callback_from_ivr(self, info: CallInfo, number: str, queue: str, source: str) -> str:
        """An IVR key asked for a callback: it joins the named queue's line (or the default queue's) now.

        ValueError when the outbound policy refuses the number.
        """
        decision = self.callback_decision(number, info.line)
        if not decision.allowed:
            raise ValueError(decision.reason)
        name = queue or self.default_queue()
        callback_id, created = store_callbacks.request_callback(
            self.db, number=number, name=info.display_name or None, queue=name, source=source,
            call_id=info.record_id, line=info.line)
        row = store_callbacks.get_callback(self.db, callback_id)
        if name in self.engine.queues and row is not None and callback_id not in self.runs:
            self._queue_callback(row)
            self.kick()
        elif name not in self.engine.queues:
            log.warning("callback %s for %s: no queue to run it (define a [[queue]])", callback_id, number)
        self.bus.publish("callback.requested", callback_id=callback_id, number=number, queue=name,
                         created=created, call_id=info.record_id)
        return callback_id

    def callback_for_call(self, call_id: str, at: str, agent_extension: str) -> str:
        """A wrap-up asked to call the customer back at a time: in the call's queue, else the agent's or the default.

        The callback has the agent's extension's dialling rights, and a call the policy refused gets none.
        """
        call = store_calls.get_call(self.db, call_id)
        if call is None:
            raise ValueError(f"no call {call_id}")
        if call["answered_at"] is None and call["sip_status"] in REFUSED_STATUSES:
            log.warning("wrap-up callback for call %s refused: the call itself was refused (%s)",
                        call_id, call["sip_status"])
            raise ValueError("no callback for a call that was refused")
        number = call["to_number"] if call["direction"] == "outbound" else call["from_number"]
        decision = self.callback_decision(number, call["line"], agent_extension)
        if not decision.allowed:
            raise ValueError(f"cannot call {number} back: {decision.reason}")
        queue = store_calls.queue_of_call(self.db, call_id)
        if queue not in self.engine.queues:
            agent = call["answered_by"] or ""
            queue = next((cfg.name for cfg in sorted(self.engine.queues.values(), key=lambda c: c.name)
                          if cfg.member(agent) is not None), self.default_queue())
        if not queue:
            raise ValueError("no queue to run the callback: the office has no [[queue]]")
        callback_id, created = store_callbacks.schedule_callback(
            self.db, number=number, queue=queue, at=from_iso(at), name=call["from_name"] or None,
            line=call["line"], source=f"wrapup:{call_id}", dial_as=agent_extension)
        row = store_callbacks.get_callback(self.db, callback_id)
        if row is not None and callback_id not in self.runs:
            self._queue_callback(row)
        self.bus.publish("callback.requested", callback_id=callback_id, number=number, queue=queue,
                         created=created, call_id=call_id)
        self.kick()
        return callback_id

    def callback_decision(self, number: str, line: str | None, dial_as: str | None = None) -> Decision:
        """Whether a callback may dial `number`: an office extension always; outside, the outbound policy.

        dial_as names the extension whose rights apply (an agent's wrap-up); None: the box's callback policy.
        """
        if (line or "") in ("", "internal") and directory.get_extension(self.db, number) is not None:
            return Decision(True, number, "internal")
        on_behalf_of = None
        if dial_as:
            on_behalf_of = directory.get_extension(self.db, dial_as)
            if on_behalf_of is None:
                return Decision(False, number, "unknown", f"Forbidden (extension {dial_as} no longer exists)")
        return self.policy.check_callback(number, on_behalf_of)

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        """Cancel a pending callback (CLI or supervisor page): out of the line and its timer at once."""
        if not store_callbacks.cancel_callback(self.db, callback_id):
            return False
        self._forget_callback(callback_id)
        self.bus.publish("callback.cancelled", callback_id=callback_id, by=by)
        log.info("callback %s cancelled by %s", callback_id, by)
        self.kick()
        return True

    def _forget_callback(self, callback_id: str) -> None:
        """A callback that will not run: out of the line and off the scheduler."""
        self.engine.remove(callback_id)
        self.scheduler.cancel(callback_id)

    def default_queue(self) -> str:
        """Where callbacks asked for without a queue go: the first queue by name ("" when there is none)."""
        return min(self.engine.queues, default="")

    def to_ivr(self, caller: QueueCaller, menu: str) -> None:
        """A destination sends the caller to an IVR menu."""
        caller.detach()
        if self.ivr is None:
            caller.call.hangup(None)
            return
        self.ivr.enter(caller.call, menu)

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

    # --- callbacks --------------------------------------------------------------------
    def callback_due(self, callback_id: str) -> None:
        """APScheduler: a callback's time (or retry time) has come."""
        entry = self.engine.entry(callback_id)
        if entry is not None:
            entry.eligible_at = 0.0
        self.kick()

    def _run_callback(self, entry: Entry, agents: tuple[str, ...]) -> None:
        row = store_callbacks.claim(self.db, entry.id)
        if row is None:  # no longer pending (cancelled from the CLI, or done): it cannot run twice
            self._release(entry, agents, "cancelled")
            self.engine.remove(entry.id)
            return
        decision = self.callback_decision(row["number"], row.get("line"), row.get("dial_as"))
        if not decision.allowed:  # checked again at dial time: a stored row may predate the policy
            store_callbacks.refuse(self.db, entry.id, decision.reason)
            self._release(entry, agents, "cancelled")
            self._forget_callback(entry.id)
            self.bus.publish("callback.failed", callback_id=entry.id, number=row["number"], queue=entry.queue,
                             status="refused", attempts=row["attempts"])
            self.kick()
            return
        cfg = self.engine.queues[entry.queue]
        run = CallbackRun(self, entry, row, cfg)
        self.bus.publish("callback.dialing", callback_id=entry.id, number=row["number"], queue=entry.queue,
                         agents=list(agents), attempt=row["attempts"])
        log.info("callback %s for %s: attempt %d, ringing %s", entry.id, row["number"], row["attempts"],
                 ", ".join(agents))
        self.runs[entry.id] = run
        try:
            run.start(agents)
        except Exception:
            self.runs.pop(entry.id, None)
            store_callbacks.release(self.db, entry.id)
            raise

    def note_record(self, run: CallbackRun, record_id: str) -> None:
        """Point the callback at the call record of this attempt."""
        store_callbacks.set_record(self.db, run.callback_id, record_id)

    def callback_not_started(self, run: CallbackRun) -> None:
        """No offered agent had a phone: the claim is undone."""
        self.runs.pop(run.callback_id, None)
        store_callbacks.release(self.db, run.callback_id)

    def callback_agent_missed(self, run: CallbackRun, agents: tuple[str, ...], status: int) -> None:
        """The agents did not answer: their miss; the callback keeps its place, the attempt does not count."""
        self.runs.pop(run.callback_id, None)
        store_callbacks.release(self.db, run.callback_id)
        for agent in agents:
            self._end_offer(run.entry, agent, "missed")
            if self.engine.offer_missed(run.entry.id, agent, miss=True):
                self._auto_paused(agent)
        self.kick()
        self.loop.call_later(RETRY_SECONDS, self.kick)

    def callback_agent_answered(self, run: CallbackRun, agent: str) -> None:
        """An agent took the callback: it leaves the line while the customer is dialled."""
        others = self.engine.offer_answered(run.entry.id, agent)
        self._end_offer(run.entry, agent, "answered")
        for other in others:
            self._end_offer(run.entry, other, "cancelled")
        self.kick()

    def callback_completed(self, run: CallbackRun) -> None:
        """The customer answered: done."""
        store_callbacks.complete(self.db, run.callback_id, run.agent, run.out.info.record_id if run.out else None)
        self.scheduler.cancel(run.callback_id)
        self.bus.publish("callback.completed", callback_id=run.callback_id, number=run.row["number"],
                         queue=run.entry.queue, agent=run.agent)
        log.info("callback %s: %s connected to %s", run.callback_id, run.row["number"], run.agent)

    def callback_attempt_failed(self, run: CallbackRun, status: str) -> None:
        """The customer did not answer: retry later, or give up after the last attempt."""
        cfg = run.cfg
        attempts = int(run.row.get("attempts") or 1)
        retry_at = None
        if attempts < cfg.callback_attempts:
            retry_at = datetime.fromtimestamp(self.now() + cfg.callback_retry, timezone.utc)
        state = store_callbacks.attempt_failed(self.db, run.callback_id, status, retry_at)
        if run.out is not None:
            self.call_log.note(run.out.info, callback_outcome=status)
        if state == "pending":
            row = store_callbacks.get_callback(self.db, run.callback_id)
            if row is not None:
                self._queue_callback(row)
            self.bus.publish("callback.retry", callback_id=run.callback_id, number=run.row["number"],
                             queue=run.entry.queue, status=status, attempt=attempts,
                             retry_at=retry_at.isoformat() if retry_at else None)
            log.info("callback %s: %s (attempt %d of %d); retry at %s", run.callback_id, status, attempts,
                     cfg.callback_attempts, retry_at)
        else:
            self.bus.publish("callback.failed", callback_id=run.callback_id, number=run.row["number"],
                             queue=run.entry.queue, status=status, attempts=attempts)
            log.warning("callback %s for %s failed after %d attempts (%s)", run.callback_id, run.row["number"],
                        attempts, status)

    def callback_interrupted(self, run: CallbackRun, who: str) -> None:
        """The agent hung up before the customer answered: the callback waits again in its place."""
        store_callbacks.release(self.db, run.callback_id)
        row = store_callbacks.get_callback(self.db, run.callback_id)
        if row is not None and row["state"] == "pending":
            self._queue_callback(row)
            entry = self.engine.entry(run.callback_id)
            if entry is not None and run.agent:
                entry.tried.add(run.agent)  # that agent said no for now: others first, them again later
            self.loop.call_later(RETRY_SECONDS, self.kick)
        log.info("callback %s: interrupted by the %s before the customer answered", run.callback_id, who)

    def callback_finished(self, run: CallbackRun) -> None:
        """The callback's calls are over: the agent goes to wrap-up."""
        self.runs.pop(run.callback_id, None)
        talk = self.now() - run.bridged_at if run.bridged_at else None
        self._agent_done(run.agent, run.cfg, talk)
        self.kick()

    def customer_targets(self, row: dict) -> list[Target]:
        """Where to dial a callback's customer: the trunk the call came in on, or an extension."""
        number, line = row["number"], row.get("line") or ""
        if line in ("", "internal") and directory.get_extension(self.db, number) is not None:
            return [(b.request_uri(), b.source, number, None) for b in self.b2bua.location.lookup(number)]
        trunk = self.trunk_by_name(line) if line not in ("", "internal") else None
        if trunk is None:
            names = self.line_names()
            trunk = next((self.trunk_by_name(n) for n in names if self.trunk_by_name(n) is not None), None)
        if trunk is None:
            log.error("callback %s: no trunk to dial %s on", row["id"], number)
            return []
        return [(f"sip:{number}@{trunk.domain}", trunk.peer, trunk.name, trunk)]

    # --- agents -----------------------------------------------------------------------
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
