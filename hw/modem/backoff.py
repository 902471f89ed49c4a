"""Exponential backoff between reconnect attempts."""
from __future__ import annotations


class Backoff:
    """Delays that double from a minimum up to a maximum; reset after a success."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = max(0.0, minimum)
        self.maximum = max(self.minimum, maximum)
        self._next = self.minimum

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (capped)."""
        delay = self._next
        self._next = min(self.maximum, max(self._next * 2, 0.01))
        return delay

    def reset(self) -> None:
        """Start again from the minimum."""
        self._next = self.minimum
