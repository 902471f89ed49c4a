"""RFC 4475 torture messages: each one gets the outcome the RFC asks of the parser."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.sip.headers import parse_name_addr, parse_uint, unquote
from appliance.sip.message import (
    Request, Response, SipParseError, frame_stream, make_response, parse_message,
    validate_request, validate_response,
)
from appliance.sip.uri import AbsoluteUri, SipUri, parse_sip_uri, unescape

TORTURE = Path(__file__).parent / "sip_torture"

# RFC 4475 section and the outcome asserted for each message:
#   "valid"      parses, and validate_request/validate_response pass;
#   "core"       parses and validates: the answer the RFC names is the UA core's to give;
#   "parse:NNN"  parse_message raises SipParseError with that status;
#   "check:NNN"  parses, validate_request raises SipParseError with that status;
#   "dropped"    a response that parse_message or validate_response rejects.
EXPECTED = {
    # 3.1.1 Valid messages
    "wsinv": ("3.1.1.1", "valid"),
    "intmeth": ("3.1.1.2", "valid"),
    "esc01": ("3.1.1.3", "valid"),
    "escnull": ("3.1.1.4", "valid"),
    "esc02": ("3.1.1.5", "valid"),
    "lwsdisp": ("3.1.1.6", "valid"),
    "longreq": ("3.1.1.7", "valid"),
    "dblreq": ("3.1.1.8", "valid"),
    "semiuri": ("3.1.1.9", "valid"),
    "transports": ("3.1.1.10", "valid"),
    "mpart01": ("3.1.1.11", "valid"),
    "unreason": ("3.1.1.12", "valid"),
    "noreason": ("3.1.1.13", "valid"),
    # 3.1.2 Invalid messages
    "badinv01": ("3.1.2.1", "check:400"),
    "clerr": ("3.1.2.2", "parse:400"),
    "ncl": ("3.1.2.3", "parse:400"),
    "scalar02": ("3.1.2.4", "check:400"),
    "scalarlg": ("3.1.2.5", "dropped"),
    "quotbal": ("3.1.2.6", "check:400"),  # strict: the RFC lets an element infer the closing quote
    "ltgtruri": ("3.1.2.7", "parse:400"),
    "lwsruri": ("3.1.2.8", "parse:400"),
    "lwsstart": ("3.1.2.9", "parse:400"),  # strict: the RFC lets an element ignore the extra SP
    "trws": ("3.1.2.10", "parse:400"),  # strict: likewise for the trailing SP
    "escruri": ("3.1.2.11", "check:400"),  # strict: the RFC lets an element ignore the headers
    "baddate": ("3.1.2.12", "valid"),  # lenient: the RFC lets an element ignore the Date, and we do
    "regbadct": ("3.1.2.13", "check:400"),  # strict: the RFC lets an element infer the <>
    "badaspec": ("3.1.2.14", "check:400"),
    "baddn": ("3.1.2.15", "parse:400"),  # strict: the RFC lets an element infer the quotes
    "badvers": ("3.1.2.16", "parse:505"),
    "mismatch01": ("3.1.2.17", "check:400"),
    "mismatch02": ("3.1.2.18", "check:400"),  # 501 once the core passes its methods, see below
    "bigcode": ("3.1.2.19", "dropped"),
    # 3.2 Transaction layer semantics
    "badbranch": ("3.2.1", "check:400"),  # strict: the RFC allows RFC 2543 matching instead
    # 3.3 Application-layer semantics
    "insuf": ("3.3.1", "check:400"),
    "unkscm": ("3.3.2", "check:416"),
    "novelsc": ("3.3.3", "check:416"),  # the box routes no soap.beep: URI, so 416 rather than 404
    "unksm2": ("3.3.4", "core"),
    "bext01": ("3.3.5", "core"),
    "invut": ("3.3.6", "core"),
    "regaut01": ("3.3.7", "core"),
    "multi01": ("3.3.8", "check:400"),
    "mcl01": ("3.3.9", "parse:400"),
    "bcast": ("3.3.10", "core"),
    "zeromf": ("3.3.11", "core"),
    "cparam01": ("3.3.12", "core"),
    "cparam02": ("3.3.13", "core"),
    "regescrt": ("3.3.14", "core"),
    "sdp01": ("3.3.15", "core"),
    # 3.4 Backward compatibility
    "inv2543": ("3.4.1", "core"),
}
NAMES = sorted(path.stem for path in TORTURE.glob("*.dat"))
# Methods a UAS of the box implements, for the 501 of RFC 4475 §3.1.2.18.
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK"})


def load(name: str) -> bytes:
    """The message's bytes, as stored."""
    return (TORTURE / f"{name}.dat").read_bytes()


def request(name: str) -> Request:
    """Parse a torture message that must be an acceptable request."""
    message = parse_message(load(name))
    assert isinstance(message, Request)
    validate_request(message)
    return message


def response(name: str) -> Response:
    """Parse a torture message that must be an acceptable response."""
    message = parse_message(load(name))
    assert isinstance(message, Response)
    validate_response(message)
    return message


def validate(message: Request | Response) -> None:
    """Validate a request or a response."""
    if isinstance(message, Request):
        validate_request(message)
    else:
        validate_response(message)


def test_every_message_of_the_rfc_is_here() -> None:
    assert NAMES == sorted(EXPECTED)
    assert len(NAMES) == 49
    for name in NAMES:  # CRLF line ends: no bare LF before the body (mpart01's binary body has one)
        head = load(name).split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b""), name


@pytest.mark.parametrize("name", NAMES)
def test_outcome(name: str) -> None:
    section, outcome = EXPECTED[name]
    data = load(name)
    if outcome.startswith("parse:"):
        with pytest.raises(SipParseError) as caught:
            parse_message(data)
        assert caught.value.status == int(outcome[6:]), caught.value.reason
        return
    if outcome == "dropped":
        with pytest.raises(SipParseError):
            message = parse_message(data)
            assert isinstance(message, Response)
            validate_response(message)
        return
    message = parse_message(data)
    if outcome.startswith("check:"):
        assert isinstance(message, Request)
        with pytest.raises(SipParseError) as caught:
            validate_request(message)
        assert caught.value.status == int(outcome[6:]), caught.value.reason
        return
    validate(message)


@pytest.mark.parametrize("name", NAMES)
def test_parser_only_raises_sip_parse_error(name: str) -> None:
    data = load(name)
    for stream in (False, True):
        try:
            validate(parse_message(data, stream=stream))
        except SipParseError:
            pass
    buffer = bytearray(data)
    try:
        while frame_stream(buffer) is not None:
            pass
    except SipParseError:
        pass


@pytest.mark.parametrize("name", NAMES)
def test_core_can_answer_every_request_it_parses(name: str) -> None:
    # transaction.py answers validation failures with make_response: it must cope with broken headers
    try:
        message = parse_message(load(name))
    except SipParseError:
        return
    if isinstance(message, Request):
        reply = make_response(message, 400, to_tag="t1")
        assert reply.header_lines("Via") == message.header_lines("Via")
        parse_message(reply.to_bytes())


@pytest.mark.parametrize("name", NAMES)
def test_accepted_messages_survive_a_round_trip(name: str) -> None:
    try:
        message = parse_message(load(name))
        validate(message)
    except SipParseError:
        return
    once = message.to_bytes()
    again = parse_message(once)
    validate(again)
    assert again.to_bytes() == once
    assert again.body == message.body


# --- 3.1.1 valid messages: the fields come out as the RFC reads them ------------

def test_wsinv_short_tortuous_invite() -> None:
    msg = request("wsinv")
    assert msg.method == "INVITE"
    assert isinstance(msg.ruri, SipUri) and msg.ruri.has_param("unknownparam")
    assert msg.to.uri == parse_sip_uri("sip:vivekg@chair-dnrc.example.com")
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert parse_uint(msg.header("Max-Forwards") or "", "Max-Forwards", 255) == 68
    assert msg.cseq == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.0.2.111", "z9hG4bK30239"),
    ]
    assert msg.header("Subject") == ""
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = parse_name_addr(msg.header("Route") or "")
    assert isinstance(route.uri, SipUri)
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.content_type == "application/sdp"
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method
    assert msg.cseq == (139122385, method)
    ruri = msg.ruri
    assert isinstance(ruri, SipUri)
    assert ruri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert ruri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert ruri.host == "example.com"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert isinstance(msg.to.uri, SipUri) and msg.to.uri.user == ruri.user
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert unquote(msg.from_.params["fromparam''~+*_!.-%"] or "") == "работающий"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert msg.header("Max-Forwards") == "255"


def test_esc01_valid_use_of_escaping() -> None:
    msg = request("esc01")
    ruri = msg.ruri
    assert isinstance(ruri, SipUri)
    # the escaped sips: is part of the user, not a URI inside the URI
    assert ruri.scheme == "sip" and ruri.host == "example.net"
    assert ruri.user_unescaped == "sips:user@example.com"
    assert msg.to.uri == parse_sip_uri("sip:user@example.com")
    assert isinstance(msg.from_.uri, SipUri) and msg.from_.uri.user_unescaped == "I have spaces"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert msg.content_type == "application/sdp"
    (contact,) = msg.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.has_param("lr")
    assert unescape(contact.uri.param("name") or "") == "value%41"
    assert contact.uri == parse_sip_uri("sip:caller@host5.example.net;lr;name=value%2541")
    assert contact.uri != parse_sip_uri("sip:caller@host5.example.net;lr;name=valueA")


def test_escnull_escaped_nulls() -> None:
    msg = request("escnull")
    assert isinstance(msg.to.uri, SipUri) and msg.to.uri.user_unescaped == "null-\x00-null"
    assert msg.to.uri == msg.from_.uri
    first, second = msg.contacts
    assert isinstance(first.uri, SipUri) and isinstance(second.uri, SipUri)
    assert (first.uri.user_unescaped, second.uri.user_unescaped) == ("\x00", "\x00\x00")
    assert first.uri != second.uri
    # written back, %00 stays escaped: a raw NUL would end the header for a C parser downstream
    assert b"\x00" not in msg.to_bytes()
    assert msg.body == b""


def test_esc02_percent_that_is_not_an_escape() -> None:
    msg = request("esc02")
    assert msg.method == "RE%47IST%45R" and msg.method != "REGISTER"
    assert msg.cseq == (29344, "RE%47IST%45R")
    assert msg.to.display == "%Z%45"
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an extension header, not a third Contact
    assert [str(c.uri) for c in msg.contacts] == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert msg.header("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_lws_between_display_name_and_bracket() -> None:
    msg = request("lwsdisp")
    assert msg.from_.display == "caller"
    assert msg.from_.uri == parse_sip_uri("sip:caller@example.com")
    assert msg.from_.tag == "323"


def test_longreq_long_values() -> None:
    msg = request("longreq")
    assert msg.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.port == 6000
    assert to_uri.param("unknownparam1") == "very" + "long" * 20 + "value"
    assert to_uri.param("longparam" + "name" * 26) == "shortvalue"
    assert to_uri.has_param("very" + "long" * 25 + "ParameterNameWithNoValue")
    assert msg.from_.tag == "12" + "982" * 50 + "424"
    assert msg.from_.params["unknownheaderparam" + "name" * 20] == "unknowheaderparam" + "value" * 15
    assert msg.call_id == "longreq.one" + "really" * 20 + "longcallid"
    vias = msg.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[-1].params == {"received": "192.0.2.5", "branch": "very" + "long" * 50 + "branchvalue"}
    value = msg.header("Unknown-" + "Long" * 20 + "-Name") or ""
    assert value.startswith("unknown-" + "long" * 20 + "-value; ")
    (contact,) = msg.contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.user == "amazinglylongcallername" * 5
    assert len(msg.body) == 150


def test_dblreq_extra_octets_in_a_datagram_are_ignored() -> None:
    msg = request("dblreq")
    assert msg.method == "REGISTER" and msg.body == b""
    assert b"INVITE" not in msg.to_bytes()


def test_dblreq_on_a_stream_frames_both_messages() -> None:
    buffer = bytearray(load("dblreq"))
    first, second, rest = frame_stream(buffer), frame_stream(buffer), frame_stream(buffer)
    assert first is not None and second is not None and rest is not None and not buffer
    assert parse_message(first, stream=True).start_line() == "REGISTER sip:example.com SIP/2.0"
    invite = parse_message(second, stream=True)
    assert isinstance(invite, Request) and invite.method == "INVITE" and len(invite.body) == 150
    # the glued INVITE's Content-Length is 3 octets short of its SDP: the tail is junk
    assert rest == b"C\r\n\r\n"
    with pytest.raises(SipParseError):
        parse_message(rest, stream=True)


def test_semiuri_semicolons_in_the_user_part() -> None:
    msg = request("semiuri")
    ruri = msg.ruri
    assert isinstance(ruri, SipUri)
    assert ruri.user == "user;par=u%40example.net"
    assert ruri.user_unescaped == "user;par=u@example.net"
    assert ruri.host == "example.com" and ruri.params == {}
    assert msg.header_values("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag",
    ]


def test_transports_varied_and_unknown() -> None:
    msg = request("transports")
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_binary_multipart_body_is_untouched() -> None:
    data = load("mpart01")
    msg = request("mpart01")
    assert msg.method == "MESSAGE"
    assert len(msg.body) == 553 and data.endswith(msg.body)
    assert msg.content_type == "multipart/mixed"
    assert msg.top_via.port == 5070 and "rport" in msg.top_via.params
    assert b"\x30\x82\x01\x52\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" in msg.body


def test_unreason_unusual_reason_phrase() -> None:
    msg = response("unreason")
    assert msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert msg.to_bytes().startswith(f"SIP/2.0 200 {msg.reason}\r\n".encode())


def test_noreason_empty_reason_phrase() -> None:
    msg = response("noreason")
    assert (msg.status, msg.reason) == (100, "")
    assert msg.to_bytes().startswith(b"SIP/2.0 100 \r\n")


# --- 3.1.2 invalid messages: beyond the status, the reason the RFC gives ---------

def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    assert frame_stream(bytearray(load("clerr"))) is None


def test_ncl_on_a_stream_loses_the_framing() -> None:
    # RFC 4475 §3.1.2.3: over TCP the error is not recoverable, the connection is closed
    with pytest.raises(SipParseError):
        frame_stream(bytearray(load("ncl")))


def test_scalar02_every_scalar_is_out_of_range() -> None:
    with pytest.raises(SipParseError, match="CSeq"):
        validate_request(parse_message(load("scalar02")))


def test_baddn_unquoted_display_names() -> None:
    # the RFC's archive copy has no empty line after the last header, so it fails as a whole
    with pytest.raises(SipParseError, match="end of headers"):
        parse_message(load("baddn"))
    # with the empty line it still fails, on the ',' in the unquoted display names
    message = parse_message(load("baddn") + b"\r\n")
    with pytest.raises(SipParseError) as caught:
        validate_request(message)
    assert caught.value.status == 400 and "quotes" in caught.value.reason


def test_badvers_version_seven() -> None:
    with pytest.raises(SipParseError, match="SIP/7.0") as caught:
        parse_message(load("badvers"))
    assert caught.value.status == 505


def test_mismatch02_unknown_method_is_501_when_the_core_names_its_methods() -> None:
    message = parse_message(load("mismatch02"))
    with pytest.raises(SipParseError) as caught:
        validate_request(message, methods=METHODS)
    assert caught.value.status == 501
    # a known method with a mismatched CSeq stays 400 (mismatch01)
    with pytest.raises(SipParseError) as caught:
        validate_request(parse_message(load("mismatch01")), methods=METHODS)
    assert caught.value.status == 400


def test_insuf_can_still_be_answered() -> None:
    message = parse_message(load("insuf"))
    assert isinstance(message, Request)
    reply = make_response(message, 400)
    assert reply.header("Via") == message.header("Via") and reply.header("CSeq") == "193942 INVITE"


# --- 3.3 and 3.4: what the UA core needs to see to give the RFC's answer -------

def test_unksm2_non_sip_schemes_in_headers() -> None:
    msg = request("unksm2")
    # a registrar answers 400: an address-of-record must be a SIP or SIPS URI
    assert isinstance(msg.to.uri, AbsoluteUri) and msg.to.uri.scheme == "isbn"
    assert isinstance(msg.from_.uri, AbsoluteUri) and msg.from_.uri.scheme == "http"
    assert [c.uri for c in msg.contacts] == [AbsoluteUri("name", "John_Smith")]


def test_bext01_unknown_option_tags() -> None:
    msg = request("bext01")
    # the UAS answers 420 with Unsupported listing the Require tags
    assert msg.header_values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.header_values("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def test_invut_unknown_content_type() -> None:
    msg = request("invut")
    # the UAS answers 415 with Accept: application/sdp
    assert msg.content_type == "application/unknownformat"
    assert msg.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01_unknown_authorization_scheme() -> None:
    msg = request("regaut01")
    # an authenticating registrar answers 401 with a Digest challenge
    assert msg.header("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_multi01_repeated_single_value_headers() -> None:
    message = parse_message(load("multi01"))
    assert len(message.header_lines("CSeq")) == 2 and len(message.header_lines("To")) == 2


def test_mcl01_repeated_content_length() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        parse_message(load("mcl01"), stream=True)


def test_bcast_broadcast_via_in_a_response() -> None:
    msg = response("bcast")
    # a UAC discards a response with more than one Via (RFC 3261 §8.1.3.3)
    assert [v.host for v in msg.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_max_forwards_zero() -> None:
    msg = request("zeromf")
    # 483 if the box would forward it; a request the box answers itself is processed normally
    assert parse_uint(msg.header("Max-Forwards") or "", "Max-Forwards", 255) == 0


def test_cparam01_parameter_after_addr_spec_belongs_to_the_header() -> None:
    (contact,) = request("cparam01").contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.params == {}
    assert contact.params == {"unknownparam": None}


def test_cparam02_parameter_inside_brackets_belongs_to_the_uri() -> None:
    (contact,) = request("cparam02").contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.params == {"unknownparam": None}
    assert contact.params == {}


def test_regescrt_escaped_header_in_a_contact() -> None:
    (contact,) = request("regescrt").contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert unescape(contact.uri.headers["Route"]) == "<sip:sip.example.com>"
    assert contact.params == {}
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_sdp01_unacceptable_accept() -> None:
    msg = request("sdp01")
    # the UAS answers 406: it can only answer with SDP, which Accept excludes
    assert msg.header_values("Accept") == ["text/nobodyKnowsThis"]
    assert msg.content_type == "application/sdp"


def test_inv2543_rfc2543_syntax() -> None:
    msg = request("inv2543")
    assert msg.header("Max-Forwards") is None and msg.header("Content-Length") is None
    assert msg.top_via.branch is None and msg.from_.tag is None
    # without Content-Length a datagram's body is the rest of the datagram
    assert msg.body.startswith(b"v=0\r\n") and msg.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert msg.to.params == {"user": "phone"}
    assert isinstance(msg.from_.uri, SipUri) and msg.from_.uri.param("user") == "phone"
    # on a stream, a missing Content-Length means no body
    assert parse_message(load("inv2543"), stream=True).body == b""
