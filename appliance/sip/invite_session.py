"""INVITE sessions: one per call leg, with explicit states, as pjsip's pjsip_inv_session.

A session owns the INVITE/ACK/CANCEL/BYE/re-INVITE exchanges of one dialog and reports what
happens to a listener (the call controller in appliance/calls/). It knows nothing of media:
bodies go in and out as bytes, and what they mean is the controller's business.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .dialog import Dialog, new_tag
from .digest import build_authorization
from .message import Request, Response
from .transaction import T1, ClientTransaction, ServerTransaction, TransactionLayer
from .transport import Peer

log = logging.getLogger("switchboard.sip.session")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER"
USER = "switchboard"  # the user part of the box's Contact


class SessionState(enum.StrEnum):
    """Where an INVITE session is (pjsip_inv_state's names)."""

    CALLING = "calling"          # UAC: INVITE sent, nothing back yet
    INCOMING = "incoming"        # UAS: INVITE received, not answered yet
    EARLY = "early"              # a provisional response with a To tag went by
    CONNECTING = "connecting"    # 2xx sent or received, ACK not yet
    CONFIRMED = "confirmed"      # ACK sent or received
    DISCONNECTED = "disconnected"


class Endpoint(Protocol):
    """How the box names itself in Via and Contact."""

    host: str
    port: int

    def via(self, transport: str, branch: str) -> str:
        """A Via value for a request we send."""

    def contact(self, user: str, transport: str) -> str:
        """A Contact value for a request or response we send."""


@dataclass(frozen=True)
class UserAgent:
    """What every session sends with: the loop's transactions and the box's own address."""

    layer: TransactionLayer
    endpoint: Endpoint

    def request(self, dialog: Dialog, method: str, body: bytes = b"", content_type: str | None = None,
                cseq: int | None = None) -> Request:
        """An in-dialog request with a fresh Via branch and the box's Contact."""
        transport = dialog.peer.transport
        return dialog.request(method, self.endpoint.via(transport, self.layer.new_branch()),
                              self.endpoint.contact(USER, transport), body, content_type, cseq=cseq)

    def contact(self, transport: str) -> str:
        """The box's Contact for a response."""
        return self.endpoint.contact(USER, transport)


@dataclass(frozen=True)
class Credentials:
    """What a session answers a 401/407 with (a trunk's account)."""

    username: str
    secret: str
    label: str = ""


class SessionListener(Protocol):
    """What a call controller hears from its sessions."""

    def on_bye(self, session: InviteSession) -> None:
        """The other side hung up (the BYE is already answered)."""

    def on_reinvite(self, session: InviteSession, txn: ServerTransaction) -> None:
        """A re-INVITE the controller must answer (glare is already handled)."""

    def on_in_dialog(self, session: InviteSession, txn: ServerTransaction) -> None:
        """INFO, UPDATE, MESSAGE or NOTIFY inside the dialog: answer or forward it."""


class InviteSession:
    """One dialog's INVITE usage: state, in-dialog requests, re-INVITE and BYE."""

    def __init__(self, ua: UserAgent, dialog: Dialog, state: SessionState) -> None:
        self.ua = ua
        self.dialog = dialog
        self.state = state
        self.listener: SessionListener | None = None
        self.reinvite_pending = False  # our own re-INVITE awaits its final answer

    @property
    def key(self) -> tuple[str, str]:
        """Call-ID and our tag: how in-dialog requests find this session."""
        return self.dialog.key

    @property
    def transport(self) -> str:
        """UDP or TCP, as the other side talks to us."""
        return self.dialog.peer.transport

    def on_request(self, txn: ServerTransaction) -> None:
        """A request inside this dialog: sequence checks, then BYE, re-INVITE or the listener."""
        request = txn.request
        if not self.dialog.accept_remote_cseq(request.cseq[0]):
            txn.respond(500, "Server Internal Error (CSeq out of order)")
            return
        if request.contacts:  # a target refresh (RFC 3261 §12.2.2)
            self.dialog.remote_target = str(request.contacts[0].uri)
        method = request.method
        listener = self.listener
        if method == "BYE":
            txn.respond(200)
            self.state = SessionState.DISCONNECTED
            if listener is not None:
                listener.on_bye(self)
        elif method == "INVITE":
            if self.reinvite_pending:  # both sides re-INVITE at once (RFC 3261 §14.2)
                txn.respond(491)
            elif listener is not None:
                listener.on_reinvite(self, txn)
            else:
                txn.respond(500)
        elif method == "OPTIONS":
            txn.respond(200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif method in ("INFO", "UPDATE", "MESSAGE", "NOTIFY") and listener is not None:
            listener.on_in_dialog(self, txn)
        else:
            txn.respond(405, extra=[("Allow", ALLOW)])

    def reinvite(self, body: bytes, on_answer: Callable[[Response], None]) -> bool:
        """Send a re-INVITE; on_answer gets its final response after the 2xx is ACKed. False in glare."""
        if self.reinvite_pending or self.state != SessionState.CONFIRMED:
            return False
        self.reinvite_pending = True
        request = self.ua.request(self.dialog, "INVITE", body)

        def answered(response: Response) -> None:
            if response.status < 200:
                return
            if not self.reinvite_pending:  # a retransmitted 2xx: ACK it again
                if response.status < 300:
                    self.ua.layer.send_ack(self.ua.request(self.dialog, "ACK", cseq=request.cseq[0]),
                                           self.dialog.peer)
                return
            self.reinvite_pending = False
            if response.status < 300:
                self.ua.layer.send_ack(self.ua.request(self.dialog, "ACK", cseq=request.cseq[0]), self.dialog.peer)
            on_answer(response)

        self.ua.layer.send_request(request, self.dialog.peer, answered)
        return True

    def send(self, method: str, body: bytes = b"", content_type: str | None = None,
             headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
             on_answer: Callable[[Response], None] = lambda response: None) -> None:
        """Send another request in the dialog (INFO, UPDATE, NOTIFY...); on_answer gets its final response."""
        request = self.ua.request(self.dialog, method, body, content_type)
        for name, value in headers:
            request.set_header(name, value)
        def answered(response: Response) -> None:
            if response.status >= 200:
                on_answer(response)

        self.ua.layer.send_request(request, self.dialog.peer, answered)

    def on_stray_2xx(self, response: Response) -> None:
        """A 2xx to one of our INVITEs, retransmitted after its transaction ended: ACK it again."""
        if self.dialog.remote_tag == (response.to.tag or ""):
            self.ua.layer.send_ack(self.ua.request(self.dialog, "ACK", cseq=response.cseq[0]), self.dialog.peer)

    def bye(self) -> None:
        """End the session."""
        if self.state == SessionState.DISCONNECTED:
            return
        self.state = SessionState.DISCONNECTED
        self.ua.layer.send_request(self.ua.request(self.dialog, "BYE"), self.dialog.peer, lambda r: None)


class ClientInvite(InviteSession):
    """A session the box starts: one INVITE to one target (a fork of a call)."""

    def __init__(self, ua: UserAgent, dialog: Dialog, dest: Peer, body: bytes, max_forwards: int,
                 credentials: Credentials | None,
                 on_provisional: Callable[[ClientInvite, Response], None],
                 on_answered: Callable[[ClientInvite, Response], None],
                 on_failed: Callable[[ClientInvite, int], None], label: str = "") -> None:
        super().__init__(ua, dialog, SessionState.CALLING)
        self.dest = dest
        self.label = label  # the controller's name for the target (an extension, a trunk)
        self.credentials = credentials
        self.final = 0             # the final status once there is one
        self.provisional = False   # a provisional response came: CANCEL may go (RFC 3261 §9.1)
        self.cancel_pending = False
        self.auth_tried = False
        self._on_provisional, self._on_answered, self._on_failed = on_provisional, on_answered, on_failed
        self._ack: Request | None = None
        self.request = self._invite(body, max_forwards)
        self.txn: ClientTransaction | None = None

    def _invite(self, body: bytes, max_forwards: int) -> Request:
        request = self.ua.request(self.dialog, "INVITE", body, cseq=self.dialog.local_cseq)
        request.set_header("Max-Forwards", str(max(max_forwards, 0)))
        request.add_header("Allow", ALLOW)
        return request

    def start(self) -> None:
        """Send the INVITE."""
        self.txn = self.ua.layer.send_request(self.request, self.dest, self._on_response)

    def _on_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            self.provisional = True
            if self.cancel_pending:
                self._send_cancel()
                return
            if status > 100 and response.to.tag:
                self.dialog.remote_tag = response.to.tag
                if self.state == SessionState.CALLING:
                    self.state = SessionState.EARLY
            self._on_provisional(self, response)
        elif status < 300:
            self._answered(response)
        elif status in (401, 407) and self.credentials is not None and not self.auth_tried:
            self._retry_with_auth(response)
        else:
            self._fail(status)

    def _answered(self, response: Response) -> None:
        if self.final == 0:
            self.dialog.confirm_uac(response)
            self.final = response.status
            self.state = SessionState.CONNECTING
            self._on_answered(self, response)
        elif self._ack is not None:  # a retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4)
            # A fresh branch, as before the session layer: SIPp takes an identical ACK for a
            # retransmission of the first and waits on.
            self._send_ack(self._ack.body)

    def _fail(self, status: int) -> None:
        self.final = status
        self.state = SessionState.DISCONNECTED
        self._on_failed(self, status)

    def _retry_with_auth(self, response: Response) -> None:
        """Answer a trunk's digest challenge once, with the next CSeq (RFC 3261 §22.2)."""
        creds = self.credentials
        assert creds is not None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = response.header(header)
        if challenge is None:
            self._fail(response.status)
            return
        try:
            authorization = build_authorization(challenge, "INVITE", self.request.uri, creds.username, creds.secret)
        except ValueError as exc:
            log.warning("trunk %s: cannot answer challenge: %s", creds.label, exc)
            self._fail(response.status)
            return
        self.auth_tried = True
        self.dialog.local_cseq += 1
        request = self._invite(self.request.body, int(self.request.header("Max-Forwards") or 70))
        request.set_header("Authorization" if response.status == 401 else "Proxy-Authorization", authorization)
        self.request = request
        self.provisional = False
        self.txn = self.ua.layer.send_request(request, self.dest, self._on_response)

    def ack(self, body: bytes = b"") -> None:
        """ACK the 2xx (a new transaction, end to end); a late offer's answer goes in body."""
        self._send_ack(body)
        if self.state == SessionState.CONNECTING:
            self.state = SessionState.CONFIRMED

    def _send_ack(self, body: bytes) -> None:
        self._ack = self.ua.request(self.dialog, "ACK", body, cseq=self.request.cseq[0])
        self.ua.layer.send_ack(self._ack, self.dialog.peer)

    def on_stray_2xx(self, response: Response) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again (the same ACK for our INVITE)."""
        if response.cseq[0] == self.request.cseq[0] and self.dialog.remote_tag == (response.to.tag or ""):
            self._answered(response)
        else:
            super().on_stray_2xx(response)

    def cancel(self) -> None:
        """CANCEL the INVITE: now if it has rung, else as soon as it does (RFC 3261 §9.1)."""
        if self.final:
            return
        if self.provisional:
            self._send_cancel()
        else:
            self.cancel_pending = True

    def _send_cancel(self) -> None:
        self.cancel_pending = False
        invite = self.request
        headers = [["Via", invite.header_lines("Via")[0]], ["Max-Forwards", "70"],
                   ["From", invite.header("From") or ""], ["To", invite.header("To") or ""],
                   ["Call-ID", invite.call_id], ["CSeq", f"{invite.cseq[0]} CANCEL"]]
        headers += [["Route", r] for r in invite.header_lines("Route")]
        self.ua.layer.send_request(Request("CANCEL", invite.uri, headers), self.dest, lambda r: None)
        txn = self.txn
        if txn is not None:  # RFC 3261 §9.1: no final answer 64*T1 after the CANCEL ends the INVITE anyway
            self.ua.layer.loop.call_later(64 * T1, _end_if_unanswered, txn)

    def hang_up_late(self) -> None:
        """A 2xx the call no longer wants (another fork won, or it was cancelled): ACK, then BYE."""
        self.ack()
        self.bye()


class ServerInvite(InviteSession):
    """The session of an INVITE the box received (a call's A leg)."""

    def __init__(self, ua: UserAgent, txn: ServerTransaction) -> None:
        super().__init__(ua, Dialog.as_uas(txn.request, txn.peer, new_tag()), SessionState.INCOMING)
        self.txn = txn
        self.late_offer = not txn.request.body
        # RFC 3261 §15: no BYE before the caller has ACKed our 200 (or that timed out).
        self.confirmed = False
        self.bye_waits_for_ack = False

    @property
    def request(self) -> Request:
        """The INVITE."""
        return self.txn.request

    def provisional(self, status: int, body: bytes = b"") -> None:
        """180 or 183 (with an early answer in body)."""
        extra = [("Contact", self.ua.contact(self.txn.peer.transport))]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        self.txn.respond(status, to_tag=self.dialog.local_tag, extra=extra, body=body)
        if self.state == SessionState.INCOMING:
            self.state = SessionState.EARLY

    def answer(self, body: bytes) -> None:
        """200 OK (with our SDP in body); the session then waits for the ACK."""
        extra = [("Contact", self.ua.contact(self.txn.peer.transport)), ("Allow", ALLOW)]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        self.txn.respond(200, to_tag=self.dialog.local_tag, extra=extra, body=body)
        self.state = SessionState.CONNECTING

    def reject(self, status: int, reason: str | None = None) -> None:
        """A final failure for the INVITE."""
        self.txn.respond(status, reason, to_tag=self.dialog.local_tag)
        self.state = SessionState.DISCONNECTED

    @property
    def answered(self) -> bool:
        """Whether the INVITE has had its final response."""
        return self.state in (SessionState.CONNECTING, SessionState.CONFIRMED) or self.txn.answered

    def on_ack(self) -> None:
        """The caller's ACK for our 2xx arrived (or the wait for it ended: RFC 3261 §13.3.1.4)."""
        self.confirmed = True
        if self.state == SessionState.CONNECTING:
            self.state = SessionState.CONFIRMED
        if self.bye_waits_for_ack:
            self.bye_waits_for_ack = False
            self.state = SessionState.CONFIRMED
            self.bye()

    def bye(self) -> None:
        """End an answered session; before the ACK came the BYE waits for it (RFC 3261 §15)."""
        if not self.confirmed:
            self.bye_waits_for_ack = True
            return
        super().bye()


def _end_if_unanswered(txn: ClientTransaction) -> None:
    """The INVITE got no final answer 64*T1 after its CANCEL: end it."""
    if txn.state in ("calling", "proceeding"):
        txn.terminate()
