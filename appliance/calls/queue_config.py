"""What a call queue is: its members, strategy, timers and destinations (pure data, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from appliance.calls.ivr_config import Action

__all__ = ["STRATEGIES", "DESTINATION_KINDS", "CALLBACK_KEYS", "DESTINATIONS", "Member", "QueueConfig"]

STRATEGIES = ("ring-all", "longest-idle", "round-robin", "fewest-calls", "tiered")
DESTINATION_KINDS = ("hangup", "callback", "extension", "ivr", "queue")
"""Where a queue may send a caller; "repeat" is a menu key only."""
CALLBACK_KEYS = "0123456789*#"
DESTINATIONS = ("closed", "empty", "timeout", "full")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NUMBER = re.compile(r"[0-9]{2,8}")
# (low, high, integer) per numeric field; announce_every also allows 0 (never).
_RANGES: dict[str, tuple[float, float, bool]] = {
    "ring_timeout": (1, 300, False),
    "wrapup": (0, 3600, False),
    "max_wait": (10, 86400, False),
    "max_length": (1, 1000, True),
    "announce_every": (10, 3600, False),
    "callback_attempts": (1, 10, True),
    "callback_retry": (5, 86400, False),
    "service_level": (1, 3600, False),
    "max_misses": (0, 100, True),
    "vip_tier": (1, 9, True),
}


@dataclass(frozen=True)
class Member:
    """An extension that takes the queue's calls; lower tiers are offered first by "tiered"."""

    extension: str
    tier: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.extension, str) or not _NUMBER.fullmatch(self.extension):
            raise ValueError(f'member extension must be 2-8 digits, got "{self.extension}"')
        if isinstance(self.tier, bool) or not isinstance(self.tier, int) or not 1 <= self.tier <= 9:
            raise ValueError(f"member {self.extension}: tier must be an integer 1-9, got {self.tier!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"extension": self.extension, "tier": self.tier}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Member:
        """The inverse of to_dict."""
        _only(d, ("extension", "tier"), "member")
        return cls(d["extension"], d.get("tier", 1))


@dataclass(frozen=True)
class QueueConfig:
    """One call queue; defaults are what an owner gets without saying more (see docs/QUEUE.md)."""

    name: str
    number: str | None = None
    strategy: str = "longest-idle"
    members: tuple[Member, ...] = ()
    ring_timeout: float = 15.0
    wrapup: float = 10.0
    max_wait: float = 600.0
    max_length: int = 20
    hold_music: str = "hold_music"
    announce_every: float = 30.0
    announce_position: bool = True
    announce_wait: bool = True
    callback_key: str = "1"
    callback_attempts: int = 3
    callback_retry: float = 300.0
    service_level: float = 20.0
    max_misses: int = 3
    vip_priority: bool = False
    vip_tier: int = 1
    hours: str | None = None
    closed: Action = Action("hangup")
    empty: Action = Action("callback")
    timeout: Action = Action("callback")
    full: Action = Action("callback")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f'queue name must be 1-32 letters, digits, _ or -, got "{self.name}"')
        if self.number is not None and (not isinstance(self.number, str) or not _NUMBER.fullmatch(self.number)):
            raise ValueError(f'queue number must be 2-8 digits, got "{self.number}"')
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        members = tuple(self.members)
        seen: set[str] = set()
        for member in members:
            if not isinstance(member, Member):
                raise ValueError(f"members must be Member objects, got {member!r}")
            if member.extension in seen:
                raise ValueError(f"member {member.extension} is listed twice")
            seen.add(member.extension)
        object.__setattr__(self, "members", members)  # a list given by a caller still hashes and compares
        for key, (low, high, integer) in _RANGES.items():
            value = getattr(self, key)
            wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
            if wrong_type:
                raise ValueError(f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
            if not (low <= value <= high or (key == "announce_every" and value == 0)):
                never = "0 or " if key == "announce_every" else ""
                raise ValueError(f"{key} must be {never}{low:g}-{high:g}, got {value!r}")
            if not integer:
                object.__setattr__(self, key, float(value))
        for key in ("announce_position", "announce_wait", "vip_priority"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if not isinstance(self.hold_music, str) or not self.hold_music:
            raise ValueError(f"hold_music must be a prompt name, got {self.hold_music!r}")
        if not isinstance(self.callback_key, str) or len(self.callback_key) > 1 or (
            self.callback_key and self.callback_key not in CALLBACK_KEYS
        ):
            raise ValueError(f'callback_key must be one of {CALLBACK_KEYS} or "" for none, got {self.callback_key!r}')
        if self.hours is not None and (not isinstance(self.hours, str) or not _NAME.fullmatch(self.hours)):
            raise ValueError(f'hours must be 1-32 letters, digits, _ or -, got "{self.hours}"')
        for key in DESTINATIONS:
            action = getattr(self, key)
            if not isinstance(action, Action) or action.kind not in DESTINATION_KINDS:
                raise ValueError(
                    f"{key} must be hangup, callback, extension:N, ivr:NAME or queue:NAME, got {str(action)!r}"
                )
            if action.kind == "queue" and action.target == self.name:
                raise ValueError(f'{key}: "queue:{self.name}" is this queue itself and would loop forever')

    def member(self, extension: str) -> Member | None:
        """The member for extension, or None."""
        return next((m for m in self.members if m.extension == extension), None)

    @property
    def extensions(self) -> tuple[str, ...]:
        """Member extensions in member order."""
        return tuple(m.extension for m in self.members)

    def to_dict(self) -> dict:
        """JSON-serialisable form (members as {"extension", "tier"}, actions as {"kind", "target", "label"})."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "members":
                value = [m.to_dict() for m in value]
            elif isinstance(value, Action):
                value = value.to_dict()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QueueConfig:
        """The inverse of to_dict; missing keys take their defaults, unknown keys are errors."""
        _only(d, tuple(cls.__dataclass_fields__), "queue")
        values = dict(d)
        values["members"] = tuple(Member.from_dict(m) for m in d.get("members") or ())
        for key in DESTINATIONS:
            if key in d:
                values[key] = Action.from_dict(d[key])
        return cls(**values)


def _only(d: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
