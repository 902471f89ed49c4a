"""The INVITE session layer (appliance/sip/invite_session.py) on a fake wire and a fake clock.

The end-to-end call tests drive the same code with SIPp; here each protocol rule is one short test.
"""
from __future__ import annotations

from typing import Any

from sip_rig import BOX, PHONE, Rig, response_to

from appliance.sip.dialog import Dialog
from appliance.sip.digest import DigestAuthenticator, NonceManager
from appliance.sip.forking import final_status
from appliance.sip.invite_session import ClientInvite, Credentials, ServerInvite, SessionState
from appliance.sip.transaction import T1

OFFER = "v=0\no=- 1 1 IN IP4 192.0.2.20\ns=-\nc=IN IP4 192.0.2.20\nt=0 0\nm=audio 4000 RTP/AVP 0\n"  # CRLF on the wire


class Events:
    """What a ClientInvite reported."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def provisional(self, fork: ClientInvite, response: Any) -> None:
        self.seen.append(("provisional", response.status))

    def answered(self, fork: ClientInvite, response: Any) -> None:
        self.seen.append(("answered", response.status))

    def failed(self, fork: ClientInvite, status: int) -> None:
        self.seen.append(("failed", status))


def fork(rig: Rig, events: Events, credentials: Credentials | None = None) -> ClientInvite:
    dialog = Dialog(call_id="c1", local_tag="box1", local_uri="<sip:200@192.0.2.1>", remote_uri="<sip:201@192.0.2.1>",
                    peer=PHONE, remote_target=f"sip:201@{PHONE.host}:{PHONE.port}", local_cseq=1)
    session = ClientInvite(rig.ua, dialog, PHONE, b"", 70, credentials, events.provisional, events.answered,
                           events.failed, label="201")
    session.start()
    return session


def test_cancel_waits_for_a_provisional_response() -> None:
    """RFC 3261 §9.1: a CANCEL may go only once the INVITE has had a provisional response."""
    rig, events = Rig(), Events()
    session = fork(rig, events)
    session.cancel()
    assert rig.wire.requests("CANCEL") == []
    invite = rig.wire.requests("INVITE")[0]
    rig.wire.deliver(response_to(invite, 180, "Ringing"))
    [cancel] = rig.wire.requests("CANCEL")
    assert cancel.cseq == (invite.cseq[0], "CANCEL") and cancel.header("Via") == invite.header("Via")
    assert events.seen == []  # a cancelled fork does not report its ringing


def test_early_then_connecting_then_confirmed_and_a_retransmitted_2xx_is_acked_again() -> None:
    rig, events = Rig(), Events()
    session = fork(rig, events)
    invite = rig.wire.requests("INVITE")[0]
    assert session.state == SessionState.CALLING
    rig.wire.deliver(response_to(invite, 180, "Ringing"))
    assert session.state == SessionState.EARLY and events.seen == [("provisional", 180)]
    rig.wire.deliver(response_to(invite, 200))
    assert session.state == SessionState.CONNECTING and rig.wire.requests("ACK") == []
    rig.wire.deliver(response_to(invite, 200))  # before the controller ACKs: nothing yet (late offer holds it)
    assert rig.wire.requests("ACK") == [] and events.seen[-1] == ("answered", 200) and len(events.seen) == 2
    session.ack()
    assert session.state == SessionState.CONFIRMED
    rig.wire.deliver(response_to(invite, 200))  # our ACK was lost (RFC 3261 §13.2.2.4)
    acks = rig.wire.requests("ACK")
    assert len(acks) == 2 and all(a.cseq == (invite.cseq[0], "ACK") for a in acks)


def test_a_trunk_challenge_is_answered_once_with_the_next_cseq() -> None:
    rig, events = Rig(), Events()
    fork(rig, events, Credentials("box", "trunk-secret", "itsp"))
    auth = DigestAuthenticator("itsp.example", lambda user, alg: None, NonceManager(b"k" * 32), ("MD5",))
    challenge = f"Proxy-Authenticate: {auth.challenges()[0]}"
    first = rig.wire.requests("INVITE")[0]
    rig.wire.deliver(response_to(first, 407, "Proxy Authentication Required", extra=challenge))
    second = rig.wire.requests("INVITE")[1]
    assert second.cseq[0] == first.cseq[0] + 1 and "username=\"box\"" in (second.header("Proxy-Authorization") or "")
    rig.wire.deliver(response_to(second, 407, "Proxy Authentication Required", extra=challenge))
    assert len(rig.wire.requests("INVITE")) == 2 and events.seen == [("failed", 407)]


def test_no_final_answer_after_cancel_ends_the_invite_at_64_t1() -> None:
    rig, events = Rig(), Events()
    session = fork(rig, events)
    invite = rig.wire.requests("INVITE")[0]
    rig.wire.deliver(response_to(invite, 180, "Ringing"))
    session.cancel()
    assert session.txn is not None and session.txn.state == "proceeding"
    rig.loop.advance(64 * T1 - 0.1)
    assert session.txn.state == "proceeding"
    rig.loop.advance(0.2)
    assert session.txn.state == "terminated"


def incoming(rig: Rig, body: str = OFFER) -> ServerInvite:
    """An INVITE from the phone, as the UA core would hand it over."""
    captured: list = []

    class Core:
        def on_request(self, txn):  # type: ignore[no-untyped-def]
            captured.append(txn)

        def on_ack(self, request, peer):  # type: ignore[no-untyped-def]
            captured.append(request)

    rig.layer.tu = Core()  # type: ignore[assignment]
    rig.wire.deliver("\n".join([
        f"INVITE sip:200@{BOX.host} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKa1",
        "Max-Forwards: 70", "From: <sip:201@192.0.2.1>;tag=ph1", "To: <sip:200@192.0.2.1>", "Call-ID: in1",
        "CSeq: 1 INVITE", f"Contact: <sip:201@{PHONE.host}:{PHONE.port}>", "Content-Type: application/sdp",
        f"Content-Length: {len(body)}", "", body]))
    return ServerInvite(rig.ua, captured[0])


def in_dialog(rig: Rig, session: ServerInvite, method: str, cseq: int, branch: str) -> None:
    rig.wire.deliver("\n".join([
        f"{method} sip:switchboard@{BOX.host} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch={branch}",
        "Max-Forwards: 70", "From: <sip:201@192.0.2.1>;tag=ph1", f"To: <sip:200@192.0.2.1>;tag={session.dialog.local_tag}",
        "Call-ID: in1", f"CSeq: {cseq} {method}", "Content-Length: 0", "", ""]))


def test_a_bye_before_the_callers_ack_waits_for_it() -> None:
    """RFC 3261 §15: the callee may not send BYE before the ACK for its 2xx."""
    rig = Rig()
    session = incoming(rig)
    session.answer(b"")
    session.bye()
    assert rig.wire.requests("BYE") == [] and session.bye_waits_for_ack
    session.on_ack()
    assert len(rig.wire.requests("BYE")) == 1 and session.state == SessionState.DISCONNECTED


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_bye(self, session):  # type: ignore[no-untyped-def]
        self.seen.append("bye")

    def on_reinvite(self, session, txn):  # type: ignore[no-untyped-def]
        self.seen.append("reinvite")
        txn.respond(200)

    def on_in_dialog(self, session, txn):  # type: ignore[no-untyped-def]
        self.seen.append(txn.request.method)
        txn.respond(200)


def confirmed(rig: Rig) -> tuple[ServerInvite, Listener]:
    session = incoming(rig)
    session.answer(b"")
    session.on_ack()
    session.listener = Listener()
    rig.layer.tu = type("Tu", (), {"on_request": lambda self, txn: session.on_request(txn)})()  # type: ignore[assignment]
    return session, session.listener  # type: ignore[return-value]


def test_reinvite_glare_is_491_and_an_old_cseq_is_500() -> None:
    rig = Rig()
    session, listener = confirmed(rig)
    assert session.reinvite(b"", lambda response: None)  # ours is out
    in_dialog(rig, session, "INVITE", 2, "z9hG4bKr1")  # theirs crosses it (RFC 3261 §14.2)
    assert rig.wire.responses(491) and listener.seen == []
    in_dialog(rig, session, "INFO", 2, "z9hG4bKr2")  # CSeq 2 again: out of order
    assert rig.wire.responses(500) and listener.seen == []
    in_dialog(rig, session, "INFO", 3, "z9hG4bKr3")
    assert listener.seen == ["INFO"]


def test_bye_is_answered_and_reported() -> None:
    rig = Rig()
    session, listener = confirmed(rig)
    in_dialog(rig, session, "BYE", 2, "z9hG4bKb1")
    assert rig.wire.responses(200)[-1].cseq == (2, "BYE")
    assert listener.seen == ["bye"] and session.state == SessionState.DISCONNECTED


def test_forks_that_all_fail_give_one_status() -> None:
    """Busy wins; then RFC 3261 §16.7's order: 6xx, specific 4xx, 5xx, timeouts."""
    assert final_status([480, 486, 408]) == 486
    assert final_status([480, 404]) == 404
    assert final_status([408, 500]) == 500
    assert final_status([408, 480]) == 408
    assert final_status([]) == 480
