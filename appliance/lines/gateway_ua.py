"""A small SIP user agent that makes a non-SIP line look like a provider's trunk to the box.

The modem line talks SIP to the box over 127.0.0.1, exactly as an ITSP would: its calls reach
the dial plan, the IVR, the queue and the call records unchanged, and the box dials out on it
like on any trunk. One call at a time, as a modem carries one.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from ..sip.dialog import Dialog, new_tag
from ..sip.headers import quote
from ..sip.message import Request, Response
from ..sip.transaction import ServerTransaction, TransactionLayer
from ..sip.transport import Peer, SipTransport
from ..sip.uri import SipUri

log = logging.getLogger("switchboard.lines.sip")

METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"})


@dataclass(eq=False)
class LineCall:
    """The line's one call as SIP sees it."""

    direction: str                      # "in": the line called the box; "out": the box called out on the line
    dialog: Dialog
    state: str = "calling"              # calling → early → confirmed → ended
    invite: Request | None = None       # our INVITE (direction "in"), for CANCEL
    txn: ServerTransaction | None = None  # the box's INVITE (direction "out")
    number: str = ""
    extra: dict = field(default_factory=dict)


class LineHandler(Protocol):
    """What the line does when the box speaks."""

    def box_invites(self, call: LineCall, sdp: bytes) -> None:
        """The box places a call on the line (call.number is the number to dial)."""

    def box_answered(self, call: LineCall, sdp: bytes) -> None:
        """The box took the line's incoming call."""

    def box_refused(self, call: LineCall, status: int) -> None:
        """The box did not take the line's incoming call."""

    def box_hung_up(self, call: LineCall) -> None:
        """The box ended the call (BYE or CANCEL)."""


class GatewayUa:
    """SIP for one line, on its own socket on 127.0.0.1."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, box: Peer, handler: LineHandler,
                 host: str = "127.0.0.1") -> None:
        self.loop = loop
        self.name = name
        self.box = box
        self.handler = handler
        self.host = host
        # UDP only: the box talks to its lines over UDP, and a TCP listener on an ephemeral port
        # could take a port another service (the web) is about to bind.
        self.transport = SipTransport(loop, host, 0, tcp=False)
        self.layer = TransactionLayer(loop, self.transport, tu=self, methods=METHODS)
        self.call: LineCall | None = None

    @property
    def port(self) -> int:
        """The UDP port the box must know this line by."""
        return self.transport.port

    async def start(self) -> None:
        """Bind the socket."""
        await self.transport.start()
        self.layer.start()

    async def stop(self) -> None:
        """Close the socket."""
        self.layer.stop()
        await self.transport.stop()

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={self.layer.new_branch()};rport"

    def _contact(self) -> str:
        return f"<sip:{self.name}@{self.host}:{self.port}>"

    # --- the line calls the box --------------------------------------------------
    def invite_box(self, caller: str, caller_name: str, dialled: str, sdp: bytes) -> LineCall:
        """Offer an incoming call from the line to the box."""
        target = f"sip:{dialled}@{self.box.host}:{self.box.port}"
        display = f"{quote(caller_name)} " if caller_name else ""
        dialog = Dialog(call_id=new_tag() + new_tag(), local_tag=new_tag(),
                        local_uri=f"{display}<sip:{caller or 'anonymous'}@{self.host}:{self.port}>",
                        remote_uri=f"<{target}>", peer=self.box, remote_target=target, local_cseq=1)
        request = dialog.request("INVITE", self._via(), self._contact(), sdp, cseq=1)
        call = LineCall("in", dialog, invite=request, number=caller)
        self.call = call
        self.layer.send_request(request, self.box, lambda response: self._invite_response(call, response))
        return call

    def _invite_response(self, call: LineCall, response: Response) -> None:
        status = response.status
        if status < 200:
            if call.state == "calling" and response.to.tag:
                call.dialog.remote_tag = response.to.tag
                call.state = "early"
            return
        if status >= 300:
            self._forget(call)
            if call.state != "ended":  # not after our own CANCEL
                call.state = "ended"
                self.handler.box_refused(call, status)
            return
        call.dialog.confirm_uac(response)
        self._ack(call)
        if call.state == "ended":  # we gave up (CANCEL) while the box answered: end it properly
            self._bye(call)
            self._forget(call)
            return
        if call.state == "confirmed":
            return  # a retransmitted 2xx, ACKed again above
        call.state = "confirmed"
        self.handler.box_answered(call, response.body or b"")

    def _ack(self, call: LineCall) -> None:
        ack = call.dialog.request("ACK", self._via(), self._contact(), cseq=1)
        self.layer.send_ack(ack, self.box)

    # --- either side ends ---------------------------------------------------------
    def hang_up(self, call: LineCall) -> None:
        """The line's side ended: CANCEL what is not answered yet, BYE what is."""
        if call.state == "ended":
            return
        if call.direction == "out":
            if call.state != "confirmed" and call.txn is not None:
                call.state = "ended"
                call.txn.respond(call.extra.get("status", 480), to_tag=call.dialog.local_tag)
                self._forget(call)
                return
        elif call.state in ("calling", "early") and call.invite is not None:
            call.state = "ended"
            self.layer.send_request(_cancel_for(call.invite), self.box, lambda response: None)
            return  # the 487 (or a crossing 200, then BYE) finishes it
        call.state = "ended"
        self._bye(call)
        self._forget(call)

    def _bye(self, call: LineCall) -> None:
        bye = call.dialog.request("BYE", self._via(), self._contact())
        self.layer.send_request(bye, call.dialog.peer, lambda response: None)

    def _forget(self, call: LineCall) -> None:
        if self.call is call:
            self.call = None

    # --- the box calls out on the line (TransactionUser) -----------------------------
    def on_request(self, txn: ServerTransaction) -> None:
        """INVITE, BYE, OPTIONS and INFO from the box."""
        request = txn.request
        method = request.method
        if method == "OPTIONS":
            txn.respond(200, extra=[("Allow", ", ".join(sorted(METHODS)))])
        elif method == "INVITE":
            self._box_invite(txn)
        elif method == "BYE":
            call = self._match(request)
            if call is None:
                txn.respond(481)
                return
            txn.respond(200)
            if call.state != "ended":
                call.state = "ended"
                self._forget(call)
                self.handler.box_hung_up(call)
        elif method == "INFO":
            txn.respond(200 if self._match(request) is not None else 481)
        else:
            txn.respond(405, extra=[("Allow", ", ".join(sorted(METHODS)))])

    def _box_invite(self, txn: ServerTransaction) -> None:
        request = txn.request
        current = self._match(request)
        if current is not None:  # a re-INVITE (hold, codec change): keep the media as it is
            txn.respond(488 if current.state != "confirmed" else 200, to_tag=current.dialog.local_tag,
                        extra=[("Contact", self._contact()), ("Content-Type", "application/sdp")]
                        if current.state == "confirmed" else (),
                        body=current.extra.get("answer", b"") if current.state == "confirmed" else b"")
            return
        if self.call is not None:
            txn.respond(486)  # one call per line
            return
        uri = request.ruri
        number = uri.user_unescaped if isinstance(uri, SipUri) else ""
        dialog = Dialog.as_uas(request, txn.peer, new_tag())
        call = LineCall("out", dialog, txn=txn, number=number or "")
        self.call = call
        self.handler.box_invites(call, request.body or b"")

    def ringing(self, call: LineCall) -> None:
        """The far end rings: 180 to the box."""
        if call.txn is not None and call.state == "calling":
            call.state = "early"
            call.txn.respond(180, to_tag=call.dialog.local_tag, extra=[("Contact", self._contact())])

    def answer(self, call: LineCall, sdp: bytes) -> None:
        """The far end answered: 200 with our SDP."""
        if call.txn is None or call.state == "ended":
            return
        call.state = "confirmed"
        call.extra["answer"] = sdp
        call.txn.respond(200, to_tag=call.dialog.local_tag, body=sdp,
                         extra=[("Contact", self._contact()), ("Content-Type", "application/sdp")])

    def refuse(self, call: LineCall, status: int) -> None:
        """The call could not be placed: a final failure to the box."""
        call.extra["status"] = status
        self.hang_up(call)

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """The box gave up before the far end answered."""
        txn.respond(200)
        call = self.call
        if invite is None or call is None or call.txn is not invite or call.state in ("confirmed", "ended"):
            return
        call.state = "ended"
        invite.respond(487, to_tag=call.dialog.local_tag)
        self._forget(call)
        self.handler.box_hung_up(call)

    def on_ack(self, request: Request, peer: Peer) -> None:
        """The box confirmed our 200: nothing more to do."""

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """Our 200 was never acknowledged: the call is dead."""
        call = self.call
        if call is not None and call.txn is txn and call.state != "ended":
            log.warning("line %s: the box never acknowledged the answer; hanging up", self.name)
            self.hang_up(call)
            self.handler.box_hung_up(call)

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again."""
        call = self.call
        if call is not None and call.direction == "in" and response.status < 300 and \
                response.call_id == call.dialog.call_id and response.cseq[1] == "INVITE":
            self._ack(call)

    def _match(self, request: Request) -> LineCall | None:
        call = self.call
        if call is None or request.call_id != call.dialog.call_id:
            return None
        return call


def _cancel_for(invite: Request) -> Request:
    """CANCEL of our INVITE: same Via branch, From, To, Call-ID, CSeq number (RFC 3261 §9.1)."""
    headers = [["Via", invite.header_lines("Via")[0]], ["Max-Forwards", "70"],
               ["From", invite.header("From") or ""], ["To", invite.header("To") or ""],
               ["Call-ID", invite.call_id], ["CSeq", f"{invite.cseq[0]} CANCEL"]]
    return Request("CANCEL", invite.uri, headers)

