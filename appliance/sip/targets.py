"""Where a call's INVITEs go: a registered contact or a trunk, with what a trunk needs to accept them."""
from __future__ import annotations

from dataclasses import dataclass

from .invite_session import Credentials
from .transport import Peer


@dataclass
class TrunkPeer:
    """What placing a call on a trunk needs: where it is, its domain and its account."""

    name: str
    peer: Peer
    domain: str
    username: str | None
    secret: str | None
    inbound: str = ""

    def credentials(self) -> Credentials | None:
        """What to answer the trunk's digest challenge with; None without a secret."""
        return Credentials(self.username or "", self.secret, self.name) if self.secret else None


Target = tuple[str, Peer, str, TrunkPeer | None]
"""(request URI, where to send, label, trunk) of one INVITE a call sends."""
