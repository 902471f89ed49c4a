"""The B2BUA's dispatch on a fake wire: refusals, limits, destinations, forking and CANCEL, without sockets."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sip_rig import BOX, PHONE, Rig, response_to

from appliance.calls.b2bua import B2BUA
from appliance.calls.records import CallInfo
from appliance.calls.router import Route
from appliance.sip.registrar import LocationService
from appliance.sip.transport import Peer

OFFER = "v=0\no=- 1 1 IN IP4 192.0.2.20\ns=-\nc=IN IP4 192.0.2.20\nt=0 0\nm=audio 4000 RTP/AVP 0\n"  # CRLF on the wire
CALLEE = Peer("UDP", "192.0.2.30", 5064)


class FakeRelay:
    def __init__(self) -> None:
        self.a, self.b = SimpleNamespace(port=20000), SimpleNamespace(port=20002)
        self.closed = False

    def expect_from(self, side: str, *hosts: str) -> None:
        pass

    def set_remote(self, side: str, host: str, port: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeMedia:
    def __init__(self) -> None:
        self.relays: list[FakeRelay] = []

    def create_relay(self) -> FakeRelay:
        self.relays.append(FakeRelay())
        return self.relays[-1]


class FakeCallLog:
    """Records what the B2BUA tells the call log."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def __getattr__(self, name: str) -> Any:
        return lambda info, *args, **kwargs: self.events.append((name, *args))


class Calls:
    """The UA core's part: hands each new INVITE to the B2BUA with a route."""

    def __init__(self, rig: Rig, route: Route, location: LocationService, unconfirmed: int = 100) -> None:
        self.route = route
        self.log = FakeCallLog()
        self.media = FakeMedia()
        self.b2bua = B2BUA(rig.loop, rig.layer, BOX, location, self.log, self.media, ring_timeout=lambda: 30.0,  # type: ignore[arg-type]
                           max_unconfirmed=lambda: unconfirmed)
        rig.layer.tu = self  # type: ignore[assignment]

    def on_request(self, txn):  # type: ignore[no-untyped-def]
        if txn.request.to.tag:
            self.b2bua.on_in_dialog(txn)
            return
        info = CallInfo("rec1", txn.request.call_id, "internal", "internal", "201", "", "202")
        self.b2bua.start(txn, self.route, info)

    def on_cancel(self, txn, invite):  # type: ignore[no-untyped-def]
        self.b2bua.on_cancel(txn, invite)

    def on_ack(self, request, peer):  # type: ignore[no-untyped-def]
        self.b2bua.on_ack(request, peer)


def invite(rig: Rig, branch: str = "z9hG4bKc1", call_id: str = "call1") -> None:
    rig.wire.deliver("\n".join([
        f"INVITE sip:202@{BOX.host} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch={branch}",
        "Max-Forwards: 70", "From: <sip:201@192.0.2.1>;tag=ph1", "To: <sip:202@192.0.2.1>", f"Call-ID: {call_id}",
        "CSeq: 1 INVITE", f"Contact: <sip:201@{PHONE.host}:{PHONE.port}>", "Content-Type: application/sdp",
        f"Content-Length: {len(OFFER) + OFFER.count(chr(10))}", "", OFFER]))


def registered(rig: Rig, *sources: Peer) -> LocationService:
    location = LocationService(clock=rig.loop.time)
    from appliance.sip.registrar import Binding
    from appliance.sip.uri import parse_sip_uri
    for i, source in enumerate(sources):
        contact = f"sip:202@{source.host}:{source.port}"
        location.bindings.setdefault("202", {})[contact] = Binding(
            "202", contact, parse_sip_uri(contact), source, rig.loop.time() + 600, "", i)
    return location


def final_statuses(rig: Rig) -> list[int]:
    return [r.status for r in rig.wire.responses() if r.status >= 200 and r.cseq[1] == "INVITE"]


def test_a_refusing_route_answers_with_its_status_and_holds_no_media() -> None:
    rig = Rig()
    calls = Calls(rig, Route.reject(403, "Forbidden (international calls barred)"), LocationService())
    invite(rig)
    assert final_statuses(rig) == [403] and calls.media.relays == []
    assert ("ended", "failed", 403, None) in calls.log.events


def test_an_extension_that_is_not_registered_is_480() -> None:
    rig = Rig()
    Calls(rig, Route("extension", "202"), LocationService())
    invite(rig)
    assert final_statuses(rig) == [480]


def test_calls_not_yet_answered_may_hold_only_their_share_of_ports() -> None:
    rig = Rig()
    calls = Calls(rig, Route("extension", "202"), registered(rig, CALLEE), unconfirmed=1)
    invite(rig, "z9hG4bKa", "first")
    invite(rig, "z9hG4bKb", "second")
    assert final_statuses(rig) == [503] and len(calls.media.relays) == 1


def test_a_route_kind_nobody_registered_is_480_and_a_registered_one_gets_the_call() -> None:
    rig = Rig()
    calls = Calls(rig, Route("queue", "sales"), LocationService())
    invite(rig, "z9hG4bKq1", "q1")
    assert final_statuses(rig) == [480]
    taken: list = []
    remove = calls.b2bua.add_destination("queue", lambda call, route: taken.append(route.number))
    invite(rig, "z9hG4bKq2", "q2")
    assert taken == ["sales"]
    remove()
    assert "queue" not in calls.b2bua.destinations


def test_every_contact_rings_the_first_answer_wins_and_the_others_are_cancelled() -> None:
    other = Peer("UDP", "192.0.2.31", 5066)
    rig = Rig()
    calls = Calls(rig, Route("extension", "202"), registered(rig, CALLEE, other))
    invite(rig)
    forks = rig.wire.requests("INVITE")
    assert len(forks) == 2
    for fork in forks:
        rig.wire.deliver(response_to(fork, 180, "Ringing", to_tag=f"t{fork.uri[-4:]}"), CALLEE)
    winner = forks[0]
    rig.wire.deliver(response_to(winner, 200, body=OFFER, to_tag=f"t{winner.uri[-4:]}"), CALLEE)
    [cancel] = rig.wire.requests("CANCEL")
    assert cancel.call_id == forks[1].call_id and cancel.header("Via") == forks[1].header("Via")
    assert final_statuses(rig) == [200] and ("answered", "202") in calls.log.events


def test_cancel_from_the_caller_cancels_the_forks_and_answers_487() -> None:
    rig = Rig()
    Calls(rig, Route("extension", "202"), registered(rig, CALLEE))
    invite(rig)
    [fork] = rig.wire.requests("INVITE")
    rig.wire.deliver(response_to(fork, 180, "Ringing"), CALLEE)
    rig.wire.deliver("\n".join([
        f"CANCEL sip:202@{BOX.host} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKc1",
        "Max-Forwards: 70", "From: <sip:201@192.0.2.1>;tag=ph1", "To: <sip:202@192.0.2.1>", "Call-ID: call1",
        "CSeq: 1 CANCEL", "Content-Length: 0", "", ""]))
    assert len(rig.wire.requests("CANCEL")) == 1 and 487 in final_statuses(rig)


def test_a_request_for_no_dialog_is_481() -> None:
    rig = Rig()
    Calls(rig, Route("extension", "202"), LocationService())
    rig.wire.deliver("\n".join([
        f"BYE sip:switchboard@{BOX.host} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKx",
        "Max-Forwards: 70", "From: <sip:201@192.0.2.1>;tag=ph1", "To: <sip:202@192.0.2.1>;tag=nope", "Call-ID: gone",
        "CSeq: 2 BYE", "Content-Length: 0", "", ""]))
    assert [r.status for r in rig.wire.responses()] == [481]
