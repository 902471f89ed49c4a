"""In-process event bus: numbered events, prefix subscriptions, short replay ring."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

HISTORY = 500


@dataclass(frozen=True)
class Event:
    """One published fact; `data` is shared by all subscribers, treat it as read-only."""

    seq: int
    topic: str
    data: dict
    ts: float


@dataclass(frozen=True, eq=False)
class _Subscription:
    callback: Callable[[Event], None]
    prefix: str


class EventBus:
    """Thread-safe publish/subscribe with a replay ring of the last `history` events.

    Callbacks run synchronously in the publisher's thread, outside the bus lock, so
    they must be quick: hand work off (queue, loop.call_soon_threadsafe) rather than
    block. Events published from one thread reach each subscriber in seq order, also
    when a callback publishes; concurrent publishers on different threads may
    interleave, so SSE-style consumers should key on seq and use since() to replay.
    """

    def __init__(self, history: int = HISTORY) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._ring: deque[Event] = deque(maxlen=history)
        self._subs: list[_Subscription] = []
        self._local = threading.local()

    @property
    def last_seq(self) -> int:
        """Seq of the most recent event, 0 before the first."""
        with self._lock:
            return self._seq

    def publish(self, topic: str, **data: object) -> Event:
        """Record an event and deliver it to matching subscribers."""
        if not topic:
            raise ValueError("topic must be a non-empty string")
        with self._lock:
            self._seq += 1
            event = Event(self._seq, topic, dict(data), time.time())
            self._ring.append(event)
        pending: deque[Event] | None = getattr(self._local, "pending", None)
        if pending is not None:
            # Published from inside a callback: queue it so every subscriber still
            # sees this thread's events in seq order.
            pending.append(event)
            return event
        self._local.pending = pending = deque([event])
        try:
            while pending:
                self._deliver(pending.popleft())
        finally:
            self._local.pending = None
        return event

    def subscribe(
        self, callback: Callable[[Event], None], prefix: str = ""
    ) -> Callable[[], None]:
        """Call `callback` for each event whose topic starts with `prefix`; returns unsubscribe."""
        sub = _Subscription(callback, prefix)
        with self._lock:
            self._subs.append(sub)

        def unsubscribe() -> None:
            with self._lock:
                if sub in self._subs:
                    self._subs.remove(sub)

        return unsubscribe

    def since(self, seq: int, prefix: str = "") -> list[Event]:
        """Events still in the ring with seq greater than `seq` and topic starting with `prefix`."""
        with self._lock:
            return [e for e in self._ring if e.seq > seq and e.topic.startswith(prefix)]

    def _deliver(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if not event.topic.startswith(sub.prefix):
                continue
            try:
                sub.callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s #%d", sub.callback, event.topic, event.seq)
