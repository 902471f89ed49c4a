"""SIP transactions and their timers (RFC 3261 §17, with RFC 6026's Accepted state)."""
from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from itertools import count
from typing import Callable, Protocol

from .message import Message, Request, Response, SipParseError, make_response, validate_request, validate_response
from .transport import Peer, SipTransport, response_destination

log = logging.getLogger("switchboard.sip.transaction")

T1, T2, T4 = 0.5, 4.0, 5.0
MAGIC = "z9hG4bK"
ResponseCallback = Callable[[Response], None]


class TransactionUser(Protocol):
    """What sits above the transaction layer (the UA core)."""

    def on_request(self, txn: "ServerTransaction") -> None:
        """A new request arrived in its own server transaction."""

    def on_cancel(self, txn: "ServerTransaction", invite: "ServerTransaction | None") -> None:
        """A CANCEL arrived; invite is the transaction it cancels, if known."""

    def on_ack(self, request: Request, peer: Peer) -> None:
        """An ACK for a 2xx (end-to-end, outside any transaction)."""

    def on_ack_timeout(self, txn: "ServerTransaction") -> None:
        """A 2xx to an INVITE was never acknowledged."""

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        """A response that matches no client transaction (e.g. a retransmitted 2xx)."""


class _NotServing:
    """The transaction user before start(): the transport delivers nothing until then."""

    def on_request(self, txn: "ServerTransaction") -> None:
        txn.respond(503, stateless=True)

    def on_cancel(self, txn: "ServerTransaction", invite: "ServerTransaction | None") -> None:
        txn.respond(503, stateless=True)

    def on_ack(self, request: Request, peer: Peer) -> None:
        pass

    def on_ack_timeout(self, txn: "ServerTransaction") -> None:
        pass

    def on_stray_response(self, response: Response, peer: Peer) -> None:
        pass


class ServerTransaction:
    """A request received and the responses sent to it."""

    __slots__ = ("layer", "key", "request", "method", "peer", "state", "last", "dest", "timer", "interval", "data")

    def __init__(self, layer: "TransactionLayer", key: tuple, request: Request, peer: Peer) -> None:
        self.layer = layer
        self.key = key
        self.request: Request = request
        self.method = request.method
        self.peer = peer
        self.state = "trying"
        self.last: bytes | None = None
        self.dest = peer
        self.timer: asyncio.TimerHandle | None = None
        self.interval = T1
        self.data: object = None  # the TU's own per-transaction state

    @property
    def is_invite(self) -> bool:
        """Whether this is an INVITE transaction."""
        return self.method == "INVITE"

    @property
    def answered(self) -> bool:
        """Whether a final response has been sent."""
        return self.state not in ("trying", "proceeding")

    def respond(self, response: Response | int, reason: str | None = None, *, stateless: bool = False,
                **kwargs) -> Response | None:  # type: ignore[no-untyped-def]
        """Send a response (or build one from a status code); ignored once a final one went out.

        stateless: a final answer that commits the box to nothing (a challenge, a refusal before any
        call exists, OPTIONS). It is sent once and the transaction is forgotten at once, as a
        stateless UAS does (RFC 3261 §8.2.7): a retransmitted request is simply answered again. A
        flood of unique requests then holds no memory for 32 s and gets no retransmitted answers.
        """
        if self.answered:
            log.debug("late response %r on %s ignored", response, self.key)
            return None
        if isinstance(response, int):
            response = make_response(self.request, response, reason, **kwargs)
        data = response.to_bytes()
        dest = response_destination(response, self.peer)
        status = response.status
        if stateless and status >= 200 and not (self.is_invite and status < 300):
            self.layer.transport.send(data, dest)
            self.terminate()
            return response
        self.last = data
        self.dest = dest
        self.layer.transport.send(self.last, self.dest)
        if status < 200:
            self.state = "proceeding"
        elif self.is_invite:
            self._final_invite(status)
        else:
            self.state = "completed"
            # For 32 s only the bytes are needed, to answer retransmissions: the parsed request
            # (dozens of GC-tracked objects) goes now, so a REGISTER burst stays small and GC stays short.
            self.request = None  # type: ignore[assignment]
            self.data = None
            self.layer._expire_later(self, 0 if self.peer.transport == "TCP" else 64 * T1)
        return response

    def _final_invite(self, status: int) -> None:
        udp = self.peer.transport == "UDP"
        if status < 300:
            # RFC 6026: absorb INVITE retransmissions; the 2xx itself is resent until ACK.
            self.state = "accepted"
            self.layer._awaiting_ack[(self.request.call_id, self.request.cseq[0])] = self
            self._start_retransmit(udp)
        else:
            self.state = "completed"
            self._start_retransmit(udp)

    def _start_retransmit(self, udp: bool) -> None:
        loop = self.layer.loop
        if udp:
            self.interval = T1
            self.timer = loop.call_later(T1, self._retransmit)
        loop.call_later(64 * T1, self._give_up)

    def _retransmit(self) -> None:
        if self.state not in ("completed", "accepted") or self.last is None:
            return
        self.layer.transport.send(self.last, self.dest)
        self.interval = min(self.interval * 2, T2)
        self.timer = self.layer.loop.call_later(self.interval, self._retransmit)

    def _give_up(self) -> None:
        """Timer H (no ACK for a failure) or the end of the Accepted state."""
        if self.state == "accepted":
            if self.layer._awaiting_ack.get((self.request.call_id, self.request.cseq[0])) is self:
                del self.layer._awaiting_ack[(self.request.call_id, self.request.cseq[0])]
                self.layer.tu.on_ack_timeout(self)
        self.terminate()

    def acknowledged(self) -> None:
        """An ACK arrived: stop retransmitting the final response."""
        self._cancel_timer()
        if self.state == "completed":
            self.state = "confirmed"
            self.layer._expire_later(self, T4 if self.peer.transport == "UDP" else 0)
        elif self.state == "accepted":
            self.state = "acked"

    def retransmission(self) -> None:
        """The same request arrived again: repeat the last response."""
        if self.last is not None and self.state != "acked":
            self.layer.transport.send(self.last, self.dest)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def terminate(self) -> None:
        """Forget this transaction."""
        self._cancel_timer()
        self.state = "terminated"
        if self.layer.server.get(self.key) is self:
            del self.layer.server[self.key]


class ClientTransaction:
    """A request sent and the responses to it."""

    __slots__ = ("layer", "key", "request", "data", "dest", "callback", "state", "timer", "timeout", "interval")

    def __init__(self, layer: "TransactionLayer", request: Request, dest: Peer, callback: ResponseCallback) -> None:
        self.layer = layer
        self.request = request
        self.key = (request.top_via.branch, request.method)
        self.data = request.to_bytes()
        self.dest = dest
        self.callback = callback
        self.state = "calling"
        self.timer: asyncio.TimerHandle | None = None
        self.timeout: asyncio.TimerHandle | None = None
        self.interval = T1

    @property
    def is_invite(self) -> bool:
        """Whether this is an INVITE transaction."""
        return self.request.method == "INVITE"

    def start(self) -> None:
        """Send the request and arm timers A/B or E/F."""
        self.layer.client[self.key] = self
        loop = self.layer.loop
        if not self.layer.transport.send(self.data, self.dest):
            loop.call_soon(self._fail, 503, "Service Unavailable")
            return
        if self.dest.transport == "UDP":
            self.timer = loop.call_later(T1, self._retransmit)
        self.timeout = loop.call_later(64 * T1, self._fail, 408, "Request Timeout")

    def _retransmit(self) -> None:
        if self.state != "calling" and not (self.state == "proceeding" and not self.is_invite):
            return  # timer A stops on a provisional response; timer E goes on at T2
        self.layer.transport.send(self.data, self.dest)
        if self.is_invite:
            self.interval *= 2
        else:
            self.interval = T2 if self.state == "proceeding" else min(self.interval * 2, T2)
        self.timer = self.layer.loop.call_later(self.interval, self._retransmit)

    def _fail(self, status: int, reason: str) -> None:
        if self.state in ("calling", "proceeding"):
            self.state = "terminated"
            self._stop()
            response = make_response(self.request, status, reason)
            response.local = True
            self.callback(response)

    def _stop(self) -> None:
        for handle in (self.timer, self.timeout):
            if handle is not None:
                handle.cancel()
        self.timer = self.timeout = None
        if self.state == "terminated" and self.layer.client.get(self.key) is self:
            del self.layer.client[self.key]

    def on_response(self, response: Response) -> None:
        """Advance the state machine with a response."""
        status = response.status
        if status < 200:
            if self.state == "calling":
                self.state = "proceeding"
                if self.is_invite and self.timeout is not None:
                    # Timer B runs only in Calling (RFC 3261 §17.1.1.2): a phone may ring for longer
                    # than 64*T1; the ring timeout (a CANCEL) ends it, not a local 408.
                    self.timeout.cancel()
                    self.timeout = None
                if self.dest.transport == "UDP" and not self.is_invite and self.timer:
                    self.timer.cancel()
                    self.timer = self.layer.loop.call_later(T2, self._retransmit)
            if self.state == "proceeding":
                self.callback(response)
            return
        if self.is_invite:
            self._final_invite(response)
            return
        if self.state in ("calling", "proceeding"):
            self.state = "completed"
            self._stop()
            self.layer._expire_later(self, T4 if self.dest.transport == "UDP" else 0)
            self.callback(response)

    def _final_invite(self, response: Response) -> None:
        if response.status < 300:
            if self.state in ("calling", "proceeding"):
                self.state = "accepted"
                self._stop()
                self.layer._expire_later(self, 64 * T1)
            if self.state == "accepted":
                self.callback(response)  # retransmitted 2xx go to the TU too, to be re-ACKed
            return
        ack = self.build_ack(response)
        self.layer.transport.send(ack, self.dest)
        if self.state in ("calling", "proceeding"):
            self.state = "completed"
            self._stop()
            self.layer._expire_later(self, 32.0 if self.dest.transport == "UDP" else 0)
            self.callback(response)

    def build_ack(self, response: Response) -> bytes:
        """ACK for a non-2xx final response, in the same transaction (RFC 3261 §17.1.1.3)."""
        req = self.request
        headers = [["Via", req.header_lines("Via")[0]]]
        for name in ("Route",):
            headers += [[name, v] for v in req.header_lines(name)]
        headers += [["From", req.header("From") or ""], ["To", response.header("To") or ""],
                    ["Call-ID", req.call_id], ["CSeq", f"{req.cseq[0]} ACK"], ["Max-Forwards", "70"]]
        return Request("ACK", req.uri, headers).to_bytes()

    def terminate(self) -> None:
        """Forget this transaction."""
        self.state = "terminated"
        self._stop()


class TransactionLayer:
    """Matches messages to transactions and runs their timers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: SipTransport, tu: TransactionUser | None = None,
                 methods: frozenset[str] | None = None) -> None:
        self.loop = loop
        self.transport = transport
        self.tu: TransactionUser = tu or _NotServing()
        self.methods = methods  # requests of other methods get 501 (RFC 4475 mismatch02)
        self.server: dict[tuple, ServerTransaction] = {}
        self.client: dict[tuple, ClientTransaction] = {}
        self._awaiting_ack: dict[tuple[str, int], ServerTransaction] = {}
        self._expiry: dict[float, deque[tuple[float, ServerTransaction | ClientTransaction]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._branch_prefix = MAGIC + os.urandom(4).hex()
        self._branch_counter = count(1)

    def new_branch(self) -> str:
        """A unique RFC 3261 branch."""
        return f"{self._branch_prefix}.{next(self._branch_counter):x}"

    def start(self, tu: TransactionUser | None = None) -> None:
        """Start serving `tu` (the UA core, built above this layer) and the sweep of expired transactions."""
        if tu is not None:
            self.tu = tu
        self.transport.serve(self.handle)
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def stop(self) -> None:
        """Stop timers."""
        if self._sweeper:
            self._sweeper.cancel()

    def _expire_later(self, txn: ServerTransaction | ClientTransaction, delay: float) -> None:
        if delay <= 0:
            txn.terminate()
            return
        # Timers J, K, D and the ends of the Accepted states are coarse: a one-second sweep over
        # one deque per delay (each in deadline order) keeps a REGISTER burst cheap.
        queue = self._expiry.get(delay)
        if queue is None:
            queue = self._expiry[delay] = deque()
        queue.append((self.loop.time() + delay, txn))

    def _sweep(self) -> None:
        now = self.loop.time()
        for queue in self._expiry.values():
            while queue and queue[0][0] <= now:
                queue.popleft()[1].terminate()
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    # --- incoming ---------------------------------------------------------
    def handle(self, message: Message, peer: Peer) -> None:
        """Transport handler: route a message to its transaction or to the TU."""
        if isinstance(message, Request):
            self._handle_request(message, peer)
        else:
            self._handle_response(message, peer)  # type: ignore[arg-type]

    def _handle_request(self, request: Request, peer: Peer) -> None:
        try:
            validate_request(request, methods=self.methods)
        except SipParseError as exc:
            if request.method != "ACK":
                self._reply_error(request, peer, exc)
            return
        key = server_key(request)
        method = request.method
        if method == "ACK":
            txn = self.server.get(key)
            if txn is not None and txn.state in ("completed", "confirmed"):
                txn.acknowledged()  # ACK for a failure: hop by hop, absorbed here
                return
            waiting = self._awaiting_ack.pop((request.call_id, request.cseq[0]), None)
            if waiting is not None:
                waiting.acknowledged()
            self.tu.on_ack(request, peer)
            return
        txn = self.server.get(key)
        if txn is not None:
            txn.retransmission()
            return
        txn = ServerTransaction(self, key, request, peer)
        self.server[key] = txn
        if method == "CANCEL":
            self.tu.on_cancel(txn, self.server.get(key[:-1] + ("INVITE",)))
            return
        self.tu.on_request(txn)
        if txn.is_invite and txn.state == "trying":
            txn.respond(100)

    def _reply_error(self, request: Request, peer: Peer, exc: SipParseError) -> None:
        try:
            response = make_response(request, exc.status, exc.reason if exc.status == 400 else None)
            if exc.status == 400:
                response.reason = f"Bad Request ({exc.reason})"[:120]
            try:
                dest = response_destination(response, peer)
            except ValueError:  # a Via too broken to read (RFC 4475 badinv01): answer the source
                dest = peer
            self.transport.send(response.to_bytes(), dest)
        except Exception:  # headers too broken to address a response
            log.info("dropped malformed %s from %s: %s", request.method, peer, exc.reason)

    def _handle_response(self, response: Response, peer: Peer) -> None:
        try:
            validate_response(response)
            if len(response.vias) != 1:
                raise SipParseError("a response to us has exactly one Via")  # RFC 3261 §8.1.3.3
            key = (response.top_via.branch, response.cseq[1])
        except (SipParseError, ValueError):
            log.info("dropped malformed response from %s", peer)
            return
        txn = self.client.get(key)
        if txn is not None:
            txn.on_response(response)
        else:
            self.tu.on_stray_response(response, peer)

    # --- outgoing ---------------------------------------------------------
    def send_request(self, request: Request, dest: Peer, callback: ResponseCallback) -> ClientTransaction:
        """Start a client transaction; callback gets every response, or a local 408/503."""
        txn = ClientTransaction(self, request, dest, callback)
        txn.start()
        return txn

    def send_ack(self, ack: Request, dest: Peer) -> None:
        """Send an ACK for a 2xx: no transaction (RFC 3261 §13.2.2.4)."""
        self.transport.send(ack.to_bytes(), dest)


def server_key(request: Request) -> tuple:
    """The key that matches a request to its server transaction (RFC 3261 §17.2.3)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC):
        return (branch, via.host.lower(), via.port, method)
    # RFC 2543 peers: no magic cookie, match on the request's identity instead.
    return ("2543", request.call_id, request.cseq[0], request.from_.tag, str(via.host), via.port, method)
