"""Parallel forking: the INVITEs one call sends at once, and the one answer they come to."""
from __future__ import annotations

from collections.abc import Iterator

from .invite_session import ClientInvite


class ForkSet:
    """The client sessions of one ringing attempt; the first 2xx wins and the others are cancelled."""

    def __init__(self) -> None:
        self.forks: list[ClientInvite] = []

    def add(self, fork: ClientInvite) -> None:
        """One more target rings."""
        self.forks.append(fork)

    def clear(self) -> None:
        """A new attempt: earlier forks no longer count."""
        self.forks = []

    def __contains__(self, fork: object) -> bool:
        return any(f is fork for f in self.forks)

    def __iter__(self) -> Iterator[ClientInvite]:
        return iter(self.forks)

    def __bool__(self) -> bool:
        return bool(self.forks)

    def pending(self) -> bool:
        """Whether some fork has no final answer yet."""
        return any(f.final == 0 for f in self.forks)

    def cancel(self, keep: ClientInvite | None = None) -> None:
        """CANCEL every fork still ringing but `keep`."""
        for fork in self.forks:
            if fork is not keep and fork.final == 0:
                fork.cancel()

    def final_status(self) -> int:
        """The one status for forks that all failed: busy wins, then RFC 3261 §16.7's order."""
        return final_status([f.final for f in self.forks])


def final_status(statuses: list[int]) -> int:
    """The one status for failed forks: busy wins, then RFC 3261 §16.7's order."""
    if not statuses:
        return 480
    return 486 if 486 in statuses or 600 in statuses else min(statuses, key=_failure_rank)


def _failure_rank(status: int) -> int:
    """Order failures as RFC 3261 §16.7 suggests: 6xx, then specific 4xx, then 5xx, then timeouts."""
    if status >= 600:
        return 0
    if status in (408, 480, 503):
        return 3
    if status >= 500:
        return 2
    return 1
