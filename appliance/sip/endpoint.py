"""How the box names itself in Via and Contact headers."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalEndpoint:
    """The advertised address and port of the box's SIP socket."""

    host: str
    port: int

    def via(self, transport: str, branch: str) -> str:
        """A Via value for a request the box sends."""
        return f"SIP/2.0/{transport} {self.host}:{self.port};branch={branch};rport"

    def contact(self, user: str, transport: str) -> str:
        """A Contact value for the box."""
        suffix = ";transport=tcp" if transport == "TCP" else ""
        return f"<sip:{user}@{self.host}:{self.port}{suffix}>"
