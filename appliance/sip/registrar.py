"""Registrar and location service (RFC 3261 §10.3), with RFC 3581 NAT-friendly bindings."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .headers import HeaderError
from .message import Request
from .transaction import ServerTransaction
from .transport import Peer
from .uri import SipUri

log = logging.getLogger("switchboard.sip.registrar")


@dataclass(slots=True)
class Binding:
    """One registered contact of an extension."""

    aor: str
    contact: str
    uri: SipUri
    source: Peer
    expires_at: float
    call_id: str
    cseq: int
    q: float = 1.0
    user_agent: str = ""
    echo: str = ""  # Contact parameters the 200 repeats: +sip.instance and reg-id (RFC 5626 §6)

    def request_uri(self) -> str:
        """The contact as a Request-URI: URI headers and method are not allowed there (RFC 3261 §19.1.1)."""
        if not self.uri.headers and "method" not in self.uri.params:
            return self.contact
        params = {k: v for k, v in self.uri.params.items() if k != "method"}
        return str(SipUri(self.uri.scheme, self.uri.host, self.uri.user, self.uri.password, self.uri.port, params))

    def expires_in(self, now: float) -> int:
        """Seconds left, rounded down, never negative."""
        return max(0, int(self.expires_at - now))


@dataclass
class RegistrarPolicy:
    """Limits on registration lifetimes."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 600
    max_contacts: int = 10


@dataclass
class LocationService:
    """Where each extension can be reached; in memory, mirrored to the store by the box."""

    clock: Callable[[], float] = time.monotonic
    bindings: dict[str, dict[str, Binding]] = field(default_factory=dict)
    on_change: Callable[[str, list[Binding], bool], None] | None = None

    def lookup(self, aor: str) -> list[Binding]:
        """Live bindings of an extension, best q first."""
        contacts = self.bindings.get(aor)
        if not contacts:
            return []
        now = self.clock()
        live = [b for b in contacts.values() if b.expires_at > now]
        if len(live) != len(contacts):
            self._set(aor, {b.contact: b for b in live})
        return sorted(live, key=lambda b: -b.q)

    def registered(self) -> dict[str, list[Binding]]:
        """Every extension with at least one live binding."""
        return {aor: found for aor in list(self.bindings) if (found := self.lookup(aor))}

    def purge(self) -> None:
        """Drop expired bindings."""
        for aor in list(self.bindings):
            self.lookup(aor)

    def _set(self, aor: str, contacts: dict[str, Binding]) -> None:
        before = self.bindings.get(aor, {})
        if contacts:
            self.bindings[aor] = contacts
        else:
            self.bindings.pop(aor, None)
        # A refresh replaces a binding under the same contact: the store must see its new expiry too,
        # but only a different set of contacts is news for the rest of the box.
        moved = set(before) != set(contacts)
        if (moved or any(before[k] is not b for k, b in contacts.items())) and self.on_change is not None:
            self.on_change(aor, list(contacts.values()), moved)


class Registrar:
    """Handles REGISTER once the core has authenticated it."""

    def __init__(self, location: LocationService, policy: RegistrarPolicy) -> None:
        self.location = location
        self.policy = policy

    def handle(self, txn: ServerTransaction, aor: str) -> None:
        """Apply a REGISTER for an authenticated extension and answer it."""
        request = txn.request
        try:
            self._apply(txn, request, aor)
        except HeaderError as exc:
            txn.respond(400, f"Bad Request ({exc})"[:100])

    def _apply(self, txn: ServerTransaction, request: Request, aor: str) -> None:
        policy = self.policy
        now = self.location.clock()
        header_expires = request.header("Expires")
        default = int(header_expires) if header_expires is not None else policy.default_expires
        values = request.header_values("Contact")
        current = {b.contact: b for b in self.location.lookup(aor)}
        call_id, cseq = request.call_id, request.cseq[0]
        if "*" in values:
            if len(values) != 1 or default != 0:
                txn.respond(400, "Bad Request (wildcard Contact needs Expires: 0)")
                return
            stale = [b for b in current.values() if b.call_id == call_id and cseq <= b.cseq]
            if stale:
                txn.respond(500, "Server Internal Error (out-of-order REGISTER)")
                return
            self.location._set(aor, {})
            self._ok(txn, aor, now)
            return
        updated = dict(current)
        for contact in request.contacts:
            if not isinstance(contact.uri, SipUri):
                txn.respond(400, "Bad Request (Contact must be a SIP URI)")
                return
            expires_param = contact.params.get("expires")
            expires = int(expires_param) if expires_param and expires_param.isdigit() else default
            key = str(contact.uri)
            # Contacts match by RFC 3261 §19.1.4 URI comparison (transport=UDP is transport=udp).
            same = next((k for k, b in updated.items() if b.uri == contact.uri), key)
            existing = updated.get(same)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                txn.respond(500, "Server Internal Error (out-of-order REGISTER)")
                return
            updated.pop(same, None)
            if expires == 0:
                continue
            if expires < policy.min_expires:
                txn.respond(423, extra=[("Min-Expires", str(policy.min_expires))])
                return
            expires = min(expires, policy.max_expires)
            q = _parse_q(contact.params.get("q"))
            echo = "".join(f";{name}={contact.params[name]}" if contact.params[name] else f";{name}"
                           for name in ECHOED_PARAMS if name in contact.params)
            updated[key] = Binding(aor, key, contact.uri, txn.peer, now + expires, call_id, cseq, q,
                                   request.header("User-Agent") or "", echo)
        if len(updated) > policy.max_contacts:
            txn.respond(403, "Forbidden (too many contacts)")
            return
        self.location._set(aor, updated)
        self._log_changes(aor, current, updated, now)
        self._ok(txn, aor, now)

    @staticmethod
    def _log_changes(aor: str, before: dict, after: dict, now: float) -> None:
        """New registrations and removals at INFO, so an installer can follow a phone; refreshes at DEBUG."""
        for key, binding in after.items():
            source = f"{binding.source.transport.lower()}:{binding.source.host}:{binding.source.port}"
            if key in before:
                log.debug("%s refreshed %s (expires in %d s)", aor, key, binding.expires_in(now))
            else:
                log.info("%s registered from %s as %s, expires in %d s (%s)", aor, source, key,
                         binding.expires_in(now), binding.user_agent or "no User-Agent")
        for key in before.keys() - after.keys():
            log.info("%s unregistered %s", aor, key)

    def _ok(self, txn: ServerTransaction, aor: str, now: float) -> None:
        contacts = [f"<{b.contact}>;expires={b.expires_in(now)}{b.echo}" for b in self.location.lookup(aor)]
        extra = [("Contact", c) for c in contacts]
        extra.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
        txn.respond(200, extra=extra, to_tag=_tag_for(txn.request))


ECHOED_PARAMS = ("+sip.instance", "reg-id")


def _parse_q(value: str | None) -> float:
    try:
        return min(1.0, max(0.0, float(value))) if value else 1.0
    except ValueError:
        return 1.0


def _tag_for(request: Request) -> str:
    """A stable To tag for a REGISTER, so retransmissions get the same answer."""
    return format(hash((request.call_id, request.cseq[0])) & 0xFFFFFFFF, "08x")
