"""The SIP stack on a fake clock with a fake wire: what the box sends is captured, what it receives is typed in."""
from __future__ import annotations

from fake_loop import FakeLoop

from appliance.sip.endpoint import LocalEndpoint
from appliance.sip.invite_session import UserAgent
from appliance.sip.message import Request, Response, parse_message
from appliance.sip.transaction import TransactionLayer
from appliance.sip.transport import Peer

BOX = LocalEndpoint("192.0.2.1", 5060)
PHONE = Peer("UDP", "192.0.2.20", 5062)


class Wire:
    """A transport that keeps what is sent and lets a test deliver messages."""

    def __init__(self) -> None:
        self.sent: list[tuple[Request | Response, Peer]] = []
        self.handler = None

    def send(self, data: bytes, dest: Peer) -> bool:
        self.sent.append((parse_message(data), dest))
        return True

    def serve(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.handler = handler

    def deliver(self, text: str, peer: Peer = PHONE) -> None:
        """A message arrives from peer."""
        self.handler(parse_message(text.replace("\n", "\r\n").encode()), peer)

    def requests(self, method: str) -> list[Request]:
        return [m for m, _ in self.sent if isinstance(m, Request) and m.method == method]

    def responses(self, status: int | None = None) -> list[Response]:
        return [m for m, _ in self.sent if isinstance(m, Response) and (status is None or m.status == status)]


class Rig:
    """A transaction layer and a user agent over the Wire, on a FakeLoop."""

    def __init__(self, tu=None) -> None:  # type: ignore[no-untyped-def]
        self.loop = FakeLoop()
        self.wire = Wire()
        self.layer = TransactionLayer(self.loop, self.wire, tu)  # type: ignore[arg-type]
        self.layer.start(tu)
        self.ua = UserAgent(self.layer, BOX)


def response_to(request: Request, status: int, reason: str = "OK", to_tag: str = "phone1", extra: str = "",
                body: str = "") -> str:
    """A phone's response to a request the box sent."""
    lines = [f"SIP/2.0 {status} {reason}", f"Via: {request.header('Via')}", f"From: {request.header('From')}",
             f"To: {request.header('To')}" + (f";tag={to_tag}" if to_tag else ""), f"Call-ID: {request.call_id}",
             f"CSeq: {request.cseq[0]} {request.cseq[1]}", f"Contact: <sip:201@{PHONE.host}:{PHONE.port}>"]
    if extra:
        lines.append(extra)
    if body:
        lines += ["Content-Type: application/sdp"]
    lines += [f"Content-Length: {len(body) + body.count(chr(10))}", "", body]  # CRLF on the wire
    return "\n".join(lines)
