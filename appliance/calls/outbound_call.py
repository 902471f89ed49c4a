"""Calls the box places itself (queue callbacks): ring an agent, then dial a customer and bridge the two."""
from __future__ import annotations

import logging
import random
from collections.abc import Callable

from typing import TYPE_CHECKING

from ..media.channel import MediaChannel
from ..media.ports import PortsExhausted
from ..media.relay import Relay
from ..sip import sdp as sdp_mod
from ..sip import sdp_local
from ..sip.headers import quote
from ..sip.invite_session import ALLOW, ClientInvite, InviteSession
from ..sip.message import Response
from ..sip.targets import Target, TrunkPeer
from ..sip.transaction import ServerTransaction
from .legs import Leg, OutboundState, PlacingCall
from .records import CallInfo, disposition_for

if TYPE_CHECKING:
    from .b2bua import B2BUA

__all__ = ["OutboundCall", "Target"]

log = logging.getLogger("switchboard.calls.outbound")

_RINGING = (OutboundState.AGENT_RINGING, OutboundState.CUSTOMER_RINGING)


def _no_digit(digit: str, how: str) -> None:
    """Digits the agent presses before anyone asks for them (the glue may set a handler)."""


class OutboundCall(PlacingCall):
    """A call the box places itself: an agent's phone first, then a customer, bridged on answer."""

    def __init__(self, b2bua: B2BUA, info: CallInfo) -> None:
        super().__init__()
        self.b2bua = b2bua
        self.info = info
        self.state: OutboundState = OutboundState.NEW
        self.channel: MediaChannel | None = None
        self.on_ended: list[Callable[[str], None]] = []
        self.relay: Relay | None = None
        self.agent: Leg | None = None
        self.customer: Leg | None = None
        self.customer_status: int | None = None  # why the last customer dial failed, for the record
        self.timed_out = False
        self._sdp_sessions = {"a": random.randrange(1, 2**31), "b": random.randrange(1, 2**31)}
        self._on_failed: Callable[[int], None] = lambda status: None
        self._on_agent: Callable[[MediaChannel], None] = lambda channel: None
        self._on_customer: Callable[[], None] = lambda: None
        self._on_customer_ringing: Callable[[], None] | None = None

    def legs(self) -> tuple[Leg | None, ...]:
        """The agent's leg and the customer's, once each is up."""
        return (self.agent, self.customer)

    # --- placing the two calls ----------------------------------------------------
    def ring_agent(self, targets: list[Target], timeout: float,
                   on_answered: Callable[[MediaChannel], None], on_failed: Callable[[int], None],
                   show: str | None = None) -> None:
        """Ring the agent's phones in parallel (showing `show` as the caller, default the record's caller);
        then on_answered(channel) or on_failed(status), once."""
        if self.state != "new":
            raise RuntimeError(f"ring_agent on a call in state {self.state}")
        if not targets:
            raise ValueError("no phone to ring")
        b2bua = self.b2bua
        b2bua.active[self.info.record_id] = self
        self._on_agent, self._on_failed = on_answered, on_failed
        self.state = OutboundState.AGENT_RINGING
        try:
            self.relay = b2bua.media.create_relay()
        except (PortsExhausted, OSError) as exc:
            log.error("callback %s: cannot allocate media: %s", self.info.record_id, exc)
            b2bua.loop.call_soon(self._ring_failed, 503)
            return
        body = sdp_local.local_offer(b2bua.endpoint.host, self.relay.a.port, self._sdp_sessions["a"], 1)
        # The agent's phone shows who the callback is for.
        caller = show or self.info.from_number or "switchboard"
        self._ring(targets, body, timeout, self._addresses(caller, "" if show else self.info.display_name, None),
                   "a")

    def dial_customer(self, targets: list[Target], timeout: float, on_ringing: Callable[[], None],
                      on_answered: Callable[[], None], on_failed: Callable[[int], None],
                      number: str | None = None) -> None:
        """Once the agent is up: dial the customer (number, default the record's To), and bridge on answer;
        on failure the agent stays up."""
        channel, agent = self.channel, self.agent
        if self.state != "agent_up" or channel is None or agent is None or self.relay is None:
            raise RuntimeError(f"dial_customer on a call in state {self.state}")
        if not targets:
            raise ValueError("no customer to dial")
        self._on_customer_ringing, self._on_customer, self._on_failed = on_ringing, on_answered, on_failed
        self.customer_status = None
        self.state = OutboundState.CUSTOMER_RINGING
        # Exactly the agent's codec and event numbering: the relay passes audio untouched (as Call.transfer).
        codec = channel.codec.name
        body = sdp_local.local_offer(self.b2bua.endpoint.host, self.relay.b.port, self._sdp_sessions["b"], 1,
                                     codecs=(codec,), event_pt=channel.event_pt or sdp_local.DEFAULT_EVENT_PT,
                                     payload_types={codec: channel.payload_type})
        self._ring(targets, body, timeout, self._addresses(agent.label, "", number or self.info.to_number), "b")

    def _addresses(self, from_user: str, from_name: str,
                   to_user: str | None) -> Callable[[str, TrunkPeer | None], tuple[str, str]]:
        """From and To per target: trunks get their own user and domain, extensions the box's host."""
        name = f"{quote(from_name)} " if from_name else ""
        host = self.b2bua.endpoint.host

        def addresses(label: str, trunk: TrunkPeer | None) -> tuple[str, str]:
            to = to_user or label
            if trunk is not None:
                return f"{name}<sip:{trunk.username or from_user}@{trunk.domain}>", f"<sip:{to}@{trunk.domain}>"
            return f"{name}<sip:{from_user}@{host}>", f"<sip:{to}@{host}>"

        return addresses

    def _ring(self, targets: list[Target], body: bytes, timeout: float,
              addresses: Callable[[str, TrunkPeer | None], tuple[str, str]], media_side: str) -> None:
        self.forks.clear()
        self.timed_out = False
        self._send_forks(targets, body, 70, addresses, media_side)
        self.ring_timer = self.b2bua.loop.call_later(timeout, self._ring_timeout)

    # --- responses from the forks -------------------------------------------------
    def _fork_provisional(self, fork: ClientInvite, response: Response) -> None:
        if self.state not in _RINGING or response.status == 100 or fork not in self.forks:
            return
        if self.state == "agent_ringing":
            self.b2bua.calls.ringing(self.info, fork.label)
        elif self._on_customer_ringing is not None:
            on_ringing, self._on_customer_ringing = self._on_customer_ringing, None
            on_ringing()

    def _fork_answered(self, fork: ClientInvite, response: Response) -> None:
        if self.state not in _RINGING or fork not in self.forks:  # answered too late
            fork.hang_up_late()
            return
        self._cancel_ring_timer()
        self.forks.cancel(keep=fork)
        fork.ack()
        fork.listener = self
        if self.state == "agent_ringing":
            self._agent_answered(fork, response)
        else:
            self._customer_answered(fork, response)

    def _agent_answered(self, fork: ClientInvite, response: Response) -> None:
        """The agent's phone answered: the box's channel takes leg A."""
        assert self.relay is not None
        try:
            choice = sdp_local.choose(sdp_mod.parse_sdp(response.body or b""))
        except sdp_mod.SdpError as exc:
            log.info("callback %s: %s answered without usable SDP: %s", self.info.record_id, fork.label, exc)
            fork.bye()
            self._ring_failed(488)
            return
        self.agent = Leg(fork, "a", fork.label, self._sdp_sessions["a"], sdp_version=1)
        self._index(fork.key, self.agent)
        if choice.host is not None and choice.port:
            self.relay.set_remote("a", choice.host, choice.port)
        self.channel = MediaChannel(self.b2bua.loop, self.relay, "a", choice.codec, choice.payload_type,
                                    choice.event_pt, on_digit=_no_digit)
        self.state = OutboundState.AGENT_UP
        self.info.extension = fork.label  # the one who answered, not the last one that rang
        self.b2bua.calls.answered(self.info, fork.label)
        self._on_agent(self.channel)

    def _customer_answered(self, fork: ClientInvite, response: Response) -> None:
        """The customer answered: splice them into the agent's stream."""
        assert self.relay is not None and self.channel is not None and self.agent is not None
        try:
            choice = sdp_local.choose(sdp_mod.parse_sdp(response.body or b""), prefer=(self.channel.codec.name,))
        except sdp_mod.SdpError as exc:
            log.info("callback %s: %s answered without usable SDP: %s", self.info.record_id, fork.label, exc)
            fork.bye()
            self._ring_failed(488)
            return
        self.customer = Leg(fork, "b", fork.label, self._sdp_sessions["b"], sdp_version=1)
        self._index(fork.key, self.customer)
        if choice.host is not None and choice.port:
            self.relay.set_remote("b", choice.host, choice.port)
        self.state = OutboundState.BRIDGED
        self.channel.connect()
        # The record's answered_by stays the agent: the customer is the number the box called.
        self.b2bua.calls.connected(self.info, self.agent.label)
        self._on_customer()

    def _fork_failed(self, fork: ClientInvite, status: int) -> None:
        if self.state in _RINGING and fork in self.forks and not self.forks.pending():
            self._ring_failed(self.forks.final_status())

    def _ring_timeout(self) -> None:
        """Nobody answered in time: CANCEL the forks and give up on them now."""
        self.ring_timer = None
        if self.state not in _RINGING:
            return
        self.timed_out = True
        self._cancel_forks()
        self._ring_failed(480)

    def _ring_failed(self, status: int) -> None:
        """The agent (the call is over) or the customer (the agent stays up) did not answer."""
        self._cancel_ring_timer()
        if self.state == "agent_ringing":
            self._release("no-answer" if self.timed_out else disposition_for(status), status, None)
            self._on_failed(status)
        elif self.state == "customer_ringing":
            self.state = OutboundState.AGENT_UP
            self.customer_status = status
            self._on_failed(status)

    def _cancel_forks(self) -> None:
        self.forks.cancel()

    # --- in-dialog requests (the sessions' listener) -----------------------------------
    def on_bye(self, session: InviteSession) -> None:
        """The agent or the customer hung up."""
        leg = self.leg_of(session)
        if leg is not None:
            self._hung_up(leg)

    def on_reinvite(self, session: InviteSession, txn: ServerTransaction) -> None:
        """A re-INVITE from the agent or the customer."""
        leg = self.leg_of(session)
        if leg is None:
            txn.respond(481)
        else:
            self._reinvite(txn, leg)

    def on_in_dialog(self, session: InviteSession, txn: ServerTransaction) -> None:
        """INFO and UPDATE without SDP are fine; an SDP offer in UPDATE is not (the media stays)."""
        method = txn.request.method
        if method == "INFO" or (method == "UPDATE" and not txn.request.body):
            txn.respond(200)
        elif method == "UPDATE":
            txn.respond(488)
        else:
            txn.respond(405, extra=[("Allow", ALLOW)])

    def _reinvite(self, txn: ServerTransaction, leg: Leg) -> None:
        """Answer with the box's SDP for that leg; the codec cannot change (the relay does not transcode)."""
        channel, relay = self.channel, self.relay
        if channel is None or relay is None:
            txn.respond(500)
            return
        codec = channel.codec.name
        port = relay.leg(leg.relay_side).port  # type: ignore[arg-type]
        host = self.b2bua.endpoint.host
        if not txn.request.body:
            body = sdp_local.local_offer(host, port, leg.sdp_session, leg.next_sdp_version(), codecs=(codec,),
                                         event_pt=channel.event_pt or sdp_local.DEFAULT_EVENT_PT,
                                         payload_types={codec: channel.payload_type})
        else:
            try:
                choice = sdp_local.choose(sdp_mod.parse_sdp(txn.request.body), prefer=(codec,))
            except sdp_mod.SdpError:
                txn.respond(488, f"Not Acceptable Here ({codec} only)")
                return
            if choice.host is not None and choice.port:
                relay.set_remote(leg.relay_side, choice.host, choice.port)  # type: ignore[arg-type]
            body = sdp_local.local_answer(choice, host, port, leg.sdp_session, leg.next_sdp_version())
        extra = [("Contact", self.b2bua.ua.contact(txn.peer.transport)), ("Content-Type", "application/sdp")]
        txn.respond(200, extra=extra, body=body)

    # --- ending -----------------------------------------------------------------------
    def _hung_up(self, leg: Leg) -> None:
        """The agent or the customer sent BYE: BYE the other one and finish."""
        if self.state in _RINGING:  # the agent hung up while the customer rang
            self._cancel_forks()
        other = self.customer if leg is self.agent else self.agent
        if other is not None:
            other.session.bye()
        self._release("answered", self.customer_status, leg.label)
        self._ended("agent" if leg is self.agent else "customer")

    def hangup(self) -> None:
        """The box ends it: CANCEL what rings, BYE what is up, close media, write the record ("box")."""
        if self.state == "ended":
            return
        if self.state in _RINGING:
            self._cancel_forks()
        for leg in (self.agent, self.customer):
            if leg is not None:
                leg.session.bye()
        if self.agent is None:
            self._release("cancelled", 487, "box")
        else:
            self._release("answered", self.customer_status, "box")
            self._ended("box")

    def _release(self, disposition: str, status: int | None, hangup_by: str | None) -> None:
        """Close media, drop from the indexes and write the record."""
        self.state = OutboundState.ENDED
        self._cancel_ring_timer()
        calls = self.b2bua.calls
        if self.channel is not None:
            calls.note(self.info, media=self.channel.close())
        if self.relay is not None:
            self.relay.close()
        self.b2bua.forget(self)
        calls.ended(self.info, disposition, status, hangup_by)

    def _ended(self, who: str) -> None:
        for callback in self.on_ended:
            try:
                callback(who)
            except Exception:
                log.exception("callback %s: on_ended failed", self.info.record_id)
