"""What an IVR menu is: its prompts, DTMF options, timeouts and destinations (pure data, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DTMF_KEYS", "ACTION_KINDS", "TARGET_KINDS", "Action", "IvrMenu"]

DTMF_KEYS = "0123456789*#ABCD"
ACTION_KINDS = ("extension", "queue", "ivr", "repeat", "hangup", "callback")
TARGET_KINDS = ("extension", "queue", "ivr")
"""Kinds that need a target; the others take none."""

_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NUMBER = re.compile(r"[0-9]{2,8}")
_SYNTAX = (
    '"extension:202" (or just "202"), "queue:NAME", "ivr:NAME", "repeat", "hangup" or "callback"'
)


@dataclass(frozen=True)
class Action:
    """Where a key press (or a timeout, or closed hours) sends the caller."""

    kind: str
    target: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action {self.kind!r}: expected {_SYNTAX}")
        if self.kind == "callback" and self.target:  # optional: the queue whose line the callback joins
            if not _NAME.fullmatch(self.target):
                raise ValueError(f'callback queue name must be 1-32 letters, digits, _ or -, got "{self.target}"')
        elif self.kind not in TARGET_KINDS:
            if self.target:
                raise ValueError(f'"{self.kind}" takes no target, got "{self.kind}:{self.target}"')
        elif self.kind == "extension":
            if not _NUMBER.fullmatch(self.target):
                raise ValueError(f'extension target must be 2-8 digits, got "{self.target}"')
        elif not _NAME.fullmatch(self.target):
            raise ValueError(f'{self.kind} name must be 1-32 letters, digits, _ or -, got "{self.target}"')

    @classmethod
    def parse(cls, text: str, label: str = "") -> Action:
        """An action from its text form, e.g. "queue:sales", "202" or "hangup"."""
        if not isinstance(text, str):
            raise ValueError(f"expected {_SYNTAX}, got {text!r}")
        text = text.strip()
        if _NUMBER.fullmatch(text):
            return cls("extension", text, label)
        kind, colon, target = text.partition(":")
        if kind not in ACTION_KINDS or (colon and not target):
            raise ValueError(f"expected {_SYNTAX}, got {text!r}")
        if kind in TARGET_KINDS and not colon:
            raise ValueError(f'"{kind}" needs a target, e.g. "{kind}:{"202" if kind == "extension" else "main"}"')
        return cls(kind, target, label)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"kind": self.kind, "target": self.target, "label": self.label}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Action:
        """The inverse of to_dict."""
        _only(d, ("kind", "target", "label"), "action")
        return cls(d["kind"], d.get("target", ""), d.get("label", ""))


@dataclass(frozen=True)
class IvrMenu:
    """One auto-attendant menu; defaults are what an owner gets without saying more."""

    name: str
    number: str | None = None
    greeting: str | None = "greeting"
    menu: str = "menu"
    options: Mapping[str, Action] = field(default_factory=dict)
    dial_by_extension: bool = False
    timeout: float = 5.0
    digit_timeout: float = 3.0
    max_retries: int = 3
    fallback: Action = Action("hangup")
    hours: str | None = None
    night: Action | None = None
    record: bool = False

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f'menu name must be 1-32 letters, digits, _ or -, got "{self.name}"')
        if self.number is not None and not _NUMBER.fullmatch(self.number):
            raise ValueError(f'menu number must be 2-8 digits, got "{self.number}"')
        for key, action in self.options.items():
            if len(key) != 1 or key not in DTMF_KEYS:
                raise ValueError(f"option key must be one of {DTMF_KEYS}, got {key!r}")
            if not isinstance(action, Action):
                raise ValueError(f"option {key!r} must be an Action, got {action!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form (actions as {"kind", "target", "label"})."""
        return {
            "name": self.name,
            "number": self.number,
            "greeting": self.greeting,
            "menu": self.menu,
            "options": {key: action.to_dict() for key, action in sorted(self.options.items())},
            "dial_by_extension": self.dial_by_extension,
            "timeout": self.timeout,
            "digit_timeout": self.digit_timeout,
            "max_retries": self.max_retries,
            "fallback": self.fallback.to_dict(),
            "hours": self.hours,
            "night": None if self.night is None else self.night.to_dict(),
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IvrMenu:
        """The inverse of to_dict; missing keys take their defaults, unknown keys are errors."""
        _only(d, tuple(cls.__dataclass_fields__), "menu")
        values = dict(d)
        values["options"] = {k: Action.from_dict(a) for k, a in (d.get("options") or {}).items()}
        if "fallback" in d:
            values["fallback"] = Action.from_dict(d["fallback"])
        if d.get("night") is not None:
            values["night"] = Action.from_dict(d["night"])
        for key in ("timeout", "digit_timeout"):
            if key in d:
                values[key] = float(d[key])
        return cls(**values)


def _only(d: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
