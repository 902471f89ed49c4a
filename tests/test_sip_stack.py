"""The transaction layer, the registrar and the UA core on a fake wire and a fake clock (no sockets, no waiting)."""
from __future__ import annotations

import hashlib

from sip_rig import BOX, PHONE, Rig

from appliance.sip.core import RequestAuthenticator, SipCore
from appliance.sip.digest import DigestAuthenticator, NonceManager, build_authorization
from appliance.sip.registrar import LocationService, Registrar, RegistrarPolicy
from appliance.sip.security import BanList
from appliance.sip.transaction import T1, T2

REALM = "switchboard"


def request(method: str, branch: str, *, to_tag: str = "", extra: list[str] = (), user: str = "201",  # type: ignore[assignment]
            ruri: str = f"sip:{BOX.host}", cseq: int = 1) -> str:
    lines = [f"{method} {ruri} SIP/2.0", f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch={branch}",
             "Max-Forwards: 70", f"From: <sip:{user}@{BOX.host}>;tag=ph1",
             f"To: <sip:{user}@{BOX.host}>" + (f";tag={to_tag}" if to_tag else ""), f"Call-ID: {branch}-call",
             f"CSeq: {cseq} {method}", f"Contact: <sip:{user}@{PHONE.host}:{PHONE.port}>", *extra,
             "Content-Length: 0", "", ""]
    return "\n".join(lines)


# --- transactions (RFC 3261 §17) ------------------------------------------------------------

def test_a_non_invite_request_is_resent_at_t1_doubling_to_t2_then_times_out_with_408() -> None:
    rig = Rig()
    answers: list[int] = []
    from appliance.sip.dialog import Dialog
    dialog = Dialog("c", "t", "<sip:a@x>", "<sip:b@y>", PHONE, f"sip:b@{PHONE.host}", local_cseq=1)
    rig.layer.send_request(rig.ua.request(dialog, "OPTIONS"), PHONE, lambda r: answers.append(r.status))
    sent = lambda: len(rig.wire.requests("OPTIONS"))  # noqa: E731
    expected_at = [0.0, T1, 3 * T1, 7 * T1, 7 * T1 + T2, 7 * T1 + 2 * T2]  # timer E doubles, capped at T2
    for count, at in enumerate(expected_at, start=1):
        rig.loop.advance(at - (rig.loop.now - 1000) - 0.01)
        assert sent() == count - 1 or count == 1
        rig.loop.advance(0.02)
        assert sent() == count, (count, at)
    rig.loop.advance(64 * T1)
    assert answers == [408]


def test_an_invite_is_not_resent_after_a_provisional_and_times_out_only_before_one() -> None:
    rig = Rig()
    answers: list[int] = []
    from appliance.sip.dialog import Dialog
    dialog = Dialog("c2", "t", "<sip:a@x>", "<sip:b@y>", PHONE, f"sip:b@{PHONE.host}", local_cseq=1)
    invite = rig.ua.request(dialog, "INVITE", cseq=1)
    txn = rig.layer.send_request(invite, PHONE, lambda r: answers.append(r.status))
    rig.loop.advance(T1 + 0.01)
    assert len(rig.wire.requests("INVITE")) == 2  # timer A
    from sip_rig import response_to
    rig.wire.deliver(response_to(invite, 180, "Ringing"))
    rig.loop.advance(200)  # a phone may ring longer than 64*T1: timer B runs only while calling
    assert len(rig.wire.requests("INVITE")) == 2 and answers == [180] and txn.state == "proceeding"


def test_a_retransmitted_request_gets_the_same_answer_again() -> None:
    seen: list = []

    class Tu:
        def on_request(self, txn):  # type: ignore[no-untyped-def]
            seen.append(txn)
            txn.respond(200)

    rig = Rig(Tu())
    rig.wire.deliver(request("INFO", "z9hG4bKi1", to_tag="x"))
    rig.wire.deliver(request("INFO", "z9hG4bKi1", to_tag="x"))
    assert len(seen) == 1 and [r.status for r in rig.wire.responses()] == [200, 200]


# --- registrar and UA core ---------------------------------------------------------------------

class Invites:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_invite(self, txn):  # type: ignore[no-untyped-def]
        self.seen.append("invite")

    def on_in_dialog(self, txn):  # type: ignore[no-untyped-def]
        self.seen.append("in-dialog " + txn.request.method)

    def on_cancel(self, txn, invite):  # type: ignore[no-untyped-def]
        self.seen.append("cancel")

    def on_ack(self, request, peer):  # type: ignore[no-untyped-def]
        self.seen.append("ack")

    def on_ack_timeout(self, txn):  # type: ignore[no-untyped-def]
        pass

    def on_stray_response(self, response, peer):  # type: ignore[no-untyped-def]
        pass


def core_rig() -> tuple[Rig, LocationService, Invites, BanList]:
    rig = Rig()
    ha1 = hashlib.md5(f"201:{REALM}:s3cret-201".encode()).hexdigest()
    digest = DigestAuthenticator(REALM, lambda user, alg: ha1 if user == "201" else None,
                                 NonceManager(b"n" * 32, clock=rig.loop.time), ("MD5",))
    bans = BanList(3, 3600, 3600, clock=rig.loop.time)
    location = LocationService(clock=rig.loop.time)
    invites = Invites()
    core = SipCore(auth=RequestAuthenticator(digest, bans), registrar=Registrar(location, RegistrarPolicy(60, 3600, 600)),
                   invites=invites)
    rig.layer.tu = core
    return rig, location, invites, bans


def register(rig: Rig, branch: str, expires: int, secret: str = "s3cret-201", cseq: int = 2) -> int:
    rig.wire.deliver(request("REGISTER", branch + "a", extra=[f"Expires: {expires}"], cseq=cseq))
    challenge = rig.wire.responses()[-1]
    assert challenge.status == 401
    value = challenge.header("WWW-Authenticate") or ""
    auth = build_authorization(value, "REGISTER", f"sip:{BOX.host}", "201", secret)
    rig.wire.deliver(request("REGISTER", branch + "b", extra=[f"Expires: {expires}", f"Authorization: {auth}"],
                             cseq=cseq + 1))
    return rig.wire.responses()[-1].status


def test_a_registration_lasts_exactly_its_expiry() -> None:
    rig, location, _, _ = core_rig()
    assert register(rig, "z9hG4bKr1", 120) == 200
    assert [b.source for b in location.lookup("201")] == [PHONE]
    rig.loop.advance(119.9)
    assert location.lookup("201")
    rig.loop.advance(0.2)
    assert location.lookup("201") == []


def test_a_refreshed_binding_outlives_the_first_lifetime_and_a_fetch_lists_only_live_ones() -> None:
    """Moved down from test_e2e_register (it slept 11 s): expiry and refresh, then a REGISTER without Contact."""
    rig, location, _, _ = core_rig()
    assert register(rig, "z9hG4bKf1", 60) == 200
    rig.loop.advance(30)
    assert register(rig, "z9hG4bKf2", 600, cseq=10) == 200  # a refresh: same contact, longer lifetime
    rig.loop.advance(31)  # past the first lifetime
    assert [b.source for b in location.lookup("201")] == [PHONE]
    assert len(fetch(rig, "z9hG4bKf3", 20).header_lines("Contact")) == 1  # RFC 3261 §10.2.3
    rig.loop.advance(600)
    assert fetch(rig, "z9hG4bKf4", 30).header_lines("Contact") == []


def without_contact(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.startswith("Contact:"))


def fetch(rig: Rig, branch: str, cseq: int):  # type: ignore[no-untyped-def]
    """A REGISTER without Contact: the registrar lists the live bindings."""
    rig.wire.deliver(without_contact(request("REGISTER", branch + "a", cseq=cseq)))
    value = rig.wire.responses()[-1].header("WWW-Authenticate") or ""
    auth = build_authorization(value, "REGISTER", f"sip:{BOX.host}", "201", "s3cret-201")
    rig.wire.deliver(without_contact(request("REGISTER", branch + "b", extra=[f"Authorization: {auth}"], cseq=cseq + 1)))
    response = rig.wire.responses()[-1]
    assert response.status == 200
    return response


def test_too_brief_a_registration_gets_423_with_min_expires() -> None:
    rig, location, _, _ = core_rig()
    assert register(rig, "z9hG4bKr2", 30) == 423
    assert rig.wire.responses()[-1].header("Min-Expires") == "60" and location.lookup("201") == []


def test_an_expired_nonce_is_stale_only_for_the_right_password() -> None:
    """Moved down from test_e2e_register (it slept 2.2 s): RFC 7616 §3.3, stale=true never hides a guess."""
    rig, location, _, _ = core_rig()
    rig.wire.deliver(request("REGISTER", "z9hG4bKn1", extra=["Expires: 600"], cseq=1))
    old = rig.wire.responses()[-1].header("WWW-Authenticate") or ""
    rig.loop.advance(301)  # past the nonce's 300 s lifetime
    for cseq, secret in ((2, "wrong-password"), (3, "s3cret-201")):
        auth = build_authorization(old, "REGISTER", f"sip:{BOX.host}", "201", secret)
        rig.wire.deliver(request("REGISTER", f"z9hG4bKn{cseq}", extra=["Expires: 600", f"Authorization: {auth}"],
                                 cseq=cseq))
    guess, late = rig.wire.responses()[-2:]
    assert guess.status == 403 and guess.header("WWW-Authenticate") is None
    assert late.status == 401 and "stale=true" in (late.header("WWW-Authenticate") or "")
    fresh = build_authorization(late.header("WWW-Authenticate") or "", "REGISTER", f"sip:{BOX.host}", "201",
                                "s3cret-201")
    rig.wire.deliver(request("REGISTER", "z9hG4bKn4", extra=["Expires: 600", f"Authorization: {fresh}"], cseq=4))
    assert rig.wire.responses()[-1].status == 200 and location.lookup("201")


def test_a_wrong_password_gets_403_and_the_third_bans_the_source() -> None:
    rig, _, _, bans = core_rig()
    for i in range(3):
        assert register(rig, f"z9hG4bKw{i}", 600, secret="guess", cseq=10 * i) == 403
    assert bans.is_banned(PHONE.host)


def test_the_core_answers_options_unknown_methods_and_requirements_itself() -> None:
    rig, _, invites, _ = core_rig()
    rig.wire.deliver(request("OPTIONS", "z9hG4bKo1"))
    rig.wire.deliver(request("FROB", "z9hG4bKo2"))
    rig.wire.deliver(request("INFO", "z9hG4bKo3", extra=["Require: 100rel"]))
    rig.wire.deliver(request("BYE", "z9hG4bKo4"))
    statuses = [r.status for r in rig.wire.responses()]
    assert statuses == [200, 501, 420, 481]
    assert "INVITE" in (rig.wire.responses()[0].header("Allow") or "") and invites.seen == []


def test_invites_and_requests_inside_dialogs_go_to_the_calls() -> None:
    rig, _, invites, _ = core_rig()
    rig.wire.deliver(request("INVITE", "z9hG4bKv1"))
    rig.wire.deliver(request("BYE", "z9hG4bKv2", to_tag="box"))
    rig.wire.deliver(request("INVITE", "z9hG4bKv3", extra=["Max-Forwards: 0"]))
    assert invites.seen == ["invite", "in-dialog BYE"]
