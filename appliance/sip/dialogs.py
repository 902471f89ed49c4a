"""Which call and leg an in-dialog request belongs to: a registry keyed by Call-ID and our tag."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, TypeVar

from .message import Request

Owner = TypeVar("Owner")
Member = TypeVar("Member")
LINGER = 32.0  # seconds a finished call still answers late retransmissions (64*T1)


class DialogRegistry(Generic[Owner, Member]):
    """Dialog keys to (owner, member): a call and its leg; the leg is None while only an INVITE went out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, linger: float = LINGER) -> None:
        self.loop = loop
        self.linger = linger
        self._entries: dict[tuple[str, str], tuple[Owner, Member | None]] = {}

    def add(self, key: tuple[str, str], owner: Owner, member: Member | None = None) -> None:
        """Let requests with this Call-ID and tag find the owner (and its leg)."""
        self._entries[key] = (owner, member)

    def find(self, request: Request) -> tuple[Owner, Member | None] | None:
        """The owner and leg an in-dialog request (matched by its To tag) belongs to."""
        return self._entries.get((request.call_id, request.to.tag or ""))

    def by_key(self, key: tuple[str, str]) -> tuple[Owner, Member | None] | None:
        """The entry for a key, or None."""
        return self._entries.get(key)

    def release(self, owner: Owner, keys: Iterable[tuple[str, str]]) -> None:
        """Drop the owner's keys once late retransmissions can no longer arrive."""
        keys = list(keys)

        def drop() -> None:
            for key in keys:
                if self._entries.get(key, (None,))[0] is owner:
                    del self._entries[key]

        self.loop.call_later(self.linger, drop)

    def __len__(self) -> int:
        return len(self._entries)
