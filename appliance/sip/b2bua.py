"""The back-to-back user agent: one call = an A leg we answer and B legs we place, media anchored."""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..calls.records import CallInfo, CallLog, disposition_for
from ..calls.router import Route
from . import sdp as sdp_mod
from . import sdp_local
from ..calls.recording import RecordingPolicy
from ..media.dtmf import parse_info_dtmf
from ..media.recording import RelayRecording
from .dialog import Dialog, new_tag
from .digest import build_authorization
from .headers import quote
from .message import Request, Response
from .registrar import LocationService
from .transaction import T1, ClientTransaction, ServerTransaction, TransactionLayer
from .transport import Peer

log = logging.getLogger("switchboard.sip.b2bua")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER"


class Endpoint(Protocol):
    """How the B2BUA names itself in Via and Contact."""

    host: str
    port: int

    def via(self, transport: str, branch: str) -> str:
        """A Via value for a request we send."""

    def contact(self, user: str, transport: str) -> str:
        """A Contact value for a request or response we send."""


@dataclass
class TrunkPeer:
    """What the B2BUA needs to place a call on a trunk."""

    name: str
    peer: Peer
    domain: str
    username: str | None
    secret: str | None
    inbound: str = ""


@dataclass
class Leg:
    """One side of the call once a dialog exists."""

    dialog: Dialog
    relay_side: str           # "a" or "b"
    label: str                # extension number or trunk name, for records and logs
    sdp_session: int = field(default_factory=lambda: random.randrange(1, 2**31))
    sdp_version: int = 0

    def next_sdp_version(self) -> int:
        """Version for the next SDP the box sends on this leg."""
        self.sdp_version += 1
        return self.sdp_version


@dataclass
class Fork:
    """One INVITE the box sent for a call (a registered contact, or a trunk)."""

    request: Request
    dest: Peer
    label: str
    dialog: Dialog
    txn: ClientTransaction | None = None
    provisional: bool = False
    cancel_pending: bool = False
    final: int = 0
    auth_tried: bool = False


class UacCall:
    """What a call that places INVITEs shares: forks, digest retry on trunks, CANCEL, ACK and BYE."""

    b2bua: B2BUA
    info: CallInfo
    state: str                # "ended" once over
    forks: list[Fork]
    dialog_keys: set[tuple[str, str]]

    def on_request(self, txn: ServerTransaction, leg: Leg) -> None:
        """A request inside one leg's dialog."""
        raise NotImplementedError

    ring_timer: asyncio.TimerHandle | None

    def _cancel_ring_timer(self) -> None:
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None

    @staticmethod
    def _accept_in_dialog(txn: ServerTransaction, leg: Leg) -> bool:
        """CSeq order and target refresh, for any request inside a dialog; False when it was refused."""
        request = txn.request
        if not leg.dialog.accept_remote_cseq(request.cseq[0]):
            txn.respond(500, "Server Internal Error (CSeq out of order)")
            return False
        if request.contacts:
            leg.dialog.remote_target = str(request.contacts[0].uri)
        return True

    def _index(self, key: tuple[str, str], leg: Leg | None) -> None:
        """Let in-dialog requests with this Call-ID and tag find the call (and leg)."""
        self.b2bua.dialogs[key] = (self, leg)
        self.dialog_keys.add(key)

    def _send_forks(self, targets: list[tuple[str, Peer, str, TrunkPeer | None]], body: bytes, max_forwards: int,
                    addresses: Callable[[str, TrunkPeer | None], tuple[str, str]], media_side: str = "b") -> None:
        """INVITE every target in one new Call-ID; addresses(label, trunk) gives the From and To.

        The relay's media_side may latch to media from the targets' signalling addresses.
        """
        call_id = new_tag() + new_tag()
        from_tag = new_tag()
        relay = getattr(self, "relay", None)
        if relay is not None:
            relay.expect_from(media_side, *(dest.host for _ruri, dest, _label, _trunk in targets))
        for ruri, dest, label, trunk in targets:
            from_uri, to_uri = addresses(label, trunk)
            dialog = Dialog(call_id=call_id, local_tag=from_tag, local_uri=from_uri, remote_uri=to_uri,
                            peer=dest, remote_target=ruri, local_cseq=1)
            request = self._fork_invite(dialog, dest, body, max_forwards)
            fork = Fork(request, dest, label, dialog)
            self.forks.append(fork)
            self._index(dialog.key, None)
            fork.txn = self.b2bua.layer.send_request(request, dest,
                                                     lambda r, f=fork, t=trunk: self.on_fork_response(f, r, t))

    def _fork_invite(self, dialog: Dialog, dest: Peer, body: bytes, max_forwards: int) -> Request:
        b2bua = self.b2bua
        request = dialog.request("INVITE", b2bua.endpoint.via(dest.transport, b2bua.layer.new_branch()),
                                 b2bua.endpoint.contact("switchboard", dest.transport), body,
                                 cseq=dialog.local_cseq)
        request.set_header("Max-Forwards", str(max(max_forwards, 0)))
        request.add_header("Allow", ALLOW)
        return request

    def on_fork_response(self, fork: Fork, response: Response, trunk: TrunkPeer | None) -> None:
        """Handle a response to one of our INVITEs."""
        status = response.status
        if status < 200:
            self._fork_provisional(fork, response)
        elif status < 300:
            self._fork_answered(fork, response)
        elif status in (401, 407) and trunk is not None and not fork.auth_tried and trunk.secret:
            self._retry_with_auth(fork, response, trunk)
        else:
            fork.final = status
            self._fork_failed()

    def _fork_provisional(self, fork: Fork, response: Response) -> None:
        raise NotImplementedError

    def _fork_answered(self, fork: Fork, response: Response) -> None:
        raise NotImplementedError

    def _fork_failed(self) -> None:
        """A fork got a final failure: once none rings any more, the attempt has failed."""
        raise NotImplementedError

    def _is_current(self, fork: Fork) -> bool:
        """Whether a fork belongs to the attempt now ringing (not one the box already gave up)."""
        return any(f is fork for f in self.forks)

    def _ack_fork(self, fork: Fork, body: bytes = b"") -> None:
        """ACK a fork's 2xx (a new transaction, sent end to end)."""
        transport = fork.dest.transport
        ack = fork.dialog.request("ACK", self.b2bua.endpoint.via(transport, self.b2bua.layer.new_branch()),
                                  self.b2bua.endpoint.contact("switchboard", transport), body,
                                  cseq=fork.request.cseq[0])
        self.b2bua.layer.send_ack(ack, self._dest(fork.dialog))

    def _retry_with_auth(self, fork: Fork, response: Response, trunk: TrunkPeer) -> None:
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = response.header(header)
        if challenge is None:
            fork.final = response.status
            self._fork_failed()
            return
        try:
            credentials = build_authorization(challenge, "INVITE", fork.request.uri,
                                              trunk.username or "", trunk.secret or "")
        except ValueError as exc:
            log.warning("trunk %s: cannot answer challenge: %s", trunk.name, exc)
            fork.final = response.status
            self._fork_failed()
            return
        fork.auth_tried = True
        fork.dialog.local_cseq += 1
        request = self._fork_invite(fork.dialog, fork.dest, fork.request.body,
                                    int(fork.request.header("Max-Forwards") or 70))
        request.set_header("Authorization" if response.status == 401 else "Proxy-Authorization", credentials)
        fork.request = request
        fork.provisional = False
        fork.txn = self.b2bua.layer.send_request(request, fork.dest,
                                                 lambda r: self.on_fork_response(fork, r, trunk))

    def _cancel_fork(self, fork: Fork) -> None:
        if fork.provisional:
            self._send_cancel(fork)
        else:
            fork.cancel_pending = True

    def _send_cancel(self, fork: Fork) -> None:
        fork.cancel_pending = False
        invite = fork.request
        headers = [["Via", invite.header_lines("Via")[0]], ["Max-Forwards", "70"],
                   ["From", invite.header("From") or ""], ["To", invite.header("To") or ""],
                   ["Call-ID", invite.call_id], ["CSeq", f"{invite.cseq[0]} CANCEL"]]
        headers += [["Route", r] for r in invite.header_lines("Route")]
        self.b2bua.layer.send_request(Request("CANCEL", invite.uri, headers), fork.dest, lambda r: None)
        txn = fork.txn
        if txn is not None:  # RFC 3261 §9.1: no final answer 64*T1 after the CANCEL ends the INVITE anyway
            self.b2bua.loop.call_later(64 * T1, lambda: txn.state in ("calling", "proceeding") and txn.terminate())

    def _send_bye(self, leg: Leg) -> None:
        dialog = leg.dialog
        transport = dialog.peer.transport
        request = dialog.request("BYE", self.b2bua.endpoint.via(transport, self.b2bua.layer.new_branch()),
                                 self.b2bua.endpoint.contact("switchboard", transport))
        self.b2bua.layer.send_request(request, self._dest(dialog), lambda r: None)

    def _dest(self, dialog: Dialog) -> Peer:
        return dialog.peer


class Call(UacCall):
    """A bridged call: state machine of the A leg, the forks, the winning B leg and the relay."""

    def __init__(self, b2bua: "B2BUA", txn: ServerTransaction, info: CallInfo) -> None:
        self.b2bua = b2bua
        self.invite = txn
        self.info = info
        self.a = Leg(Dialog.as_uas(txn.request, txn.peer, new_tag()), "a", info.from_number)
        self.b: Leg | None = None
        self.forks: list[Fork] = []
        self.relay = None
        self.state = "routing"      # routing → ringing → answered → ended
        self.ring_timer: asyncio.TimerHandle | None = None
        self.pending_reinvite = False
        self.timed_out = False
        # Late offer: an INVITE without SDP gets the callee's offer in our 200, and the callee's ACK
        # waits for the caller's ACK, which carries the answer (RFC 3264 §5, RFC 3261 §13.2.1).
        self.late_offer = not txn.request.body
        self.b_sdp_session = random.randrange(1, 2**31)  # the B side keeps one o= session id
        self.held_ack: Fork | None = None
        # RFC 3261 §15: no BYE to the caller before it has ACKed our 200 (or that timed out).
        self.caller_confirmed = False
        self.bye_waits_for_ack = False
        self.dialog_keys: set[tuple[str, str]] = set()
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

    # --- setting up -------------------------------------------------------
    def offer_sdp_for_b(self) -> bytes | None:
        """Anchor the caller's offer on the relay's B side; None if it has no usable audio."""
        request = self.invite.request
        if not request.body:
            return b""
        offer = sdp_mod.parse_sdp(request.body)
        self._learn_remote("a", offer)
        anchored = sdp_mod.anchor(offer, self.b2bua.endpoint.host, self.relay.b.port, self.b_sdp_session, 1)
        return anchored.to_bytes()

    def _learn_remote(self, side: str, sdp: "sdp_mod.SessionDescription") -> None:
        audio = sdp.audio()
        if audio is None or audio.port == 0 or sdp.is_hold(audio):
            return
        host = sdp.connection_for(audio)
        if host:
            try:
                self.relay.set_remote(side, host, audio.port)
            except ValueError:  # a host name in c=: no DNS on the media path, rely on latching
                log.info("call %s: ignoring non-IP media address %r", self.info.record_id, host)

    def answer_locally(self, answered_by: str, ready: Callable[[sdp_local.MediaChoice], None]) -> None:
        """The box answers the caller itself; ready(choice) runs once the caller has ACKed."""
        request = self.invite.request
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
        self.state = "answered"
        self._on_box_ready = ready
        extra = [("Contact", endpoint.contact("switchboard", self.invite.peer.transport)),
                 ("Allow", ALLOW), ("Content-Type", "application/sdp")]
        self.invite.respond(200, to_tag=self.a.dialog.local_tag, extra=extra, body=body)
        self.b2bua.calls.answered(self.info, answered_by)

    def _use_choice(self, choice: sdp_local.MediaChoice) -> None:
        """Point leg A's media at what the caller's SDP says."""
        self.media_choice = choice
        if choice.host is not None and choice.port:
            self.relay.set_remote("a", choice.host, choice.port)

    def transfer(self, targets: list[tuple[str, Peer, str, TrunkPeer | None]],
                 on_ringing: Callable[[str], None], on_answered: Callable[[str], None],
                 on_failed: Callable[[int], None], timeout: float | None = None) -> None:
        """Ring targets for a caller the box has answered; on answer the two are bridged."""
        channel = self.channel
        if not self.box_answered or channel is None or self.state != "answered" or self.b is not None:
            raise RuntimeError("transfer needs a call the box answered and still holds")
        self.forks = []
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
        for fork in self.forks:
            if fork.final == 0:
                self._cancel_fork(fork)
        self.state = "answered"  # so a 2xx that crosses the CANCEL is ACKed and BYEd as too late

    def ring(self, targets: list[tuple[str, Peer, str, TrunkPeer | None]], body: bytes,
             timeout: float | None = None) -> None:
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

        self._send_forks(targets, body, int(self.invite.request.header("Max-Forwards") or 70) - 1, addresses)
        self.state = "ringing"
        self.ring_timer = b2bua.loop.call_later(b2bua.ring_timeout() if timeout is None else timeout,
                                                self.ring_timeout)

    # --- responses from the forks -----------------------------------------
    def _fork_provisional(self, fork: Fork, response: Response) -> None:
        fork.provisional = True
        if fork.cancel_pending:
            self._send_cancel(fork)
            return
        if self.state != "ringing" or response.status == 100 or not self._is_current(fork):
            return
        fork.dialog.remote_tag = response.to.tag or fork.dialog.remote_tag
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
        extra = [("Contact", self.b2bua.endpoint.contact("switchboard", self.invite.peer.transport))]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        status = 183 if body else 180
        self.invite.respond(status, to_tag=self.a.dialog.local_tag, extra=extra, body=body)

    def _answer_sdp_for_a(self, body: bytes) -> bytes:
        answer = sdp_mod.parse_sdp(body)
        self._learn_remote("b", answer)
        anchored = sdp_mod.anchor(answer, self.b2bua.endpoint.host, self.relay.a.port,
                                  self.a.sdp_session, self.a.next_sdp_version())
        return anchored.to_bytes()

    def _fork_answered(self, fork: Fork, response: Response) -> None:
        dialog = fork.dialog
        if fork.final == 0:
            dialog.confirm_uac(response)
        fork.final = response.status
        if self.b is not None and self.b.dialog is dialog:
            if self.held_ack is not fork:
                self._ack_fork(fork)  # a retransmitted 2xx: ACK it again
            return
        if self.b is not None or self.state != "ringing" or not self._is_current(fork):  # answered too late
            self._ack_fork(fork)
            self._send_bye(Leg(dialog, "b", fork.label))
            return
        self.b = Leg(dialog, "b", fork.label, self.b_sdp_session, sdp_version=1)
        self._index(dialog.key, self.b)
        self.state = "answered"
        self._cancel_ring_timer()
        for other in self.forks:
            if other is not fork and other.final == 0:
                self._cancel_fork(other)
        if self.box_answered:
            self._transfer_answered(fork, response)
            return
        if self.late_offer and response.body:
            self.held_ack = fork
        else:
            self._ack_fork(fork)
        body = self._answer_sdp_for_a(response.body) if response.body else b""
        extra = [("Contact", self.b2bua.endpoint.contact("switchboard", self.invite.peer.transport)),
                 ("Allow", ALLOW)]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        self.invite.respond(200, to_tag=self.a.dialog.local_tag, extra=extra, body=body)
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

    def _transfer_answered(self, fork: Fork, response: Response) -> None:
        """The callee answered a transfer: ACK, then bridge the caller into it."""
        self._ack_fork(fork)
        try:
            answer = sdp_mod.parse_sdp(response.body) if response.body else None
        except sdp_mod.SdpError:
            answer = None
        if answer is None:
            log.info("call %s: %s answered without usable SDP", self.info.record_id, fork.label)
            self._send_bye(self.b)  # type: ignore[arg-type]
            self.b = None
            self.state = "answered"
            if self._on_transfer_failed is not None:
                self._on_transfer_failed(488)
            return
        self._learn_remote("b", answer)
        if self.channel is not None:
            self.channel.connect()
        self.b2bua.calls.connected(self.info, fork.label)
        if self._on_transfer_answered is not None:
            self._on_transfer_answered(fork.label)

    def caller_acked(self, request: Request) -> None:
        """The caller's ACK for our 200: with a late offer it carries the answer for the callee."""
        self.caller_confirmed = True
        if self.bye_waits_for_ack:
            self.bye_waits_for_ack = False
            self._send_bye(self.a)
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
                answer = sdp_mod.parse_sdp(request.body)
                self._learn_remote("a", answer)
                body = sdp_mod.anchor(answer, self.b2bua.endpoint.host, self.relay.b.port,
                                      self.b.sdp_session, self.b.next_sdp_version()).to_bytes()
            except sdp_mod.SdpError as exc:
                log.info("call %s: unusable SDP in the caller's ACK: %s", self.info.record_id, exc)
        self._ack_fork(fork, body)
        if not body:
            self.hangup(None)  # no answer to the callee's offer: the session cannot work

    def _fork_failed(self) -> None:
        if self.state != "ringing" or any(f.final == 0 for f in self.forks):
            return
        self.fail(480 if self.timed_out else final_status(self.forks))

    def _transfer_failed(self, status: int) -> None:
        """Nobody took a transfer: the caller stays with the box."""
        self.state = "answered"
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
        self.invite.respond(status, reason, to_tag=self.a.dialog.local_tag)
        self.finish(disposition or ("no-answer" if self.timed_out else disposition_for(status)), status, None)

    def ring_timeout(self) -> None:
        """Nobody answered in time: cancel the forks and tell the caller."""
        self.ring_timer = None
        if self.state != "ringing":
            return
        self.timed_out = True
        for fork in self.forks:
            if fork.final == 0:
                self._cancel_fork(fork)
        self.fail(480, "Temporarily Unavailable (no answer)", "no-answer")

    def caller_cancelled(self) -> None:
        """The caller sent CANCEL while it rang."""
        if self.state not in ("routing", "ringing"):
            return
        for fork in self.forks:
            if fork.final == 0:
                self._cancel_fork(fork)
        self.invite.respond(487, to_tag=self.a.dialog.local_tag)
        self.finish("cancelled", 487, self.info.from_number)

    def hangup(self, by: Leg | None, status: int | None = None) -> None:
        """End an answered call: BYE the other side(s)."""
        if self.state == "ended":
            return
        if self.state == "ringing":  # a transfer of a caller the box answered is still ringing
            for fork in self.forks:
                if fork.final == 0:
                    self._cancel_fork(fork)
        for leg in (self.a, self.b):
            if leg is None or leg is by:
                continue
            if leg is self.a and not self.caller_confirmed:
                self.bye_waits_for_ack = True
            else:
                self._send_bye(leg)
        self.finish("answered", status, by.label if by else "box")

    def finish(self, disposition: str, status: int | None, hangup_by: str | None) -> None:
        """Release everything and write the record."""
        if self.state == "ended":
            return
        self.state = "ended"
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

    # --- in-dialog requests -----------------------------------------------
    def on_request(self, txn: ServerTransaction, leg: Leg) -> None:
        """A request inside one leg's dialog."""
        if not self._accept_in_dialog(txn, leg):
            return
        request = txn.request
        method = request.method
        if method == "BYE":
            txn.respond(200)
            if self.state in ("routing", "ringing") and not self.box_answered:  # BYE on the early dialog (RFC 3261 §15): as a CANCEL
                self.caller_cancelled()
            else:
                self.hangup(leg)
        elif method == "INVITE":
            if self.box_answered and self.b is None:
                self._local_reinvite(txn)
            else:
                self._reinvite(txn, leg)
        elif method == "OPTIONS":
            txn.respond(200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif self.box_answered and self.b is None and method in ("INFO", "UPDATE"):
            self._local_info(txn)
        elif method in ("INFO", "UPDATE", "MESSAGE", "NOTIFY"):
            self._forward(txn, leg)
        else:
            txn.respond(405, extra=[("Allow", ALLOW)])

    def _local_reinvite(self, txn: ServerTransaction) -> None:
        """A re-INVITE while the box holds the caller: answer it with the box's own SDP."""
        if self.pending_reinvite or self.state not in ("answered", "ringing"):
            txn.respond(491 if self.pending_reinvite else 500)
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
        extra = [("Contact", endpoint.contact("switchboard", txn.peer.transport)),
                 ("Content-Type", "application/sdp")]
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
        other = self._other(leg)
        if self.state != "answered" or other is None:
            txn.respond(491 if self.state == "answered" else 500)
            return
        if self.pending_reinvite:
            txn.respond(491)
            return
        body = b""
        if txn.request.body:
            try:
                offer = sdp_mod.parse_sdp(txn.request.body)
                self._learn_remote(leg.relay_side, offer)
                relay_leg = self.relay.a if other.relay_side == "a" else self.relay.b
                body = sdp_mod.anchor(offer, self.b2bua.endpoint.host, relay_leg.port,
                                      other.sdp_session, other.next_sdp_version()).to_bytes()
            except sdp_mod.SdpError:
                txn.respond(488)
                return
        self.pending_reinvite = True
        dialog = other.dialog
        transport = dialog.peer.transport
        request = dialog.request("INVITE", self.b2bua.endpoint.via(transport, self.b2bua.layer.new_branch()),
                                 self.b2bua.endpoint.contact("switchboard", transport), body)

        def answered(response: Response) -> None:
            if response.status < 200:
                return
            self.pending_reinvite = False
            if response.status >= 300:
                txn.respond(response.status, response.reason, to_tag=leg.dialog.local_tag)
                return
            ack = dialog.request("ACK", self.b2bua.endpoint.via(transport, self.b2bua.layer.new_branch()),
                                 self.b2bua.endpoint.contact("switchboard", transport), cseq=request.cseq[0])
            self.b2bua.layer.send_ack(ack, self._dest(dialog))
            answer = b""
            if response.body:
                try:
                    parsed = sdp_mod.parse_sdp(response.body)
                    self._learn_remote(other.relay_side, parsed)
                    relay_leg = self.relay.a if leg.relay_side == "a" else self.relay.b
                    answer = sdp_mod.anchor(parsed, self.b2bua.endpoint.host, relay_leg.port,
                                            leg.sdp_session, leg.next_sdp_version()).to_bytes()
                except sdp_mod.SdpError:
                    answer = b""
            extra = [("Contact", self.b2bua.endpoint.contact("switchboard", txn.peer.transport))]
            if answer:
                extra.append(("Content-Type", "application/sdp"))
            txn.respond(200, to_tag=leg.dialog.local_tag, extra=extra, body=answer)

        self.b2bua.layer.send_request(request, self._dest(dialog), answered)

    def _forward(self, txn: ServerTransaction, leg: Leg) -> None:
        other = self._other(leg)
        if other is None:
            txn.respond(481)
            return
        dialog = other.dialog
        transport = dialog.peer.transport
        source = txn.request
        request = dialog.request(source.method, self.b2bua.endpoint.via(transport, self.b2bua.layer.new_branch()),
                                 self.b2bua.endpoint.contact("switchboard", transport), source.body,
                                 source.header("Content-Type"))
        for name in ("Event", "Subscription-State"):
            if source.header(name):
                request.set_header(name, source.header(name) or "")

        def relay_answer(response: Response) -> None:
            if response.status >= 200:
                txn.respond(response.status, response.reason, to_tag=leg.dialog.local_tag)

        self.b2bua.layer.send_request(request, self._dest(dialog), relay_answer)


def final_status(forks: list[Fork]) -> int:
    """The one status for forks that all failed: busy wins, then RFC 3261 §16.7's order."""
    statuses = [f.final for f in forks]
    return 486 if 486 in statuses or 600 in statuses else min(statuses, key=_failure_rank)


def _failure_rank(status: int) -> int:
    """Order failures as RFC 3261 §16.7 suggests: 6xx, then specific 4xx, then 5xx, then timeouts."""
    if status >= 600:
        return 0
    if status in (408, 480, 503):
        return 3
    if status >= 500:
        return 2
    return 1


class B2BUA:
    """Creates calls, finds them from in-dialog requests, and tracks them while they live."""

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: TransactionLayer, endpoint: Endpoint,
                 location: LocationService, calls: CallLog, media, ring_timeout: Callable[[], float],  # type: ignore[no-untyped-def]
                 max_unconfirmed: Callable[[], int] = lambda: 1 << 30) -> None:
        self.loop = loop
        # Calls not yet answered and ACKed may hold only this many relays: a flood of INVITEs that are
        # never ACKed must leave ports for everybody else.
        self.max_unconfirmed = max_unconfirmed
        self.layer = layer
        self.endpoint = endpoint
        self.location = location
        self.calls = calls
        self.media = media
        self.ring_timeout = ring_timeout
        # Calls the box places itself (OutboundCall) live here too: they have info, state, dialog_keys.
        self.dialogs: dict[tuple[str, str], tuple[UacCall, Leg | None]] = {}
        self.active: dict[str, UacCall] = {}
        self.by_invite: dict[int, Call] = {}
        # Route kinds the B2BUA does not handle itself: "ivr" (and "queue" in a later issue).
        self.destinations: dict[str, Callable[[Call, Route], None]] = {}
        self.recording: RecordingPolicy | None = None  # which bridged calls are recorded

    def start(self, txn: ServerTransaction, route: Route, info: CallInfo, trunk: TrunkPeer | None = None) -> Call | None:
        """Route an authorised INVITE: ring an extension's contacts or a trunk."""
        call = Call(self, txn, info)
        self.active[info.record_id] = call
        self.by_invite[id(txn)] = call
        if route.kind == "reject":
            call.fail(route.status, route.reason or None)
            return call
        handler = self.destinations.get(route.kind)
        if route.kind not in ("extension", "trunk") and handler is None:
            call.fail(480, f"Temporarily Unavailable ({route.kind} not available)", "failed")
            return call
        if self.unconfirmed() >= self.max_unconfirmed():
            log.warning("call %s refused: %d calls not yet answered and ACKed hold media ports already",
                        info.record_id, self.unconfirmed())
            call.fail(503, "Service Unavailable (too many calls being set up)", "failed")
            return call
        try:
            call.relay = self.media.create_relay()
            call.relay.expect_from("a", txn.peer.host)
        except Exception as exc:  # no RTP ports left
            log.error("cannot allocate media for %s: %s", info.record_id, exc)
            call.fail(503, "Service Unavailable (no media ports)", "failed")
            return call
        if handler is not None:  # the destination answers or offers the SDP itself
            handler(call, route)
            return call
        try:
            body = call.offer_sdp_for_b()
        except sdp_mod.SdpError as exc:
            log.info("unacceptable SDP on %s: %s", info.record_id, exc)
            call.fail(488, None, "failed")
            return call
        if route.kind == "extension":
            bindings = self.location.lookup(route.number)
            if not bindings:
                call.fail(480, "Temporarily Unavailable (not registered)", "failed")
                return call
            targets = [(b.request_uri(), b.source, route.number, None) for b in bindings]
        else:
            assert trunk is not None
            targets = [(f"sip:{route.number}@{trunk.domain}", trunk.peer, trunk.name, trunk)]
        call.ring(targets, body or b"")
        return call

    def unconfirmed(self) -> int:
        """Calls holding media ports whose caller has not ACKed an answer yet."""
        return sum(1 for call in self.by_invite.values()
                   if not call.caller_confirmed and call.relay is not None and call.state != "ended")

    def calls_from(self, number: str) -> int:
        """Calls going on that `number` placed (for the per-extension limit)."""
        return sum(1 for call in self.active.values()
                   if call.state != "ended" and getattr(call.info, "from_number", None) == number
                   and isinstance(call, Call))

    def find(self, request: Request) -> tuple[UacCall, Leg | None] | None:
        """The call and leg an in-dialog request belongs to."""
        return self.dialogs.get((request.call_id, request.to.tag or ""))

    def on_in_dialog(self, txn: ServerTransaction) -> None:
        """A request with a To tag."""
        found = self.find(txn.request)
        if found is None or found[1] is None or found[0].state == "ended":
            txn.respond(481)
            return
        call, leg = found
        call.on_request(txn, leg)

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """CANCEL: 200 for the CANCEL, 487 for the INVITE if it was still ringing."""
        call = self.by_invite.get(id(invite)) if invite is not None else None
        if invite is None:
            txn.respond(481)
            return
        txn.respond(200)
        if call is not None:
            call.caller_cancelled()
        elif not invite.answered:
            invite.respond(487)

    def on_ack(self, request: Request, peer: Peer) -> None:
        """ACK for a 2xx we sent: completes a late-offer exchange; otherwise nothing to forward."""
        found = self.find(request)
        if found is not None and isinstance(found[0], Call) and found[1] is found[0].a:
            found[0].caller_acked(request)

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """The caller never ACKed our 200: hang up."""
        call = self.by_invite.get(id(txn))
        if call is None:
            return
        call.caller_confirmed = True  # the transaction timed out: a BYE may go now (RFC 3261 §15)
        if call.bye_waits_for_ack:
            call.bye_waits_for_ack = False
            call._send_bye(call.a)
        if call.state == "answered":
            log.warning("no ACK for call %s; hanging up", call.info.record_id)
            if call.held_ack is not None:
                call._ack_fork(call.held_ack)
                call.held_ack = None
            call.hangup(None)  # BYE both legs (RFC 3261 §13.3.1.4)

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again."""
        if response.status < 200 or response.status >= 300 or response.cseq[1] != "INVITE":
            return
        found = self.dialogs.get((response.call_id, response.from_.tag or ""))
        if found is None:
            return
        call, leg = found
        if leg is not None and leg.dialog.remote_tag == (response.to.tag or ""):
            ack = leg.dialog.request("ACK", self.endpoint.via(peer.transport, self.layer.new_branch()),
                                     self.endpoint.contact("switchboard", peer.transport), cseq=response.cseq[0])
            self.layer.send_ack(ack, leg.dialog.peer)

    def forget(self, call: UacCall) -> None:
        """Drop a finished call from the indexes (after a grace period for late messages)."""
        self.active.pop(call.info.record_id, None)

        def drop() -> None:
            if isinstance(call, Call):
                self.by_invite.pop(id(call.invite), None)
            for key in call.dialog_keys:
                if self.dialogs.get(key, (None,))[0] is call:
                    del self.dialogs[key]

        self.loop.call_later(32.0, drop)
