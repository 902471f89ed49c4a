"""The UA core: authenticates requests, then hands them to the registrar or the B2BUA."""
from __future__ import annotations

import hashlib
import logging
from typing import Callable

from ..bus import EventBus
from ..calls.records import CallLog
from ..calls.router import DialPlan
from .b2bua import ALLOW, B2BUA, TrunkPeer
from .digest import DigestAuthenticator
from .headers import HeaderError
from .message import Request, Response
from .registrar import Registrar
from .security import BanList
from .transaction import ServerTransaction
from .transport import Peer
from .uri import SipUri

log = logging.getLogger("switchboard.sip.core")
KNOWN_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE",
                           "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()


class SipCore:
    """Implements the transaction user: what the box does with each request."""

    def __init__(self, *, authenticator: DigestAuthenticator, bans: BanList, registrar: Registrar,
                 b2bua: B2BUA, dial_plan: DialPlan, call_log: CallLog, bus: EventBus,
                 extension: Callable[[str], dict | None], trunk_for: Callable[[Peer], TrunkPeer | None],
                 trunk_by_name: Callable[[str], TrunkPeer | None],
                 on_registered: Callable[[Peer], None] = lambda peer: None,
                 max_calls: Callable[[], int] = lambda: 1 << 30) -> None:
        self.auth = authenticator
        self.bans = bans
        self.registrar = registrar
        self.b2bua = b2bua
        self.dial_plan = dial_plan
        self.call_log = call_log
        self.bus = bus
        self.extension = extension
        self.trunk_for = trunk_for
        self.trunk_by_name = trunk_by_name
        self.on_registered = on_registered  # a phone registered over this connection (TCP idle timeout)
        self.max_calls = max_calls  # calls one extension may have going at once

    # --- transaction user -------------------------------------------------
    def on_request(self, txn: ServerTransaction) -> None:
        """Dispatch a new request."""
        request = txn.request
        method = request.method
        try:
            unsupported = [tag for tag in request.header_values("Require") if tag not in SUPPORTED_EXTENSIONS]
        except HeaderError:  # found by wire fuzzing: an unterminated quote in Require went unanswered
            txn.respond(400, "Bad Request (Require)", stateless=True)
            return
        if unsupported and method not in ("CANCEL", "ACK"):
            txn.respond(420, extra=[("Unsupported", ", ".join(unsupported))], stateless=True)
            return
        if request.to.tag:
            self.b2bua.on_in_dialog(txn)
        elif method == "REGISTER":
            self._register(txn)
        elif method == "INVITE":
            self._invite(txn)
        elif method == "OPTIONS":
            txn.respond(200, extra=[("Allow", ALLOW), ("Accept", "application/sdp"),
                                    ("Supported", ""), ("Accept-Language", "en")], stateless=True)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            txn.respond(481, stateless=True)
        elif method in KNOWN_METHODS:
            txn.respond(405, extra=[("Allow", ALLOW)], stateless=True)
        else:
            txn.respond(501, extra=[("Allow", ALLOW)], stateless=True)

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """Forward CANCEL to the B2BUA."""
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

    # --- authentication -----------------------------------------------------
    def authenticate(self, txn: ServerTransaction, proxy: bool) -> str | None:
        """The authenticated extension, or None after sending a challenge."""
        request = txn.request
        header = "Proxy-Authorization" if proxy else "Authorization"
        status = 407 if proxy else 401
        challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        credentials = request.header(header)
        stale = False
        if credentials is not None and not credentials.lstrip()[:7].lower() == "digest ":
            credentials = None  # another scheme (RFC 4475 regaut01): not a guess, so a plain challenge
        if credentials is not None:
            # The digest uri is not pinned to the Request-URI: SIPp and several phones put the
            # registrar's address there. The nonce and nonce-count still stop replays.
            result = self.auth.verify(request.method, credentials)
            if result.ok and result.username:
                self.bans.record_success(txn.peer.host, result.username)
                return result.username
            stale = result.stale
            if not stale:
                self._auth_failed(txn.peer, result.username, credentials)
                # Wrong credentials get 403, not a fresh challenge: a phone with a wrong password would
                # otherwise answer every new challenge at once and have its whole address banned in
                # milliseconds (RFC 3261 §22.1 lets a UAS refuse with 403). Known and unknown users alike.
                txn.respond(403, "Forbidden", to_tag="auth", stateless=True)
                return None
        extra = [(challenge_header, value) for value in self.auth.challenges(stale=stale)]
        txn.respond(status, extra=extra, to_tag="auth", stateless=True)  # challenges commit the box to nothing
        return None

    def _auth_failed(self, peer: Peer, username: str | None, credentials: str) -> None:
        log.info("failed authentication from %s:%s (user %r)", peer.host, peer.port, username)
        fingerprint = hashlib.blake2b(credentials.encode(errors="replace"), digest_size=12).hexdigest()
        if self.bans.record_failure(peer.host, username, fingerprint):
            self.bus.publish("security.ban", source=peer.host, user=username)

    # --- REGISTER -------------------------------------------------------------
    def _register(self, txn: ServerTransaction) -> None:
        user = self.authenticate(txn, proxy=False)
        if user is None:
            return
        aor = txn.request.to.uri
        if not isinstance(aor, SipUri) or aor.user_unescaped != user:
            txn.respond(403, "Forbidden (To does not match the credentials)")
            return
        self.registrar.handle(txn, user)
        if txn.peer.transport == "TCP":
            self.on_registered(txn.peer)

    # --- INVITE ---------------------------------------------------------------
    def _invite(self, txn: ServerTransaction) -> None:
        request = txn.request
        if request.header("Max-Forwards") == "0":
            txn.respond(483)
            return
        if request.body and request.content_type != "application/sdp":
            txn.respond(415, extra=[("Accept", "application/sdp")])
            return
        accept = request.header_values("Accept")
        if accept and not any(a.split(";")[0].strip().lower() in ("application/sdp", "application/*", "*/*") for a in accept):
            txn.respond(406, extra=[("Accept", "application/sdp")])
            return
        ruri = request.ruri
        dialled = (ruri.user_unescaped or "") if isinstance(ruri, SipUri) else str(ruri).split(":", 1)[-1]
        trunk = self.trunk_for(txn.peer)
        if trunk is not None:
            self._invite_from_trunk(txn, trunk, dialled)
            return
        user = self.authenticate(txn, proxy=True)
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

    def _invite_from_trunk(self, txn: ServerTransaction, trunk: TrunkPeer, dialled: str) -> None:
        request = txn.request
        caller = request.from_
        number = (caller.uri.user_unescaped or "") if isinstance(caller.uri, SipUri) else str(caller.uri)
        trunk_row = {"name": trunk.name, "inbound": trunk.inbound}
        route = self.dial_plan.from_trunk(trunk_row, dialled)
        info = self.call_log.start(sip_call_id=request.call_id, direction="inbound", line=trunk.name,
                                   from_number=number, from_name=caller.display or "", to_number=dialled)
        self.b2bua.start(txn, route, info)
