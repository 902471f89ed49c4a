"""Whether the system clock is synchronised: the Pi has no real-time clock, and opening hours need the time."""
from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("switchboard.clock")

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC), whoever disciplines it
FAULT = "clock_not_synced"
_TIMEX_SIZE = 512  # larger than struct timex on every Linux ABI; modes = 0 only reads


def kernel_clock_synced() -> bool | None:
    """The kernel's word (adjtimex with no changes) on whether NTP has set the clock; None if it cannot tell."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.create_string_buffer(_TIMEX_SIZE))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


class ClockWatch:
    """Publishes box.clock {synced} and the box.fault clock_not_synced while the clock is unsynchronised."""

    def __init__(self, publish: Callable[..., None], probe: Callable[[], bool | None] = kernel_clock_synced) -> None:
        self._publish = publish
        self._probe = probe
        self.synced: bool | None = None

    def check(self) -> bool | None:
        """Read the clock's state and announce a change; the state (None: unknown, treated as synced)."""
        synced = self._probe()
        if synced is None:
            synced_now = True  # cannot tell (not Linux): do not cry wolf
        else:
            synced_now = synced
        if synced_now != self.synced:
            self.synced = synced_now
            if not synced_now:
                log.warning("the clock is not synchronised yet: opening hours and calling hours may be wrong")
            else:
                log.info("the clock is synchronised")
            self._publish("box.clock", synced=synced_now)
            self._publish("box.fault", fault=FAULT, active=not synced_now)
        return self.synced
