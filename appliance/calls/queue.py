"""The queue engine: agents' states, the line per queue, ring strategies, expected wait (pure, no I/O)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

__all__ = [
    "AGENT_STATES",
    "BUSY_STATES",
    "DEFAULT_AHT",
    "HANDLING_SAMPLES",
    "STRATEGIES",
    "Agent",
    "Entry",
    "Offer",
    "QueueDefinition",
    "QueueEngine",
    "QueueMember",
]

AGENT_STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused")
BUSY_STATES = ("", "ringing", "on_call", "wrap_up")
STRATEGIES = ("ring-all", "longest-idle", "round-robin", "fewest-calls", "tiered")
HANDLING_SAMPLES = 20
"""Talk times kept per queue for the average handling time."""
DEFAULT_AHT = 120.0
"""Average handling time (seconds) assumed until a queue has answered calls."""
MISSED_CALLS = "missed calls"


class QueueMember(Protocol):
    """A member of a queue as the engine reads it (queue_config.Member)."""

    @property
    def extension(self) -> str: ...
    @property
    def tier(self) -> int: ...


class QueueDefinition(Protocol):
    """A queue definition as the engine reads it (queue_config.QueueConfig)."""

    @property
    def name(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def members(self) -> tuple[QueueMember, ...]: ...
    @property
    def vip_priority(self) -> bool: ...
    @property
    def vip_tier(self) -> int: ...
    @property
    def max_misses(self) -> int: ...
    def member(self, extension: str) -> QueueMember | None: ...


@dataclass
class Agent:
    """An extension that can take queue calls: its logins, pause and what it is doing now."""

    extension: str
    queues: set[str] = field(default_factory=set)
    paused: bool = False
    reason: str = ""
    busy: str = ""
    idle_since: float = 0.0
    answered_today: int = 0
    day: str = ""
    misses_in_row: int = 0

    @property
    def state(self) -> str:
        """One of AGENT_STATES."""
        if self.busy:
            return self.busy
        if not self.queues:
            return "logged_out"
        return "paused" if self.paused else "available"


@dataclass
class Entry:
    """A caller or a callback in a queue's line."""

    id: str
    queue: str
    kind: str
    number: str
    position_at: float
    vip: bool = False
    name: str = ""
    eligible_at: float = 0.0
    entered_at: float = 0.0
    seq: int = 0
    tried: set[str] = field(default_factory=set)
    ringing: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Offer:
    """Ring these agents for this entry."""

    entry: Entry
    agents: tuple[str, ...]


def _look(agent: Agent) -> tuple[frozenset[str], bool, str, str]:
    """What on_agent reports: a change in any of these is one notification."""
    return frozenset(agent.queues), agent.paused, agent.reason, agent.busy


class QueueEngine:
    """All queues' live state on one loop: who waits, who is free, who to ring next."""

    def __init__(
        self,
        queues: Mapping[str, QueueDefinition],
        now: Callable[[], float] = time.time,
        is_open: Callable[[str], bool] = lambda queue: True,
        today: Callable[[], str] | None = None,
        on_agent: Callable[[Agent], None] | None = None,
    ) -> None:
        self.queues: dict[str, QueueDefinition] = {}
        self.agents: dict[str, Agent] = {}
        self._now = now
        self._is_open = is_open
        self._today = today or (lambda: date.fromtimestamp(now()).isoformat())
        self._on_agent = on_agent
        self._entries: dict[str, Entry] = {}
        self._seq = 0
        self._handling: dict[str, deque[float]] = {}
        self._last_offered: dict[str, str] = {}
        self.configure(queues)

    # --- agents ---

    def configure(self, queues: Mapping[str, QueueDefinition]) -> None:
        """New definitions; logins to vanished queues or by ex-members are dropped; entries stay."""
        for name, queue in queues.items():
            if queue.strategy not in STRATEGIES:
                raise ValueError(f"queue {name}: unknown strategy {queue.strategy!r}")
        self.queues = dict(queues)
        for agent in self.agents.values():
            before = _look(agent)
            agent.queues = {q for q in agent.queues if self._is_member(agent.extension, q)}
            self._changed(agent, before)

    def login(self, extension: str, queue: str) -> bool:
        """Log in to one queue; ValueError if there is no such queue or the extension is not a member."""
        if queue not in self.queues:
            raise ValueError(f"no queue {queue!r}")
        if not self._is_member(extension, queue):
            raise ValueError(f"{extension} is not a member of queue {queue}")
        agent = self.agents.setdefault(extension, Agent(extension))
        before = _look(agent)
        if not agent.queues:
            agent.idle_since = self._now()
        agent.queues.add(queue)
        return self._changed(agent, before)

    def logout(self, extension: str, queue: str | None = None) -> bool:
        """Log out of one queue, or of all (None)."""
        agent = self.agents.get(extension)
        if agent is None:
            return False
        before = _look(agent)
        if queue is None:
            agent.queues.clear()
        else:
            agent.queues.discard(queue)
        return self._changed(agent, before)

    def pause(self, extension: str, reason: str = "paused") -> bool:
        """Pause the agent in all queues (a new reason replaces the old one)."""
        agent = self._agent_for(extension)
        if agent is None:
            return False
        before = _look(agent)
        agent.paused, agent.reason = True, reason
        return self._changed(agent, before)

    def unpause(self, extension: str) -> bool:
        """End the pause: misses start again from zero and the agent is idle from now."""
        agent = self.agents.get(extension)
        if agent is None or not agent.paused:
            return False
        before = _look(agent)
        agent.paused, agent.reason = False, ""
        agent.misses_in_row = 0
        agent.idle_since = self._now()
        return self._changed(agent, before)

    def agent(self, extension: str) -> Agent | None:
        """The agent, if the engine knows the extension."""
        return self.agents.get(extension)

    def members_logged_in(self, queue: str) -> list[Agent]:
        """Members logged in to the queue, in member order, whatever their state."""
        definition = self.queues.get(queue)
        if definition is None:
            return []
        agents = (self.agents.get(m.extension) for m in definition.members)
        return [a for a in agents if a is not None and queue in a.queues]

    def staffed(self, queue: str) -> int:
        """Members logged in to the queue and not paused."""
        return sum(1 for a in self.members_logged_in(queue) if not a.paused)

    def set_busy(self, extension: str, busy: str) -> None:
        """Calls outside the queue ("on_call" / ""): a busy agent is not offered; free again = idle from now."""
        if busy not in BUSY_STATES:
            raise ValueError(f"busy must be one of {BUSY_STATES}, got {busy!r}")
        agent = self._agent_for(extension)
        if agent is None:
            return
        before = _look(agent)
        if agent.busy and not busy:
            agent.idle_since = self._now()
        agent.busy = busy
        self._changed(agent, before)

    # --- the line ---

    def add(self, entry: Entry) -> int:
        """Put a caller or callback in line (ValueError if its id is already there); returns its position."""
        if entry.id in self._entries:
            raise ValueError(f"entry {entry.id} is already in line")
        self._seq += 1
        entry.seq = self._seq
        entry.entered_at = entry.entered_at or entry.position_at
        self._entries[entry.id] = entry
        return self.position(entry.id)

    def remove(self, entry_id: str) -> Entry | None:
        """Take an entry out of line; agents ringing for it are left alone (cancel their offers first)."""
        return self._entries.pop(entry_id, None)

    def entry(self, entry_id: str) -> Entry | None:
        """The entry in line with this id."""
        return self._entries.get(entry_id)

    def waiting(self, queue: str) -> list[Entry]:
        """The queue's line, first to be served first."""
        return sorted((e for e in self._entries.values() if e.queue == queue), key=self._line_key)

    def position(self, entry_id: str) -> int:
        """1-based place in its queue's line (every entry ahead counts, callbacks too); 0 if not in line."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return 0
        key = self._line_key(entry)
        return 1 + sum(1 for e in self._entries.values() if e.queue == entry.queue and self._line_key(e) < key)

    def expected_wait(self, queue: str, position: int) -> float:
        """Seconds: ceil(position / max(1, staffed)) x AHT."""
        return math.ceil(position / max(1, self.staffed(queue))) * self.aht(queue)

    def record_handling(self, queue: str, seconds: float) -> None:
        """One more answered call's talk time."""
        self._handling.setdefault(queue, deque(maxlen=HANDLING_SAMPLES)).append(seconds)

    def seed_handling(self, queue: str, seconds: list[float]) -> None:
        """Talk times from the store at start, newest first (as store.queues.recent_handling_times gives them)."""
        self._handling[queue] = deque(reversed(seconds[:HANDLING_SAMPLES]), maxlen=HANDLING_SAMPLES)

    def aht(self, queue: str) -> float:
        """Average handling time of the queue's last answered calls."""
        samples = self._handling.get(queue)
        return sum(samples) / len(samples) if samples else DEFAULT_AHT

    # --- offers ---

    def dispatch(self) -> list[Offer]:
        """Decide who rings for what now; the chosen agents are marked ringing."""
        now, day = self._now(), self._today()
        free = {ext for ext, a in self.agents.items() if a.state == "available"}
        offers: list[Offer] = []
        for entry in sorted(self._entries.values(), key=self._line_key):
            if not free:
                break
            if entry.ringing or not self._eligible(entry, now):
                continue
            chosen = self._choose(entry, free, day)
            if not chosen:
                continue  # nobody for this one; those behind may still find someone
            self._last_offered[entry.queue] = chosen[-1]
            for extension in chosen:
                agent = self.agents[extension]
                before = _look(agent)
                agent.busy = "ringing"
                entry.ringing.add(extension)
                free.discard(extension)
                self._changed(agent, before)
            offers.append(Offer(entry, tuple(chosen)))
        self._start_new_rounds()
        return offers

    def offer_answered(self, entry_id: str, extension: str) -> list[str]:
        """The agent took the entry: it leaves the line; returns the others that rang for it, now free."""
        entry = self._entries.pop(entry_id, None)
        others = sorted(entry.ringing - {extension}) if entry else []
        if entry:
            entry.ringing.clear()
        for other in others:
            agent = self.agents.get(other)
            if agent is not None and agent.busy == "ringing":
                before = _look(agent)
                agent.busy = ""
                self._changed(agent, before)
        agent = self.agents.get(extension)
        if agent is not None:
            before = _look(agent)
            agent.busy = "on_call"
            self._roll_day(agent, self._today())
            agent.answered_today += 1
            agent.misses_in_row = 0
            self._changed(agent, before)
        return others

    def offer_missed(self, entry_id: str, extension: str, miss: bool = True) -> bool:
        """The offer ended unanswered; with miss=True the agent skips this entry and True = now auto-paused."""
        entry = self._entries.get(entry_id)
        if entry is not None:
            entry.ringing.discard(extension)
            if miss:
                entry.tried.add(extension)
        agent = self.agents.get(extension)
        if agent is None:
            return False
        before = _look(agent)
        if agent.busy == "ringing":
            agent.busy = ""
        paused = False
        if miss:
            agent.misses_in_row += 1
            if not agent.paused and self._too_many_misses(agent):
                agent.paused, agent.reason, paused = True, MISSED_CALLS, True
        self._changed(agent, before)
        return paused

    def call_ended(self, extension: str) -> None:
        """The agent's queue call ended: on_call -> wrap_up."""
        self._move(extension, "on_call", "wrap_up")

    def wrapup_done(self, extension: str) -> None:
        """Wrap-up is over: wrap_up -> available, idle from now."""
        agent = self.agents.get(extension)
        if agent is not None and agent.busy == "wrap_up":
            agent.idle_since = self._now()
        self._move(extension, "wrap_up", "")

    # --- views ---

    def snapshot(self, queue: str | None = None) -> list[dict]:
        """Queues with their line and their members' states, for the CLI and the web page."""
        names = list(self.queues) if queue is None else [queue] if queue in self.queues else []
        now, day = self._now(), self._today()
        return [self._queue_view(name, now, day) for name in names]

    # --- inner workings ---

    def _queue_view(self, name: str, now: float, day: str) -> dict:
        definition = self.queues[name]
        waiting = [
            {
                "id": e.id, "kind": e.kind, "number": e.number, "name": e.name, "vip": e.vip,
                "position": place, "wait": now - e.entered_at, "ringing": sorted(e.ringing),
            }
            for place, e in enumerate(self.waiting(name), start=1)
        ]
        agents = []
        for member in definition.members:
            agent = self.agents.get(member.extension)
            # A member logged in elsewhere but not here is logged out as far as this queue goes.
            state = agent.state if agent is not None and name in agent.queues else "logged_out"
            agents.append({
                "extension": member.extension,
                "state": state,
                "reason": agent.reason if state == "paused" else "",
                "answered_today": agent.answered_today if agent is not None and agent.day == day else 0,
            })
        return {"name": name, "strategy": definition.strategy, "waiting": waiting, "agents": agents}

    def _line_key(self, entry: Entry) -> tuple[int, float, int]:
        definition = self.queues.get(entry.queue)
        ahead = entry.vip and definition is not None and definition.vip_priority
        return (0 if ahead else 1, entry.position_at, entry.seq)

    def _eligible(self, entry: Entry, now: float) -> bool:
        if entry.queue not in self.queues or entry.eligible_at > now:
            return False
        return entry.kind != "callback" or self._is_open(entry.queue)

    def _choose(self, entry: Entry, free: set[str], day: str) -> list[str]:
        definition = self.queues[entry.queue]
        candidates = [
            m for m in definition.members
            if m.extension in free and entry.queue in self.agents[m.extension].queues
            and m.extension not in entry.tried
        ]
        if entry.vip:
            candidates = [m for m in candidates if m.tier == definition.vip_tier] or candidates
        if not candidates:
            return []
        agents = self.agents

        def idle(m: QueueMember) -> float:
            return agents[m.extension].idle_since

        strategy = definition.strategy
        if strategy == "ring-all":
            return [m.extension for m in candidates]
        if strategy == "longest-idle":
            best = min(candidates, key=idle)
        elif strategy == "fewest-calls":
            best = min(candidates, key=lambda m: (self._roll_day(agents[m.extension], day), idle(m)))
        elif strategy == "tiered":
            best = min(candidates, key=lambda m: (m.tier, idle(m)))
        else:  # round-robin
            order = [m.extension for m in definition.members]
            last = self._last_offered.get(entry.queue)
            start = order.index(last) + 1 if last in order else 0
            wanted = {m.extension for m in candidates}
            return [next(ext for ext in order[start:] + order[:start] if ext in wanted)]
        return [best.extension]

    def _start_new_rounds(self) -> None:
        # Runs after the offers are made, so an entry every staffed agent has missed is offered to
        # them again from the NEXT dispatch on: the agent who just missed it is not rung straight
        # back. The glue must therefore dispatch again later (any event, or a periodic tick).
        # Paused agents do not count: an entry must not wait for someone who cannot take it.
        for entry in self._entries.values():
            if entry.tried and not entry.ringing:
                staffed = {a.extension for a in self.members_logged_in(entry.queue) if not a.paused}
                if staffed <= entry.tried:
                    entry.tried.clear()

    def _too_many_misses(self, agent: Agent) -> bool:
        limits = (self.queues[q].max_misses for q in agent.queues if q in self.queues)
        return any(0 < limit <= agent.misses_in_row for limit in limits)

    def _roll_day(self, agent: Agent, day: str) -> int:
        """The agent's answered_today, started again from 0 on a new day."""
        if agent.day != day:
            agent.day, agent.answered_today = day, 0
        return agent.answered_today

    def _move(self, extension: str, old: str, new: str) -> None:
        agent = self.agents.get(extension)
        if agent is not None and agent.busy == old:
            before = _look(agent)
            agent.busy = new
            self._changed(agent, before)

    def _is_member(self, extension: str, queue: str) -> bool:
        definition = self.queues.get(queue)
        return definition is not None and definition.member(extension) is not None

    def _agent_for(self, extension: str) -> Agent | None:
        """The known agent, or a new one if the extension is a member of some queue."""
        agent = self.agents.get(extension)
        if agent is None and any(self._is_member(extension, q) for q in self.queues):
            agent = self.agents[extension] = Agent(extension)
        return agent

    def _changed(self, agent: Agent, before: tuple) -> bool:
        """Tell on_agent if what it reports changed; True if it did."""
        if _look(agent) == before:
            return False
        if self._on_agent is not None:
            self._on_agent(agent)
        return True
