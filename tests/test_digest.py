"""Tests for appliance.sip.digest: RFC 7616 vectors, nonces, server and client round trips."""
from __future__ import annotations

import hashlib

import pytest

import appliance.sip.digest as digest
from appliance.sip.digest import (
    AuthResult,
    DigestAuthenticator,
    NonceManager,
    build_authorization,
    ha1,
    parse_credentials,
    pick_challenge,
)

# RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of" per erratum 4495).
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


class Clock:
    """Settable clock for nonce ageing."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class AcceptAnyNonce:
    """Nonce source that trusts every nonce, to replay the RFC example's foreign nonce."""

    def issue(self) -> str:
        return RFC_NONCE

    def check(self, nonce: str) -> str:
        return "ok"

    def forgotten(self, nonce: str) -> bool:
        return False

    def check_nc(self, nonce: str, nc: int) -> bool:
        return True


def rfc_challenge(algorithm: str) -> str:
    return (f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
            f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"')


def rfc_lookup(username: str, algorithm: str) -> str | None:
    return ha1("Mufasa", RFC_REALM, "Circle of Life", algorithm) if username == "Mufasa" else None


USERS = {"201": "s3cret-201", "202": "other pass"}


def make_auth(clock: Clock | None = None, **kwargs) -> DigestAuthenticator:
    nonces = NonceManager(secret=b"k" * 32, lifetime=300.0, clock=clock or Clock(), **kwargs)

    def lookup(username: str, algorithm: str) -> str | None:
        password = USERS.get(username)
        return None if password is None else ha1(username, "pbx.local", password, algorithm)

    return DigestAuthenticator("pbx.local", lookup, nonces)


def login(auth: DigestAuthenticator, username: str, password: str, *, algorithm: str = "SHA-256",
          nc: int = 1, stale: bool = False, method: str = "REGISTER",
          uri: str = "sip:pbx.local") -> tuple[str, str]:
    challenge = next(c for c in auth.challenges(stale) if f"algorithm={algorithm}," in c)
    return challenge, build_authorization(challenge, method, uri, username, password, nc=nc)


# ---- hashing and the RFC 7616 example ---------------------------------------------------


def test_ha1_matches_definition_for_both_algorithms():
    assert ha1("Mufasa", RFC_REALM, "Circle of Life", "MD5") == hashlib.md5(
        b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    assert ha1("Mufasa", RFC_REALM, "Circle of Life", "SHA-256") == hashlib.sha256(
        b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()


@pytest.mark.parametrize("algorithm", ["SHA-512", "MD5-sess", ""])
def test_ha1_rejects_other_algorithms(algorithm):
    with pytest.raises(ValueError):
        ha1("a", "b", "c", algorithm)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_client_reproduces_rfc7616_example(algorithm):
    value = build_authorization(rfc_challenge(algorithm), "GET", "/dir/index.html", "Mufasa",
                                "Circle of Life", nc=1, cnonce=RFC_CNONCE)
    scheme, params = parse_credentials(value)
    assert scheme == "Digest"
    assert params["response"] == RFC_RESPONSES[algorithm]
    assert params["opaque"] == RFC_OPAQUE
    assert (params["qop"], params["nc"], params["cnonce"]) == ("auth", "00000001", RFC_CNONCE)
    assert params["algorithm"] == algorithm


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_server_accepts_rfc7616_example(algorithm):
    auth = DigestAuthenticator(RFC_REALM, rfc_lookup, AcceptAnyNonce())  # type: ignore[arg-type]
    value = (f'Digest username="Mufasa", realm="{RFC_REALM}", uri="/dir/index.html", '
             f'algorithm={algorithm}, nonce="{RFC_NONCE}", nc=00000001, cnonce="{RFC_CNONCE}", '
             f'qop=auth, response="{RFC_RESPONSES[algorithm]}", opaque="{RFC_OPAQUE}"')
    assert auth.verify("GET", value, "/dir/index.html") == AuthResult(True, "Mufasa")
    assert auth.verify("POST", value, "/dir/index.html").ok is False


# ---- parse_credentials -------------------------------------------------------------------


def test_parse_credentials_handles_spacing_quotes_and_escapes():
    scheme, params = parse_credentials(
        '  Digest   USERNAME = "201" ,realm="a, b \\"c\\"",nonce="n=1",, uri="sip:x@y;transport=udp",'
        ' algorithm=SHA-256,qop=auth ,nc=0000000a, cnonce="" ')
    assert scheme == "Digest"
    assert params == {"username": "201", "realm": 'a, b "c"', "nonce": "n=1",
                      "uri": "sip:x@y;transport=udp", "algorithm": "SHA-256", "qop": "auth",
                      "nc": "0000000a", "cnonce": ""}


def test_parse_credentials_scheme_only():
    assert parse_credentials("Digest") == ("Digest", {})


@pytest.mark.parametrize("garbage", [
    "", "   ", '"Digest"', "Digest,realm=x", 'Digest realm="unterminated',
    "Digest realm", "Digest realm=", "Digest realm=a=b", 'Digest realm="a" nonce="b"',
    'Digest realm="a", realm="b"', "Basic dXNlcjpwYXNzMQ==", 'Digest realm="a", Digest realm="b"',
])
def test_parse_credentials_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        parse_credentials(garbage)


# ---- NonceManager ------------------------------------------------------------------------


def test_nonce_fresh_stale_and_forged():
    clock = Clock()
    nonces = NonceManager(secret=b"s" * 32, lifetime=300.0, clock=clock)
    nonce = nonces.issue()
    assert nonces.check(nonce) == "ok"
    clock.now += 299
    assert nonces.check(nonce) == "ok"
    clock.now += 2
    assert nonces.check(nonce) == "stale"
    assert NonceManager(secret=b"t" * 32, clock=clock).check(nonce) == "invalid"
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    assert nonces.check(flipped) == "invalid"
    for junk in ("", "abc", nonce + "A", nonce[:-1], "!" * len(nonce)):
        assert nonces.check(junk) == "invalid"


def test_nonces_are_unique_and_header_safe():
    nonces = NonceManager()
    issued = {nonces.issue() for _ in range(200)}
    assert len(issued) == 200
    assert all(n.replace("-", "").replace("_", "").isalnum() for n in issued)


def test_nonce_with_noncanonical_last_character_is_invalid():
    nonces = NonceManager(secret=b"s" * 32)
    nonce = nonces.issue()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 56 bytes leave 2 spare bits in the last character; any other value is an alias.
    index = alphabet.index(nonce[-1])
    alias = nonce[:-1] + alphabet[index ^ 1]
    assert nonces.check(alias) == "invalid"


def test_check_nc_requires_strict_increase_per_nonce():
    nonces = NonceManager(secret=b"s" * 32)
    a, b = nonces.issue(), nonces.issue()
    assert nonces.check_nc(a, 1)
    assert not nonces.check_nc(a, 1)
    assert nonces.check_nc(a, 3)
    assert not nonces.check_nc(a, 2)
    assert nonces.check_nc(b, 1)
    assert not nonces.check_nc(a, 0) and not nonces.check_nc(nonces.issue(), 0)
    assert not nonces.check_nc("forged", 5)


def test_check_nc_memory_is_bounded_and_evicted_nonces_are_forgotten():
    clock = Clock()
    nonces = NonceManager(secret=b"s" * 32, clock=clock, max_tracked=3)
    issued = []
    for _ in range(5):
        issued.append(nonces.issue())
        clock.now += 1
    for nonce in issued:
        assert nonces.check_nc(nonce, 1)
    assert len(nonces._seen) == 3
    assert nonces.forgotten(issued[0]) and nonces.forgotten(issued[1])
    assert not nonces.check_nc(issued[0], 2)  # cannot prove it is not a replay
    assert not nonces.forgotten(issued[4])
    assert nonces.check_nc(issued[4], 2)
    newer = nonces.issue()
    assert not nonces.forgotten(newer) and nonces.check_nc(newer, 1)


def test_nonces_from_before_a_restart_cannot_replay_their_nc():
    clock = Clock()
    before = NonceManager(secret=b"s" * 32, clock=clock)
    nonce = before.issue()
    assert before.check_nc(nonce, 1)
    clock.now += 5
    after = NonceManager(secret=b"s" * 32, clock=clock)  # same persisted secret, empty nc table
    assert after.check(nonce) == "ok"
    assert after.forgotten(nonce)
    assert not after.check_nc(nonce, 1)
    fresh = after.issue()
    assert not after.forgotten(fresh) and after.check_nc(fresh, 1)


def test_wall_clock_stepping_back_does_not_lock_everyone_out():
    clock = Clock()
    nonces = NonceManager(secret=b"s" * 32, clock=clock)
    clock.now -= 3600
    nonce = nonces.issue()
    assert nonces.check(nonce) == "ok"
    assert not nonces.forgotten(nonce) and nonces.check_nc(nonce, 1)


# ---- DigestAuthenticator -----------------------------------------------------------------


def test_challenges_offer_sha256_first_then_md5():
    auth = make_auth()
    values = auth.challenges()
    assert len(values) == 2
    params = [parse_credentials(v)[1] for v in values]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    for p in params:
        assert p["realm"] == "pbx.local" and p["qop"] == "auth" and p["opaque"]
        assert auth.nonces.check(p["nonce"]) == "ok"
        assert "stale" not in p
    assert parse_credentials(auth.challenges(stale=True)[0])[1]["stale"] == "true"


def test_challenges_follow_configured_order_without_duplicates():
    # Old phones read only the first challenge, so the box may be configured MD5-first.
    auth = DigestAuthenticator("r", lambda u, a: None, algorithms=("md5", "SHA-256", "MD5"))
    assert [parse_credentials(v)[1]["algorithm"] for v in auth.challenges()] == ["MD5", "SHA-256"]


def test_authenticator_rejects_unknown_algorithm_names():
    with pytest.raises(ValueError):
        DigestAuthenticator("r", lambda u, a: None, algorithms=("SHA-512",))
    with pytest.raises(ValueError):
        DigestAuthenticator("r", lambda u, a: None, algorithms=())


def test_challenge_quotes_realm():
    auth = DigestAuthenticator('odd "realm"', lambda u, a: None)
    assert parse_credentials(auth.challenges()[0])[1]["realm"] == 'odd "realm"'


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_client_to_server(algorithm):
    auth = make_auth()
    _, value = login(auth, "201", USERS["201"], algorithm=algorithm)
    assert auth.verify("REGISTER", value, "sip:pbx.local") == AuthResult(True, "201")


def test_round_trip_with_successive_nc_on_same_nonce():
    auth = make_auth()
    challenge = auth.challenges()[0]
    for nc in (1, 2, 5):
        value = build_authorization(challenge, "INVITE", "sip:300@pbx.local", "201", USERS["201"], nc=nc)
        assert auth.verify("INVITE", value, "sip:300@pbx.local").ok


def test_replayed_nc_is_refused_as_stale():
    auth = make_auth()
    _, value = login(auth, "201", USERS["201"], nc=1)
    assert auth.verify("REGISTER", value).ok
    again = auth.verify("REGISTER", value)
    assert again == AuthResult(False, "201", stale=True)


def test_stale_nonce_with_right_password_is_reported_stale():
    clock = Clock()
    auth = make_auth(clock)
    _, value = login(auth, "201", USERS["201"])
    clock.now += 301
    assert auth.verify("REGISTER", value) == AuthResult(False, "201", stale=True)


def test_stale_nonce_with_wrong_password_is_plain_failure():
    clock = Clock()
    auth = make_auth(clock)
    _, value = login(auth, "201", "guess")
    clock.now += 301
    assert auth.verify("REGISTER", value) == AuthResult(False, "201", stale=False)


def test_evicted_nonce_is_treated_as_stale():
    clock = Clock()
    auth = make_auth(clock, max_tracked=1)
    challenge_a = auth.challenges()[0]
    clock.now += 1
    challenge_b = auth.challenges()[0]
    first = build_authorization(challenge_a, "REGISTER", "sip:pbx.local", "201", USERS["201"], nc=1)
    assert auth.verify("REGISTER", first).ok
    other = build_authorization(challenge_b, "REGISTER", "sip:pbx.local", "202", USERS["202"], nc=1)
    assert auth.verify("REGISTER", other).ok  # pushes challenge_a's nonce out
    later = build_authorization(challenge_a, "REGISTER", "sip:pbx.local", "201", USERS["201"], nc=2)
    assert auth.verify("REGISTER", later) == AuthResult(False, "201", stale=True)


def test_wrong_password_and_unknown_user_look_identical():
    auth = make_auth()
    _, wrong = login(auth, "201", "not-it")
    _, unknown = login(auth, "999", "not-it")
    wrong_result = auth.verify("REGISTER", wrong)
    unknown_result = auth.verify("REGISTER", unknown)
    assert wrong_result == AuthResult(False, "201")
    assert unknown_result == AuthResult(False, "999")
    assert (type(wrong_result), wrong_result.ok, wrong_result.stale) == (
        type(unknown_result), unknown_result.ok, unknown_result.stale)


def test_unknown_user_still_costs_a_lookup_and_a_hash(monkeypatch):
    calls = []

    def lookup(username, algorithm):
        calls.append((username, algorithm))
        return None

    auth = DigestAuthenticator("pbx.local", lookup)
    challenge = auth.challenges()[0]
    value = build_authorization(challenge, "REGISTER", "sip:pbx.local", "nobody", "x")
    hashed = []
    real = digest._expected_response
    monkeypatch.setattr(digest, "_expected_response", lambda *a: hashed.append(a) or real(*a))
    assert auth.verify("REGISTER", value) == AuthResult(False, "nobody")
    assert calls == [("nobody", "SHA-256")]
    assert len(hashed) == 1


def test_wrong_realm_is_refused():
    auth = make_auth()
    other = DigestAuthenticator("elsewhere", lambda u, a: ha1(u, "elsewhere", USERS["201"], a))
    value = build_authorization(other.challenges()[0], "REGISTER", "sip:pbx.local", "201", USERS["201"])
    assert auth.verify("REGISTER", value) == AuthResult(False, "201")


def test_nonce_from_another_box_is_refused():
    auth = make_auth()
    foreign = NonceManager(secret=b"x" * 32)
    forged = DigestAuthenticator("pbx.local", lambda u, a: None, foreign).challenges()[0]
    value = build_authorization(forged, "REGISTER", "sip:pbx.local", "201", USERS["201"])
    assert auth.verify("REGISTER", value) == AuthResult(False, "201")


def test_request_uri_mismatch_and_method_mismatch_fail():
    auth = make_auth()
    _, value = login(auth, "201", USERS["201"], method="INVITE", uri="sip:300@pbx.local")
    assert not auth.verify("INVITE", value, "sip:301@pbx.local").ok
    assert not auth.verify("BYE", value, "sip:300@pbx.local").ok
    assert auth.verify("INVITE", value, "sip:300@pbx.local").ok


def test_unsupported_algorithm_and_qop_are_refused():
    auth = make_auth()
    _, value = login(auth, "201", USERS["201"])
    for old, new in (("algorithm=SHA-256", "algorithm=SHA-512-256"), ("qop=auth", "qop=auth-int"),
                     ("nc=00000001", "nc=1"), ("Digest", "Basic")):
        assert old in value
        assert auth.verify("REGISTER", value.replace(old, new)).ok is False


def test_md5_only_authenticator_refuses_sha256():
    nonces = NonceManager()
    sha = DigestAuthenticator("pbx.local", lambda u, a: ha1(u, "pbx.local", "pw", a), nonces)
    md5_only = DigestAuthenticator("pbx.local", lambda u, a: ha1(u, "pbx.local", "pw", a), nonces,
                                   algorithms=("MD5",))
    value = build_authorization(sha.challenges()[0], "REGISTER", "sip:pbx.local", "201", "pw")
    assert sha.verify("REGISTER", value).ok
    value = build_authorization(sha.challenges()[0], "REGISTER", "sip:pbx.local", "201", "pw")
    assert not md5_only.verify("REGISTER", value).ok


def test_legacy_rfc2069_response_without_qop_is_accepted():
    auth = make_auth()
    challenge = auth.challenges()[1].replace(', qop="auth"', "")
    value = build_authorization(challenge, "REGISTER", "sip:pbx.local", "201", USERS["201"])
    params = parse_credentials(value)[1]
    assert "qop" not in params and "nc" not in params
    assert auth.verify("REGISTER", value) == AuthResult(True, "201")
    bad = build_authorization(challenge, "REGISTER", "sip:pbx.local", "201", "wrong")
    assert not auth.verify("REGISTER", bad).ok


def test_response_hex_case_is_ignored():
    auth = make_auth()
    _, value = login(auth, "201", USERS["201"])
    response = parse_credentials(value)[1]["response"]
    assert auth.verify("REGISTER", value.replace(response, response.upper())).ok


@pytest.mark.parametrize("bad", [
    "", "garbage", "Digest", 'Digest username="201"', 'Digest realm="pbx.local", nonce="x"',
    'Digest username="201", realm="pbx.local", nonce="zz", uri="sip:pbx.local", response="ab"',
    'Digest username="201", realm="pbx.local", nonce="zz", uri="sip:x", response="not hex é"',
    "Digest username=\"\u00e9\", realm=\"pbx.local\"", None, 42,
])
def test_verify_never_raises_on_bad_input(bad):
    result = make_auth().verify("REGISTER", bad)  # type: ignore[arg-type]
    assert isinstance(result, AuthResult) and result.ok is False and result.stale is False


def test_sess_algorithm_round_trip_when_enabled():
    lookup = lambda u, a: ha1(u, "pbx.local", "pw", a)  # noqa: E731
    auth = DigestAuthenticator("pbx.local", lookup, algorithms=("SHA-256-sess",))
    challenge = auth.challenges()[0]
    assert "algorithm=SHA-256-sess" in challenge
    value = build_authorization(challenge, "REGISTER", "sip:pbx.local", "201", "pw")
    assert auth.verify("REGISTER", value).ok
    wrong = build_authorization(challenge, "REGISTER", "sip:pbx.local", "201", "nope")
    assert not auth.verify("REGISTER", wrong).ok


# ---- client side -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_client_sess_variants_follow_rfc_definition(algorithm):
    base = algorithm.removesuffix("-sess")
    h = hashlib.md5 if base == "MD5" else hashlib.sha256
    value = build_authorization(rfc_challenge(algorithm), "GET", "/dir/index.html", "Mufasa",
                                "Circle of Life", nc=7, cnonce="abc")
    params = parse_credentials(value)[1]
    key = h(f"{ha1('Mufasa', RFC_REALM, 'Circle of Life', base)}:{RFC_NONCE}:abc".encode()).hexdigest()
    ha2 = h(b"GET:/dir/index.html").hexdigest()
    expected = h(f"{key}:{RFC_NONCE}:00000007:abc:auth:{ha2}".encode()).hexdigest()
    assert params["response"] == expected and params["nc"] == "00000007"


def test_client_without_qop_or_algorithm_uses_rfc2069_md5():
    value = build_authorization('Digest realm="r", nonce="n"', "REGISTER", "sip:r", "u", "p")
    params = parse_credentials(value)[1]
    ha1_md5 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    assert params["response"] == hashlib.md5(f"{ha1_md5}:n:{ha2}".encode()).hexdigest()
    assert not {"qop", "nc", "cnonce", "algorithm", "opaque"} & params.keys()


def test_client_generates_distinct_cnonces():
    values = {parse_credentials(build_authorization(rfc_challenge("MD5"), "GET", "/", "u", "p"))[1]["cnonce"]
              for _ in range(20)}
    assert len(values) == 20


@pytest.mark.parametrize("challenge", [
    'Digest realm="r", nonce="n", algorithm=SHA-512-256',
    'Digest realm="r", nonce="n", qop="auth-int"',
    'Basic realm="r"',
    'Digest nonce="n"',
    'Digest realm="r"',
    "not a challenge at all,,",
])
def test_client_refuses_what_it_cannot_answer(challenge):
    with pytest.raises(ValueError):
        build_authorization(challenge, "REGISTER", "sip:r", "u", "p")


def test_client_escapes_username_quotes():
    value = build_authorization('Digest realm="r", nonce="n"', "REGISTER", "sip:r", 'a"b', "p")
    assert parse_credentials(value)[1]["username"] == 'a"b'


def test_pick_challenge_prefers_sha256_and_skips_unusable():
    md5 = 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"'
    auth_int = 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth-int"'
    assert pick_challenge([md5, sha]) == sha
    assert pick_challenge([auth_int, md5, "junk junk"]) == md5
    assert pick_challenge(['Basic realm="r"']) is None


def test_unknown_user_fails_even_if_response_matches_the_dummy():
    auth = make_auth()
    auth._dummy = {b: ha1("999", "pbx.local", "pw", b) for b in ("MD5", "SHA-256")}
    _, value = login(auth, "999", "pw")
    assert auth.verify("REGISTER", value) == AuthResult(False, "999")
