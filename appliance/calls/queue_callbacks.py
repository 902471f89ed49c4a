"""The queues' callbacks: asked for, stored, checked against the outbound policy, dialled and recorded."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from appliance.calls.callback_run import CallbackRun
from appliance.calls.outbound_policy import Decision
from appliance.calls.queue import Entry
from appliance.calls.queue_caller import QueueCaller
from appliance.calls.records import CallInfo
from appliance.sip.targets import Target
from appliance.store import callbacks as store_callbacks
from appliance.store import calls as store_calls
from appliance.store import directory
from appliance.store.db import from_iso


log = logging.getLogger("switchboard.queue")
RETRY_SECONDS = 3.0  # after every agent missed a caller, the round starts again this much later
REFUSED_STATUSES = (403, 404, 484)  # the dial plan refused the call: no callback may revive it


def _epoch(text: str | None) -> float:
    return from_iso(text).timestamp() if text else 0.0


class QueueCallbacks:
    """The callback half of QueueService: CallbackRun's host (queue_hosts.CallbackHost)."""

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
