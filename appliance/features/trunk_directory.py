"""Trunks and modem lines as the call path asks for them: by name, by the address a message came from."""
from __future__ import annotations

from ..sip.targets import TrunkPeer
from ..sip.transport import Peer
from ..store import directory
from . import Context


class TrunkDirectory:
    """Looks trunks (features.trunks) and modem lines (features.lines) up as they are now."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def for_peer(self, peer: Peer) -> TrunkPeer | None:
        """The trunk or line a request came from, by its address and port; None for a phone."""
        for client in self.ctx.trunks.values():
            if client.peer is not None and client.peer.peer.host == peer.host and client.peer.peer.port == peer.port:
                return client.peer
        for line in self.ctx.lines.values():
            trunk = line.trunk_peer()
            if trunk.peer.host == peer.host and trunk.peer.port == peer.port:
                return trunk
        return None

    def by_name(self, name: str) -> TrunkPeer | None:
        """Where to send a call on the trunk or line called name (None while it is not ready)."""
        client = self.ctx.trunks.get(name)
        if client is not None:
            return client.peer
        line = self.ctx.lines.get(name)
        return line.trunk_peer() if line is not None else None

    def line_rows(self) -> list[dict]:
        """Modem lines as the dial plan sees trunks: a name, an inbound route, a prefix."""
        return [line.trunk_row() for line in self.ctx.lines.values()]

    def rows(self) -> list[dict]:
        """Every trunk row, then the modem lines'."""
        return directory.list_trunks(self.ctx.db) + self.line_rows()

    def names(self) -> list[str]:
        """Every line a call may go out on, trunks first (modem lines after them)."""
        return [t["name"] for t in directory.list_trunks(self.ctx.db)] + list(self.ctx.lines)

    def hosts(self) -> list[str]:
        """Addresses of every configured trunk and line peer: these are never banned."""
        hosts = [row["host"] for row in directory.list_trunks(self.ctx.db)]
        hosts += [c.peer.peer.host for c in self.ctx.trunks.values() if c.peer is not None]
        hosts += [line.trunk_peer().peer.host for line in self.ctx.lines.values()]
        return hosts
