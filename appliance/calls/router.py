"""The dial plan: where a dialled number goes, and whether the caller may go there."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from .outbound_policy import OutboundPolicy

ALLOWED_DIAL_CHARS = frozenset("0123456789*#+")
FEATURE_CODES = {"*45": "login", "*46": "logout", "*47": "pause", "*48": "unpause"}
"""Codes an agent dials from their phone to change their queue state."""


RouteKind = Literal["extension", "trunk", "reject", "ivr", "queue", "feature"]


@dataclass(frozen=True)
class Route:
    """The decision for one call: ring an extension, go out on a trunk, or refuse."""

    kind: RouteKind
    number: str = ""        # extension or outside number; the menu or queue name; the feature code
    trunk: str | None = None
    status: int = 0
    reason: str = ""

    @classmethod
    def reject(cls, status: int, reason: str) -> "Route":
        """A refusal with the SIP status to answer."""
        return cls("reject", status=status, reason=reason)


class DialPlan:
    """Routes numbers dialled by extensions and calls arriving from trunks."""

    def __init__(self, extension: Callable[[str], dict | None], trunks: Callable[[], list[dict]],
                 policy: OutboundPolicy,
                 ivr_by_number: Callable[[str], str | None] = lambda number: None,
                 queue_by_number: Callable[[str], str | None] = lambda number: None) -> None:
        self._extension = extension
        self._trunks = trunks
        self.policy = policy
        self._ivr_by_number = ivr_by_number  # internal number -> IVR menu name
        self._queue_by_number = queue_by_number  # internal number -> queue name

    def from_extension(self, caller: dict, dialled: str) -> Route:
        """Route a number dialled by an authenticated extension."""
        number = normalise(dialled)
        if not number:
            return Route.reject(484, "Address Incomplete")
        if self._extension(number) is not None:
            return Route("extension", number)
        if number in FEATURE_CODES:
            return Route("feature", number)
        menu = self._ivr_by_number(number)
        if menu is not None:
            return Route("ivr", menu)
        queue = self._queue_by_number(number)
        if queue is not None:
            return Route("queue", queue)
        for trunk in sorted(self._trunks(), key=lambda t: -len(t.get("outbound_prefix") or "")):
            prefix = trunk.get("outbound_prefix")
            if prefix is None or prefix == "" or not number.startswith(prefix) or len(number) == len(prefix):
                continue
            outside = number[len(prefix):]
            return self._outside(caller, outside, trunk["name"])
        return Route.reject(404, "Not Found")

    def _outside(self, caller: dict, number: str, trunk: str) -> Route:
        # Refusals keep the number and the trunk, so the call record shows which outside call was refused.
        decision = self.policy.check(number, self.policy.rights_of(caller))
        if not decision.allowed:
            return Route("reject", number, trunk, decision.status, decision.reason)
        return Route("trunk", number, trunk)

    def from_trunk(self, trunk: dict, dialled: str) -> Route:
        """Route a call that arrived on a trunk to its configured destination."""
        destination = (trunk.get("inbound") or "").strip()
        kind, colon, name = destination.partition(":")
        if not colon:
            if self._extension(destination) is not None:
                return Route("extension", destination)
            return Route.reject(404, "Not Found")
        if kind not in ("extension", "ivr", "queue"):  # provisioning allows only these (config/provisioning.py)
            return Route.reject(404, "Not Found")
        return Route(kind, name)  # type: ignore[arg-type]  # narrowed just above


def normalise(dialled: str) -> str:
    """Keep only what can be dialled; drop visual separators such as spaces, dots and dashes."""
    kept = "".join(ch for ch in dialled if ch not in " .-()")
    return kept if kept and all(ch in ALLOWED_DIAL_CHARS for ch in kept) else ""
