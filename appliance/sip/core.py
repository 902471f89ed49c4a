"""The UA core: checks and authenticates requests, answers REGISTER and OPTIONS, and hands calls on.

What a call is and where it goes is decided above this package: INVITEs, in-dialog requests,
CANCEL and ACK go to an InviteHandler (appliance/calls/inbound.py).
"""
from __future__ import annotations

import hashlib
import logging
from typing import Callable, Protocol

from .digest import DigestAuthenticator
from .headers import HeaderError
from .invite_session import ALLOW
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


class InviteHandler(Protocol):
    """What the box does with calls: new INVITEs and everything inside their dialogs."""

    def on_invite(self, txn: ServerTransaction) -> None:
        """A new INVITE that passed the protocol checks."""

    def on_in_dialog(self, txn: ServerTransaction) -> None:
        """A request with a To tag."""

    def on_cancel(self, txn: ServerTransaction, invite: ServerTransaction | None) -> None:
        """A CANCEL, with the INVITE transaction it cancels if there is one."""

    def on_ack(self, request: Request, peer: Peer) -> None:
        """An ACK for a 2xx the box sent."""

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """A 2xx the box sent was never ACKed."""

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A response no transaction matches."""


class RequestAuthenticator:
    """Digest authentication of requests, with bans for sources that keep failing (RFC 3261 §22)."""

    def __init__(self, authenticator: DigestAuthenticator, bans: BanList,
                 on_ban: Callable[[str, str | None], None] = lambda source, user: None) -> None:
        self.auth = authenticator
        self.bans = bans
        self.on_ban = on_ban  # (source address, account) when a failure bans a source

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
                self._failed(txn.peer, result.username, credentials)
                # Wrong credentials get 403, not a fresh challenge: a phone with a wrong password would
                # otherwise answer every new challenge at once and have its whole address banned in
                # milliseconds (RFC 3261 §22.1 lets a UAS refuse with 403). Known and unknown users alike.
                txn.respond(403, "Forbidden", to_tag="auth", stateless=True)
                return None
        extra = [(challenge_header, value) for value in self.auth.challenges(stale=stale)]
        txn.respond(status, extra=extra, to_tag="auth", stateless=True)  # challenges commit the box to nothing
        return None

    def _failed(self, peer: Peer, username: str | None, credentials: str) -> None:
        log.info("failed authentication from %s:%s (user %r)", peer.host, peer.port, username)
        fingerprint = hashlib.blake2b(credentials.encode(errors="replace"), digest_size=12).hexdigest()
        if self.bans.record_failure(peer.host, username, fingerprint):
            self.on_ban(peer.host, username)


class SipCore:
    """Implements the transaction user: what the box does with each request."""

    def __init__(self, *, auth: RequestAuthenticator, registrar: Registrar, invites: InviteHandler,
                 on_registered: Callable[[Peer], None] = lambda peer: None) -> None:
        self.auth = auth
        self.registrar = registrar
        self.invites = invites
        self.on_registered = on_registered  # a phone registered over this connection (TCP idle timeout)

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
            self.invites.on_in_dialog(txn)
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
        """CANCEL goes to the calls."""
        self.invites.on_cancel(txn, invite)

    def on_ack(self, request: Request, peer: Peer) -> None:
        """ACK for a 2xx."""
        self.invites.on_ack(request, peer)

    def on_ack_timeout(self, txn: ServerTransaction) -> None:
        """A 2xx went unacknowledged."""
        self.invites.on_ack_timeout(txn)

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A response with no transaction."""
        self.invites.on_stray_response(response, peer)

    # --- REGISTER -------------------------------------------------------------
    def _register(self, txn: ServerTransaction) -> None:
        user = self.auth.authenticate(txn, proxy=False)
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
        """The checks every INVITE passes before the calls see it (RFC 3261 §8.2, §16.3)."""
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
        self.invites.on_invite(txn)
