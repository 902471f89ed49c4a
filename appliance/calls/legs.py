"""What every call controller shares: its legs, and the forks it rings through INVITE sessions."""
from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sip.dialog import Dialog, new_tag
from ..sip.forking import ForkSet
from ..sip.invite_session import ClientInvite, InviteSession
from ..sip.message import Response
from ..sip.targets import Target, TrunkPeer

if TYPE_CHECKING:
    from .b2bua import B2BUA
    from .records import CallInfo

class CallState(enum.StrEnum):
    """Where a caller's call is (calls/bridge.py): routing → ringing → answered → ended."""

    ROUTING = "routing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class OutboundState(enum.StrEnum):
    """Where a call the box places is (calls/outbound_call.py)."""

    NEW = "new"
    AGENT_RINGING = "agent_ringing"
    AGENT_UP = "agent_up"
    CUSTOMER_RINGING = "customer_ringing"
    BRIDGED = "bridged"
    ENDED = "ended"


Addresses = Callable[[str, TrunkPeer | None], tuple[str, str]]
"""(label, trunk) -> the From and To of the INVITE to that target."""


@dataclass
class Leg:
    """One side of a call once its session is up: which relay side it uses and whom it reaches."""

    session: InviteSession
    relay_side: str           # "a" or "b"
    label: str                # extension number or trunk name, for records and logs
    sdp_session: int = field(default_factory=lambda: random.randrange(1, 2**31))
    sdp_version: int = 0

    @property
    def dialog(self) -> Dialog:
        """The leg's dialog."""
        return self.session.dialog

    def next_sdp_version(self) -> int:
        """Version for the next SDP the box sends on this leg (RFC 3264 §8)."""
        self.sdp_version += 1
        return self.sdp_version


class PlacingCall:
    """A controller that sends INVITEs: forks in parallel, a ring timer, and the dialog index."""

    b2bua: B2BUA
    info: CallInfo
    state: CallState | OutboundState  # ENDED once over
    relay: object | None

    def __init__(self) -> None:
        self.forks = ForkSet()
        self.dialog_keys: set[tuple[str, str]] = set()
        self.ring_timer: asyncio.TimerHandle | None = None

    def legs(self) -> tuple[Leg | None, ...]:
        """The legs that are up, to find which one a session belongs to."""
        raise NotImplementedError

    def leg_of(self, session: InviteSession) -> Leg | None:
        """The leg whose session this is."""
        return next((leg for leg in self.legs() if leg is not None and leg.session is session), None)

    def _cancel_ring_timer(self) -> None:
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None

    def _index(self, key: tuple[str, str], leg: Leg | None) -> None:
        """Let in-dialog requests with this Call-ID and tag find the call (and leg)."""
        self.b2bua.dialogs.add(key, self, leg)
        self.dialog_keys.add(key)

    def _send_forks(self, targets: list[Target], body: bytes, max_forwards: int, addresses: Addresses,
                    media_side: str = "b") -> None:
        """INVITE every target in one new Call-ID; the relay's media_side may latch to their addresses."""
        call_id = new_tag() + new_tag()
        from_tag = new_tag()
        relay = self.relay
        if relay is not None:
            relay.expect_from(media_side, *(dest.host for _ruri, dest, _label, _trunk in targets))  # type: ignore[attr-defined]
        forks = []
        for ruri, dest, label, trunk in targets:
            from_uri, to_uri = addresses(label, trunk)
            dialog = Dialog(call_id=call_id, local_tag=from_tag, local_uri=from_uri, remote_uri=to_uri,
                            peer=dest, remote_target=ruri, local_cseq=1)
            fork = ClientInvite(self.b2bua.ua, dialog, dest, body, max_forwards,
                                trunk.credentials() if trunk is not None else None,
                                self._fork_provisional, self._fork_answered, self._fork_failed, label=label)
            self.forks.add(fork)
            self._index(dialog.key, None)
            forks.append(fork)
        for fork in forks:
            fork.start()

    def _fork_provisional(self, fork: ClientInvite, response: Response) -> None:
        raise NotImplementedError

    def _fork_answered(self, fork: ClientInvite, response: Response) -> None:
        raise NotImplementedError

    def _fork_failed(self, fork: ClientInvite, status: int) -> None:
        """A fork got a final failure: once none rings any more, the attempt has failed."""
        raise NotImplementedError
