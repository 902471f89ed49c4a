"""The back-to-back user agent: starts calls by route kind, finds them from in-dialog requests, tracks them."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..media.relay import MediaEngine
from ..sip import sdp as sdp_mod
from ..sip.dialogs import DialogRegistry
from ..sip.invite_session import Endpoint, UserAgent
from ..sip.message import Request, Response
from ..sip.registrar import LocationService
from ..sip.targets import TrunkPeer
from ..sip.transaction import ServerTransaction, TransactionLayer
from ..sip.transport import Peer
from .bridge import Call
from .legs import Leg, PlacingCall
from .recording import RecordingPolicy
from .records import CallInfo, CallLog
from .router import Route

log = logging.getLogger("switchboard.calls.b2bua")

Destination = Callable[[Call, Route], None]
"""What answers a route kind the B2BUA does not ring itself (the IVR, a queue, a feature code)."""


class B2BUA:
    """Creates calls, finds them from in-dialog requests, and tracks them while they live."""

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: TransactionLayer, endpoint: Endpoint,
                 location: LocationService, calls: CallLog, media: MediaEngine, ring_timeout: Callable[[], float],
                 recording: RecordingPolicy | None = None,
                 max_unconfirmed: Callable[[], int] = lambda: 1 << 30) -> None:
        self.loop = loop
        self.ua = UserAgent(layer, endpoint)
        self.layer = layer
        self.endpoint = endpoint
        self.location = location
        self.calls = calls
        self.media = media
        self.ring_timeout = ring_timeout
        self.recording = recording  # which bridged calls are recorded
        # Calls not yet answered and ACKed may hold only this many relays: a flood of INVITEs that are
        # never ACKed must leave ports for everybody else.
        self.max_unconfirmed = max_unconfirmed
        # Calls the box places itself (OutboundCall) live here too: they have info, state, dialog_keys.
        self.dialogs: DialogRegistry[PlacingCall, Leg] = DialogRegistry(loop)
        self.active: dict[str, PlacingCall] = {}
        self.by_invite: dict[int, Call] = {}
        self.destinations: dict[str, Destination] = {}

    def add_destination(self, kind: str, handler: Destination) -> Callable[[], None]:
        """Let a feature answer calls routed to `kind`; returns the undo (for the feature's teardown)."""
        self.destinations[kind] = handler

        def remove() -> None:
            if self.destinations.get(kind) is handler:
                del self.destinations[kind]
        return remove

    def start(self, txn: ServerTransaction, route: Route, info: CallInfo, trunk: TrunkPeer | None = None) -> Call | None:
        """Route an authorised INVITE: ring an extension's contacts or a trunk, or hand it to a destination."""
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
                   if call.state != "ended" and isinstance(call, Call) and call.info.from_number == number)

    # --- messages the UA core hands over --------------------------------------
    def on_in_dialog(self, txn: ServerTransaction) -> None:
        """A request with a To tag: its leg's session handles it."""
        found = self.dialogs.find(txn.request)
        if found is None or found[1] is None or found[0].state == "ended":
            txn.respond(481)
            return
        found[1].session.on_request(txn)

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """CANCEL: 200 for the CANCEL, 487 for the INVITE if it was still ringing."""
        if invite is None:
            txn.respond(481)
            return
        call = self.by_invite.get(id(invite))
        txn.respond(200)
        if call is not None:
            call.caller_cancelled()
        elif not invite.answered:
            invite.respond(487)

    def on_ack(self, request: Request, peer: Peer) -> None:
        """ACK for a 2xx we sent: confirms leg A (and completes a late-offer exchange)."""
        found = self.dialogs.find(request)
        if found is not None and isinstance(found[0], Call) and found[1] is found[0].a:
            found[0].caller_acked(request)

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """The caller never ACKed our 200: hang up."""
        call = self.by_invite.get(id(txn))
        if call is not None:
            call.ack_timed_out()

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again."""
        if response.status < 200 or response.status >= 300 or response.cseq[1] != "INVITE":
            return
        found = self.dialogs.by_key((response.call_id, response.from_.tag or ""))
        if found is not None and found[1] is not None:
            found[1].session.on_stray_2xx(response)

    def forget(self, call: PlacingCall) -> None:
        """Drop a finished call from the indexes (after a grace period for late messages)."""
        self.active.pop(call.info.record_id, None)
        self.dialogs.release(call, call.dialog_keys)
        if isinstance(call, Call):
            invite_id = id(call.invite)
            self.loop.call_later(self.dialogs.linger, lambda: self.by_invite.pop(invite_id, None))
