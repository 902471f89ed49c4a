"""What one signed-in user's screen hears: bus events turned into screen-pop messages."""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from appliance.bus import Event

CALL_TOPICS = ("call.ringing", "call.answered", "call.connected", "call.ended")
SUPERVISOR_ROLES = ("admin", "supervisor")

Message = tuple[int, str, dict]
"""(event id, SSE event name, JSON data)."""


class CardCache:
    """Cards built once per call and shared by every tab and agent that the call rings."""

    def __init__(self, build: Callable[[str, str | None], dict | None], size: int = 64) -> None:
        self._build = build
        self._cards: OrderedDict[tuple[str, str | None], dict | None] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, call_id: str, extension: str | None) -> dict | None:
        """The card for this call as shown at this extension."""
        key = (call_id, extension)
        with self._lock:
            if key in self._cards:
                self._cards.move_to_end(key)
                return self._cards[key]
        card = self._build(call_id, extension)  # outside the lock: the store has its own
        with self._lock:
            self._cards[key] = card
            while len(self._cards) > self._size:
                self._cards.popitem(last=False)
        return card


class UserFeed:
    """Filters the bus for one user: their extension's calls and state, and alerts for supervisors."""

    def __init__(self, user: dict, cards: CardCache) -> None:
        self.extension: str | None = user.get("extension") or None
        self.supervisor = user.get("role") in SUPERVISOR_ROLES
        self.cards = cards
        self.calls: set[str] = set()  # calls that rang at this extension
        self.recent: deque[str] = deque(maxlen=50)  # and the latest ones, ended too (their wrap-up may be open)

    def replay(self, events: list[Event], since: int | None) -> list[Message]:
        """Messages for a (re)connecting screen: everything after `since`, else the calls still going on."""
        if since is not None:
            return [m for e in events if e.seq > since for m in self.translate(e)]
        ended = {e.data.get("call_id") for e in events if e.topic == "call.ended"}
        live = [e for e in events if e.topic.startswith("call.") and e.data.get("call_id") not in ended]
        return [m for e in live for m in self.translate(e)]

    def translate(self, event: Event) -> list[Message]:
        """Zero or more messages for this user."""
        topic, data = event.topic, event.data
        if topic in CALL_TOPICS:
            return self._call(event)
        if topic == "agent.state" and data.get("extension") == self.extension:
            return [(event.seq, "agent", _pick(data, "extension", "state", "reason", "queues"))]
        if topic == "crm.customer" and (data.get("call_id") in self.calls or data.get("call_id") in self.recent):
            return [(event.seq, "customer", _pick(data, "call_id", "customer_id"))]
        if topic == "wrapup.saved" and data.get("agent") == self.extension:
            return [(event.seq, "wrapup_saved", _pick(data, "call_id", "outcome"))]
        if self.supervisor and topic == "crm.alert":
            return [(event.seq, "alert", dict(data))]
        if self.supervisor and topic.startswith(("queue.", "agent.", "callback.")):
            return [(event.seq, "queue", {"topic": topic})]
        return []

    def _call(self, event: Event) -> list[Message]:
        data = event.data
        call_id = data.get("call_id")
        if not isinstance(call_id, str) or self.extension is None:
            return []
        if event.topic == "call.ringing" and data.get("extension") == self.extension:
            self.calls.add(call_id)
            self.recent.append(call_id)
            card = self.cards.get(call_id, self.extension)
            if card is None:
                return []
            return [(event.seq, "card", {**card, "ringing_at": event.ts})]
        mine = self.extension in (data.get("extension"), data.get("answered_by"))
        if call_id not in self.calls and not mine:
            return []
        if event.topic in ("call.answered", "call.connected"):
            who = data.get("answered_by")
            return [(event.seq, "answered", {"call_id": call_id, "answered_by": who,
                                             "mine": who == self.extension, "at": event.ts})]
        if event.topic == "call.ended":
            self.calls.discard(call_id)
            return [(event.seq, "ended", {"call_id": call_id, "disposition": data.get("disposition"),
                                          "at": event.ts})]
        return []


def _pick(data: dict, *keys: str) -> dict[str, Any]:
    return {key: data.get(key) for key in keys}
