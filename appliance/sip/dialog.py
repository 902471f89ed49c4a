"""One side of a B2BUA call: the dialog state needed to send in-dialog requests (RFC 3261 §12)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .message import Request, Response
from .transport import Peer


def new_tag() -> str:
    """A random tag or Call-ID part."""
    return os.urandom(6).hex()


@dataclass
class Dialog:
    """Identifiers, sequence numbers and routing of one dialog, from the box's point of view."""

    call_id: str
    local_tag: str
    local_uri: str          # our From (UAC side) or To (UAS side), as a name-addr without tag
    remote_uri: str         # the other party's name-addr without tag
    peer: Peer              # where the other party's messages come from (NAT-friendly)
    remote_target: str = ""  # the other party's Contact URI
    remote_tag: str = ""
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int = -1

    @property
    def key(self) -> tuple[str, str]:
        """How the core finds this dialog from an incoming request: Call-ID and our tag."""
        return (self.call_id, self.local_tag)

    @classmethod
    def as_uas(cls, request: Request, peer: Peer, local_tag: str) -> "Dialog":
        """Dialog for a leg whose INVITE we received."""
        contact = request.contacts[0].uri if request.contacts else request.from_.uri
        return cls(
            call_id=request.call_id, local_tag=local_tag,
            local_uri=_without_tag(request.header("To") or ""),
            remote_uri=_without_tag(request.header("From") or ""),
            peer=peer, remote_target=str(contact), remote_tag=request.from_.tag or "",
            route_set=list(request.header_values("Record-Route")),
            remote_cseq=request.cseq[0],
        )

    def confirm_uac(self, response: Response) -> None:
        """Take the remote tag, target and route set from a 2xx or 1xx of our INVITE."""
        self.remote_tag = response.to.tag or self.remote_tag
        if response.contacts:
            self.remote_target = str(response.contacts[0].uri)
        self.route_set = list(reversed(response.header_values("Record-Route")))

    def request(self, method: str, via: str, contact: str, body: bytes = b"",
                content_type: str | None = None, cseq: int | None = None) -> Request:
        """Build an in-dialog request (BYE, re-INVITE, INFO, ACK...)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        remote = f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri
        headers = [["Via", via], ["Max-Forwards", "70"]]
        headers += [["Route", r] for r in self.route_set]
        headers += [["From", f"{self.local_uri};tag={self.local_tag}"], ["To", remote],
                    ["Call-ID", self.call_id], ["CSeq", f"{cseq} {method}"]]
        if method in ("INVITE", "UPDATE", "ACK") or body:
            headers.append(["Contact", contact])
        if body:
            headers.append(["Content-Type", content_type or "application/sdp"])
        return Request(method, self.remote_target, headers, body)

    def accept_remote_cseq(self, cseq: int) -> bool:
        """Check an incoming in-dialog CSeq is newer than the last one (RFC 3261 §12.2.2)."""
        if cseq <= self.remote_cseq:
            return False
        self.remote_cseq = cseq
        return True


def _without_tag(name_addr: str) -> str:
    """Drop a tag parameter from a From/To value, keeping everything else as written."""
    parts = name_addr.split(";")
    kept = [parts[0]] + [p for p in parts[1:] if not p.strip().lower().startswith("tag=")]
    return ";".join(kept)
