"""Property tests: whatever arrives, the parser returns a message or raises SipParseError."""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.sip.headers import NameAddr, Via
from appliance.sip.message import (
    Request, Response, SipParseError, frame_stream, make_response, parse_message, validate_request,
    validate_response,
)
from appliance.sip.uri import SipUri, parse_sip_uri

TORTURE = Path(__file__).parent / "sip_torture"
SEEDS = [path.read_bytes() for path in sorted(TORTURE.glob("*.dat"))] + [
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=19\r\n"
    b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.example.com>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@example.com>;tag=a6c85cf\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=19\r\n"
    b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nl: 0\r\n\r\n",
]
# Octets that matter to the grammar, and ones that should never matter but might.
SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b"\x7f", b"\x80", b"\xff", b"\xc3", b"\xe2\x80\xa8", b" ", b"\t", b":",
           b";", b",", b"=", b'"', b"\\", b"<", b">", b"%", b"@", b"?", b"&", b"SIP/2.0", b"\r\n\r\n", b"\xc2\xb2"]
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def survive(data: bytes) -> Request | Response | None:
    """Run everything a transport does with the bytes; only SipParseError may come out."""
    message: Request | Response | None = None
    for stream in (False, True):
        try:
            parsed = parse_message(data, stream=stream)
        except SipParseError:
            continue
        try:
            if isinstance(parsed, Request):
                validate_request(parsed)
                make_response(parsed, 400, to_tag="fuzz").to_bytes()
            else:
                validate_response(parsed)
            if not stream:
                message = parsed
        except SipParseError:
            # an invalid request is still answered, so building the answer must not fail
            if isinstance(parsed, Request):
                make_response(parsed, 400, to_tag="fuzz").to_bytes()
        parsed.to_bytes()
    buffer = bytearray(data)
    try:
        while (frame := frame_stream(buffer)) is not None:
            try:
                parse_message(frame, stream=True)
            except SipParseError:
                pass
    except SipParseError:
        pass
    return message


def assert_stable(message: Request | Response) -> None:
    """Serialising an accepted message and parsing it back changes nothing more."""
    once = message.to_bytes()
    again = parse_message(once)
    assert again.to_bytes() == once
    assert again.body == message.body
    assert again.start_line() == message.start_line()
    if isinstance(again, Request):
        validate_request(again)
    else:
        validate_response(again)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed message with a few byte flips, truncations, duplicated lines and inserted octets."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "insert", "delete", "swap"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(SPECIAL) | st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            lines = bytes(data).split(b"\r\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@FAST
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    survive(data)


@FAST
@given(st.lists(st.sampled_from(SPECIAL) | st.binary(max_size=8), max_size=40).map(b"".join))
def test_random_grammar_octets(data: bytes) -> None:
    message = survive(b"OPTIONS sip:a@b SIP/2.0\r\n" + data)
    if message is not None:
        assert_stable(message)


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    message = survive(data)
    if message is not None:
        assert_stable(message)


def test_seeds_are_stable() -> None:
    accepted = [m for m in map(survive, SEEDS) if m is not None]
    assert len(accepted) >= 24
    for message in accepted:
        assert_stable(message)


@FAST
@given(st.data())
def test_stream_split_anywhere(data: st.DataObject) -> None:
    seeds = data.draw(st.lists(st.sampled_from(SEEDS[-2:]), min_size=1, max_size=3))
    stream = b"".join(seeds)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    buffer, frames, start = bytearray(), [], 0
    for cut in [*cuts, len(stream)]:
        buffer += stream[start:cut]
        start = cut
        while (frame := frame_stream(buffer)) is not None:
            frames.append(frame)
    assert frames == seeds and not buffer


TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
token = st.text(TOKEN_CHARS, min_size=1, max_size=12)
alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
label = st.tuples(alnum, st.sampled_from(["", "-", "--"]), alnum).map(lambda t: t[0] + t[1] + t[2] if t[1] else t[0])
host = st.lists(label, min_size=1, max_size=3).map(".".join) | st.tuples(*[st.integers(0, 255)] * 4).map(
    lambda quad: ".".join(map(str, quad)))
user = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/", min_size=1, max_size=12)
param = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$", min_size=1, max_size=10)
display = st.none() | st.text(st.sampled_from('ab Z09"\\<>,;:@\t\x00\x07\x7féЖ大'), max_size=16)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    """A valid SIP URI."""
    params = draw(st.dictionaries(param.map(str.lower), st.none() | param, max_size=3))
    return SipUri(draw(st.sampled_from(["sip", "sips"])), draw(host), draw(st.none() | user),
                  None, draw(st.none() | st.integers(1, 65535)), params)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A valid request, built from parts."""
    method = draw(token)
    body = draw(st.binary(max_size=40))
    request = Request(method, str(draw(sip_uris())), body=body)
    for _ in range(draw(st.integers(1, 2))):
        branch = "z9hG4bK" + draw(token)
        request.add_header("Via", str(Via(draw(st.sampled_from(["UDP", "TCP", "TLS"])), draw(host),
                                          draw(st.none() | st.integers(1, 65535)), {"branch": branch})))
    request.add_header("From", str(NameAddr(draw(sip_uris()), draw(display) or None, {"tag": draw(token)})))
    request.add_header("To", str(NameAddr(draw(sip_uris()), draw(display) or None)))
    request.add_header("Call-ID", draw(token) + "@" + draw(host))
    request.add_header("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    request.add_header("Max-Forwards", str(draw(st.integers(0, 255))))
    return request


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_built_requests_round_trip(request: Request) -> None:
    data = request.to_bytes()
    again = parse_message(data)
    assert isinstance(again, Request)
    validate_request(again)
    assert again.to_bytes() == data and again.body == request.body
    assert again.method == request.method and again.cseq == request.cseq
    assert again.from_.display == request.from_.display and again.from_.tag == request.from_.tag
    assert again.from_.uri == request.from_.uri and again.to.uri == request.to.uri
    assert [str(v) for v in again.vias] == [str(v) for v in request.vias]
    assert parse_sip_uri(again.uri) == request.ruri
