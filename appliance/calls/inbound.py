"""New INVITEs: who is calling (an extension or a trunk), where the dial plan sends them, and the call record."""
from __future__ import annotations

import logging
from collections.abc import Callable

from ..sip.core import RequestAuthenticator
from ..sip.message import Request, Response
from ..sip.targets import TrunkPeer
from ..sip.transaction import ServerTransaction
from ..sip.transport import Peer
from ..sip.uri import SipUri
from .b2bua import B2BUA
from .records import CallLog
from .router import DialPlan

log = logging.getLogger("switchboard.calls.inbound")


class InboundCalls:
    """The UA core's InviteHandler: routes new INVITEs and passes everything in a dialog to the B2BUA."""

    def __init__(self, *, auth: RequestAuthenticator, b2bua: B2BUA, dial_plan: DialPlan, call_log: CallLog,
                 extension: Callable[[str], dict | None], trunk_for: Callable[[Peer], TrunkPeer | None],
                 trunk_by_name: Callable[[str], TrunkPeer | None],
                 max_calls: Callable[[], int] = lambda: 1 << 30) -> None:
        self.auth = auth
        self.b2bua = b2bua
        self.dial_plan = dial_plan
        self.call_log = call_log
        self.extension = extension
        self.trunk_for = trunk_for
        self.trunk_by_name = trunk_by_name
        self.max_calls = max_calls  # calls one extension may have going at once

    def on_invite(self, txn: ServerTransaction) -> None:
        """A new INVITE from a trunk (no credentials: its address says who it is) or an extension."""
        request = txn.request
        ruri = request.ruri
        dialled = (ruri.user_unescaped or "") if isinstance(ruri, SipUri) else str(ruri).split(":", 1)[-1]
        trunk = self.trunk_for(txn.peer)
        if trunk is not None:
            self._from_trunk(txn, trunk, dialled)
            return
        user = self.auth.authenticate(txn, proxy=True)
        if user is None:
            return
        caller = self.extension(user)
        if caller is None:  # deleted while the nonce was live
            txn.respond(403)
            return
        if self.b2bua.calls_from(user) >= self.max_calls():
            log.warning("INVITE from %s refused: it has %d calls going already", user, self.max_calls())
            txn.respond(486, "Busy Here (too many calls from this extension)")
            return
        route = self.dial_plan.from_extension(caller, dialled)
        direction = "outbound" if route.trunk else "internal"  # refused outside calls are outbound too
        info = self.call_log.start(sip_call_id=request.call_id, direction=direction,
                                   line=route.trunk or "internal",
                                   from_number=user, from_name=caller.get("name") or "",
                                   to_number=dialled if route.kind in ("ivr", "queue", "feature") else route.number or dialled)
        trunk_peer = self.trunk_by_name(route.trunk) if route.trunk else None
        if route.kind == "trunk" and trunk_peer is None:
            self.b2bua.start(txn, route.reject(503, "Service Unavailable (trunk not ready)"), info)
            return
        self.b2bua.start(txn, route, info, trunk_peer)

    def _from_trunk(self, txn: ServerTransaction, trunk: TrunkPeer, dialled: str) -> None:
        request = txn.request
        caller = request.from_
        number = (caller.uri.user_unescaped or "") if isinstance(caller.uri, SipUri) else str(caller.uri)
        route = self.dial_plan.from_trunk({"name": trunk.name, "inbound": trunk.inbound}, dialled)
        info = self.call_log.start(sip_call_id=request.call_id, direction="inbound", line=trunk.name,
                                   from_number=number, from_name=caller.display or "", to_number=dialled)
        self.b2bua.start(txn, route, info)

    # --- inside dialogs: the B2BUA's ---------------------------------------------
    def on_in_dialog(self, txn: ServerTransaction) -> None:
        """A request with a To tag."""
        self.b2bua.on_in_dialog(txn)

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """CANCEL of a ringing call."""
        self.b2bua.on_cancel(txn, invite)

    def on_ack(self, request: Request, peer: Peer) -> None:
        """ACK for a 2xx."""
        self.b2bua.on_ack(request, peer)

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """A 2xx went unacknowledged."""
        self.b2bua.on_ack_timeout(txn)

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A response with no transaction."""
        self.b2bua.on_stray_response(response, peer)
