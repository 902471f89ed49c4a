"""A bridged call: the caller's session (leg A), the forks the box rings, the answering leg B and the relay."""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..media.dtmf import parse_info_dtmf
from ..media.recording import RelayRecording
from ..sip import sdp as sdp_mod
from ..sip import sdp_local
from ..sip.headers import quote
from ..sip.invite_session import ClientInvite, InviteSession, ServerInvite
from ..sip.message import Request, Response
from ..sip.targets import Target, TrunkPeer
from ..sip.transaction import ServerTransaction
from .legs import CallState, Leg, PlacingCall
from .media_anchor import MediaAnchor
from .records import CallInfo, disposition_for

if TYPE_CHECKING:
    from .b2bua import B2BUA

log = logging.getLogger("switchboard.calls.bridge")


class Call(PlacingCall):
    """A caller's call: routing → ringing → answered → ended, over leg A's session and the forks."""

    def __init__(self, b2bua: B2BUA, txn: ServerTransaction, info: CallInfo) -> None:
        super().__init__()
        self.b2bua = b2bua
        self.info = info
        self.caller = ServerInvite(b2bua.ua, txn)
        self.caller.listener = self
        self.a = Leg(self.caller, "a", info.from_number)
        self.b: Leg | None = None
        self.relay = None
        self.state: CallState = CallState.ROUTING
        self.timed_out = False
        # Late offer: an INVITE without SDP gets the callee's offer in our 200, and the callee's ACK
        # waits for the caller's ACK, which carries the answer (RFC 3264 §5, RFC 3261 §13.2.1).
        self.late_offer = self.caller.late_offer
        self.b_sdp_session = random.randrange(1, 2**31)  # the B side keeps one o= session id
        self.held_ack: ClientInvite | None = None
        self._index(self.a.dialog.key, self.a)
        # When the box itself answers the caller (IVR, prompts), the media channel is its end of
        # leg A, and ring() becomes a transfer: the caller hears ringback, not 180s.
        self.box_answered = False
        self.channel = None  # type: ignore[var-annotated]  # MediaChannel while the box holds leg A
        self.media_choice: sdp_local.MediaChoice | None = None
        self._on_box_ready: Callable[[sdp_local.MediaChoice], None] | None = None
        self._on_transfer_ringing: Callable[[str], None] | None = None
        self._on_transfer_failed: Callable[[int], None] | None = None
        self._on_transfer_answered: Callable[[str], None] | None = None
        self.on_finish: list[Callable[[], None]] = []
        self.relay_recording: RelayRecording | None = None

    @property
    def invite(self) -> ServerTransaction:
        """The caller's INVITE transaction."""
        return self.caller.txn

    @property
    def caller_confirmed(self) -> bool:
        """Whether the caller ACKed our 2xx (or the wait for it ended)."""
        return self.caller.confirmed

    def legs(self) -> tuple[Leg | None, ...]:
        """Leg A and, once answered, leg B."""
        return (self.a, self.b)

    # --- setting up -------------------------------------------------------
    def offer_sdp_for_b(self) -> bytes | None:
        """Anchor the caller's offer on the relay's B side; None if it has no usable audio."""
        request = self.caller.request
        if not request.body:
            return b""
        return self.anchor.pass_on(request.body, "a", "b", self.b_sdp_session, 1)

    @property
    def anchor(self) -> MediaAnchor:
        """The SDP side of the call's relay."""
        return MediaAnchor(self.relay, self.b2bua.endpoint.host, self.info.record_id)

    def answer_locally(self, answered_by: str, ready: Callable[[sdp_local.MediaChoice], None]) -> None:
        """The box answers the caller itself; ready(choice) runs once the caller has ACKed."""
        request = self.caller.request
        endpoint = self.b2bua.endpoint
        try:
            if request.body:
                choice = sdp_local.choose(sdp_mod.parse_sdp(request.body))
                self._use_choice(choice)
                body = sdp_local.local_answer(choice, endpoint.host, self.relay.a.port,
                                              self.a.sdp_session, self.a.next_sdp_version())
            else:  # late offer: the box offers, the caller's ACK answers
                body = sdp_local.local_offer(endpoint.host, self.relay.a.port, self.a.sdp_session,
                                             self.a.next_sdp_version())
        except sdp_mod.SdpError as exc:
            log.info("call %s: cannot answer locally: %s", self.info.record_id, exc)
            self.fail(488, None, "failed")
            return
        self.box_answered = True
        self.state = CallState.ANSWERED
        self._on_box_ready = ready
        self.caller.answer(body)
        self.b2bua.calls.answered(self.info, answered_by)

    def _use_choice(self, choice: sdp_local.MediaChoice) -> None:
        """Point leg A's media at what the caller's SDP says."""
        self.media_choice = choice
        if choice.host is not None and choice.port:
            self.relay.set_remote("a", choice.host, choice.port)

    def transfer(self, targets: list[Target], on_ringing: Callable[[str], None], on_answered: Callable[[str], None],
                 on_failed: Callable[[int], None], timeout: float | None = None) -> None:
        """Ring targets for a caller the box has answered; on answer the two are bridged."""
        channel = self.channel
        if not self.box_answered or channel is None or self.state != "answered" or self.b is not None:
            raise RuntimeError("transfer needs a call the box answered and still holds")
        self.forks.clear()
        self.timed_out = False
        self._on_transfer_ringing, self._on_transfer_answered, self._on_transfer_failed = \
            on_ringing, on_answered, on_failed
        # Offer the callee exactly the caller's codec and event numbering: the relay then
        # passes audio untouched, and only the header is spliced into the caller's stream.
        body = sdp_local.local_offer(self.b2bua.endpoint.host, self.relay.b.port, self.b_sdp_session, 1,
                                     codecs=(channel.codec.name,),
                                     event_pt=channel.event_pt or sdp_local.DEFAULT_EVENT_PT,
                                     payload_types={channel.codec.name: channel.payload_type})
        self.ring(targets, body, timeout)

    def cancel_transfer(self) -> None:
        """Stop ringing a transfer without failing it: the caller stays with the box, media untouched."""
        if not self.box_answered or self.state != "ringing":
            return
        self._cancel_ring_timer()
        self.forks.cancel()
        self.state = CallState.ANSWERED  # so a 2xx that crosses the CANCEL is ACKed and BYEd as too late

    def ring(self, targets: list[Target], body: bytes, timeout: float | None = None) -> None:
        """Send an INVITE to every target: (request URI, where to send, label, trunk)."""
        b2bua = self.b2bua
        info = self.info

        def addresses(label: str, trunk: TrunkPeer | None) -> tuple[str, str]:
            name = f"{quote(info.display_name)} " if info.display_name else ""
            if trunk is not None:
                return (f"{name}<sip:{trunk.username or info.from_number}@{trunk.domain}>",
                        f"<sip:{info.to_number}@{trunk.domain}>")
            host = b2bua.endpoint.host
            return f"{name}<sip:{info.from_number}@{host}>", f"<sip:{label}@{host}>"

        self.state = CallState.RINGING
        self._send_forks(targets, body, int(self.caller.request.header("Max-Forwards") or 70) - 1, addresses)
        self.ring_timer = b2bua.loop.call_later(b2bua.ring_timeout() if timeout is None else timeout,
                                                self.ring_timeout)

    # --- responses from the forks -----------------------------------------
    def _fork_provisional(self, fork: ClientInvite, response: Response) -> None:
        if self.state != "ringing" or response.status == 100 or fork not in self.forks:
            return
        if self.box_answered:
            if self.info.extension != fork.label:
                self.b2bua.calls.ringing(self.info, fork.label)
                if self._on_transfer_ringing is not None:
                    self._on_transfer_ringing(fork.label)
            return
        body = b""
        if response.body and response.content_type == "application/sdp":
            body = self._answer_sdp_for_a(response.body)
        if not self.info.extension or self.info.extension != fork.label:
            self.b2bua.calls.ringing(self.info, fork.label)
        self.caller.provisional(183 if body else 180, body)

    def _answer_sdp_for_a(self, body: bytes) -> bytes:
        return self.anchor.pass_on(body, "b", "a", self.a.sdp_session, self.a.next_sdp_version())

    def _fork_answered(self, fork: ClientInvite, response: Response) -> None:
        if self.b is not None or self.state != "ringing" or fork not in self.forks:  # answered too late
            fork.hang_up_late()
            return
        fork.listener = self
        self.b = Leg(fork, "b", fork.label, self.b_sdp_session, sdp_version=1)
        self._index(fork.key, self.b)
        self.state = CallState.ANSWERED
        self._cancel_ring_timer()
        self.forks.cancel(keep=fork)
        if self.box_answered:
            self._transfer_answered(fork, response)
            return
        if self.late_offer and response.body:
            self.held_ack = fork
        else:
            fork.ack()
        body = self._answer_sdp_for_a(response.body) if response.body else b""
        self.caller.answer(body)
        self.b2bua.calls.answered(self.info, fork.label)
        self._start_recording()

    def _start_recording(self) -> None:
        """Record the bridged call if the box's recording policy says so."""
        policy = self.b2bua.recording
        if policy is None or self.relay is None or not policy.wants(self.info):
            return
        recorder, relative = policy.open(self.info)
        self.relay_recording = RelayRecording(self.relay, recorder, "a")
        self.b2bua.calls.recording(self.info, relative)

    def _transfer_answered(self, fork: ClientInvite, response: Response) -> None:
        """The callee answered a transfer: ACK, then bridge the caller into it."""
        fork.ack()
        try:
            answer = sdp_mod.parse_sdp(response.body) if response.body else None
        except sdp_mod.SdpError:
            answer = None
        if answer is None:
            log.info("call %s: %s answered without usable SDP", self.info.record_id, fork.label)
            fork.bye()
            self.b = None
            self.state = CallState.ANSWERED
            if self._on_transfer_failed is not None:
                self._on_transfer_failed(488)
            return
        self.anchor.learn("b", answer)
        if self.channel is not None:
            self.channel.connect()
        self.b2bua.calls.connected(self.info, fork.label)
        if self._on_transfer_answered is not None:
            self._on_transfer_answered(fork.label)

    def caller_acked(self, request: Request) -> None:
        """The caller's ACK for our 200: with a late offer it carries the answer for the callee."""
        self.caller.on_ack()
        ready, self._on_box_ready = self._on_box_ready, None
        if ready is not None and self.state == "answered":
            if self.media_choice is None:
                try:
                    self._use_choice(sdp_local.choose(sdp_mod.parse_sdp(request.body or b"")))
                except sdp_mod.SdpError as exc:
                    log.info("call %s: no usable answer in the caller's ACK: %s", self.info.record_id, exc)
                    self.hangup(None)
                    return
            assert self.media_choice is not None
            ready(self.media_choice)
            return
        fork, self.held_ack = self.held_ack, None
        if fork is None or self.b is None:
            return
        body = b""
        if request.body:
            try:
                body = self.anchor.pass_on(request.body, "a", "b", self.b.sdp_session, self.b.next_sdp_version())
            except sdp_mod.SdpError as exc:
                log.info("call %s: unusable SDP in the caller's ACK: %s", self.info.record_id, exc)
        fork.ack(body)
        if not body:
            self.hangup(None)  # no answer to the callee's offer: the session cannot work

    def ack_timed_out(self) -> None:
        """The caller never ACKed our 200: hang up (RFC 3261 §13.3.1.4)."""
        self.caller.on_ack()
        if self.state == "answered":
            log.warning("no ACK for call %s; hanging up", self.info.record_id)
            if self.held_ack is not None:
                self.held_ack.ack()
                self.held_ack = None
            self.hangup(None)  # BYE both legs

    def _fork_failed(self, fork: ClientInvite, status: int) -> None:
        if self.state != "ringing" or fork not in self.forks or self.forks.pending():
            return
        self.fail(480 if self.timed_out else self.forks.final_status())

    def _transfer_failed(self, status: int) -> None:
        """Nobody took a transfer: the caller stays with the box."""
        self.state = CallState.ANSWERED
        self._cancel_ring_timer()
        if self._on_transfer_failed is not None:
            self._on_transfer_failed(status)

    # --- ending -----------------------------------------------------------
    def fail(self, status: int, reason: str | None = None, disposition: str | None = None) -> None:
        """Answer the caller with a failure and close the call."""
        if self.state == "ended":
            return
        if self.box_answered:
            self._transfer_failed(status)
            return
        self.caller.reject(status, reason)
        self.finish(disposition or ("no-answer" if self.timed_out else disposition_for(status)), status, None)

    def ring_timeout(self) -> None:
        """Nobody answered in time: cancel the forks and tell the caller."""
        self.ring_timer = None
        if self.state != "ringing":
            return
        self.timed_out = True
        self.forks.cancel()
        self.fail(480, "Temporarily Unavailable (no answer)", "no-answer")

    def caller_cancelled(self) -> None:
        """The caller sent CANCEL while it rang."""
        if self.state not in ("routing", "ringing"):
            return
        self.forks.cancel()
        self.caller.reject(487)
        self.finish("cancelled", 487, self.info.from_number)

    def hangup(self, by: Leg | None, status: int | None = None) -> None:
        """End an answered call: BYE the other side(s)."""
        if self.state == "ended":
            return
        if self.state == "ringing":  # a transfer of a caller the box answered is still ringing
            self.forks.cancel()
        for leg in (self.a, self.b):
            if leg is not None and leg is not by:
                leg.session.bye()
        self.finish("answered", status, by.label if by else "box")

    def finish(self, disposition: str, status: int | None, hangup_by: str | None) -> None:
        """Release everything and write the record."""
        if self.state == "ended":
            return
        self.state = CallState.ENDED
        self._cancel_ring_timer()
        for callback in self.on_finish:
            try:
                callback()
            except Exception:
                log.exception("call %s: clean-up failed", self.info.record_id)
        if self.channel is not None:
            self.b2bua.calls.note(self.info, media=self.channel.close())
        if self.relay_recording is not None:
            self.relay_recording.stop()
            self.relay_recording.recorder.close()
        if self.relay is not None:
            self.relay.close()
        self.b2bua.forget(self)
        self.b2bua.calls.ended(self.info, disposition, status, hangup_by)

    # --- in-dialog requests (the sessions' listener) -------------------------
    def on_bye(self, session: InviteSession) -> None:
        """BYE from either side (already answered 200)."""
        if self.state in ("routing", "ringing") and not self.box_answered:  # BYE on the early dialog (RFC 3261 §15): as a CANCEL
            self.caller_cancelled()
        else:
            self.hangup(self.leg_of(session))

    def on_reinvite(self, session: InviteSession, txn: ServerTransaction) -> None:
        """A re-INVITE: answered by the box while it holds the caller, else passed to the other leg."""
        leg = self.leg_of(session)
        if leg is None:
            txn.respond(481)
        elif self.box_answered and self.b is None:
            self._local_reinvite(txn)
        else:
            self._reinvite(txn, leg)

    def on_in_dialog(self, session: InviteSession, txn: ServerTransaction) -> None:
        """INFO (DTMF) and UPDATE for the box while it holds the caller; otherwise passed through."""
        leg = self.leg_of(session)
        if leg is None:
            txn.respond(481)
        elif self.box_answered and self.b is None and txn.request.method in ("INFO", "UPDATE"):
            self._local_info(txn)
        else:
            self._forward(txn, leg)

    def _local_reinvite(self, txn: ServerTransaction) -> None:
        """A re-INVITE while the box holds the caller: answer it with the box's own SDP."""
        if self.state not in ("answered", "ringing"):
            txn.respond(500)
            return
        endpoint = self.b2bua.endpoint
        if not txn.request.body:
            body = sdp_local.local_offer(endpoint.host, self.relay.a.port, self.a.sdp_session,
                                         self.a.next_sdp_version())
        else:
            try:
                choice = sdp_local.choose(sdp_mod.parse_sdp(txn.request.body))
            except sdp_mod.SdpError:
                txn.respond(488)
                return
            if self.channel is not None and choice.codec != self.channel.codec.name:
                txn.respond(488, "Not Acceptable Here (codec change)")
                return
            self._use_choice(choice)
            body = sdp_local.local_answer(choice, endpoint.host, self.relay.a.port, self.a.sdp_session,
                                          self.a.next_sdp_version())
        extra = [("Contact", self.b2bua.ua.contact(txn.peer.transport)), ("Content-Type", "application/sdp")]
        txn.respond(200, to_tag=self.a.dialog.local_tag, extra=extra, body=body)

    def _local_info(self, txn: ServerTransaction) -> None:
        """INFO (DTMF relay) or UPDATE while the box holds the caller."""
        request = txn.request
        if request.method == "UPDATE":
            txn.respond(200 if not request.body else 488, to_tag=self.a.dialog.local_tag)
            return
        digit = parse_info_dtmf(request.content_type or "", request.body or b"") if request.body else None
        if request.body and digit is None:
            txn.respond(415, extra=[("Accept", "application/dtmf-relay, application/dtmf")])
            return
        txn.respond(200, to_tag=self.a.dialog.local_tag)
        if digit is not None and self.channel is not None:
            self.channel.inject_digit(digit.digit, "info")

    def _other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def _reinvite(self, txn: ServerTransaction, leg: Leg) -> None:
        """Pass a re-INVITE to the other leg with the SDP anchored on the relay, and its answer back."""
        other = self._other(leg)
        if self.state != "answered" or other is None:
            txn.respond(491 if self.state == "answered" else 500)
            return
        if other.session.reinvite_pending:  # glare across the bridge (RFC 3261 §14.2)
            txn.respond(491)
            return
        body = b""
        if txn.request.body:
            try:
                body = self.anchor.pass_on(txn.request.body, leg.relay_side, other.relay_side,
                                           other.sdp_session, other.next_sdp_version())
            except sdp_mod.SdpError:
                txn.respond(488)
                return

        def answered(response: Response) -> None:
            leg.session.reinvite_pending = False
            if response.status >= 300:
                txn.respond(response.status, response.reason, to_tag=leg.dialog.local_tag)
                return
            answer = b""
            if response.body:
                try:
                    answer = self.anchor.pass_on(response.body, other.relay_side, leg.relay_side,
                                                 leg.sdp_session, leg.next_sdp_version())
                except sdp_mod.SdpError:
                    answer = b""
            extra = [("Contact", self.b2bua.ua.contact(txn.peer.transport))]
            if answer:
                extra.append(("Content-Type", "application/sdp"))
            txn.respond(200, to_tag=leg.dialog.local_tag, extra=extra, body=answer)

        if not other.session.reinvite(body, answered):
            txn.respond(491)  # a re-INVITE is already under way on the other leg (RFC 3261 §14.2)
            return
        # While the other leg's re-INVITE is out, a second one from this leg is glare too.
        leg.session.reinvite_pending = True

    def _forward(self, txn: ServerTransaction, leg: Leg) -> None:
        """Pass INFO, UPDATE, MESSAGE or NOTIFY to the other leg, and its final answer back."""
        other = self._other(leg)
        if other is None:
            txn.respond(481)
            return
        source = txn.request
        headers = [(name, source.header(name) or "") for name in ("Event", "Subscription-State")
                   if source.header(name)]
        other.session.send(source.method, source.body, source.header("Content-Type"), headers,
                           lambda response: txn.respond(response.status, response.reason,
                                                        to_tag=leg.dialog.local_tag))
