"""Unit tests of the SIP grammar: URIs, headers, messages, framing and serialisation."""
from __future__ import annotations

import pytest

from appliance.sip.headers import (
    HeaderError, NameAddr, Via, canonical_name, parse_cseq, parse_name_addr, parse_params,
    parse_uint, parse_via, quote, split_list, unquote,
)
from appliance.sip.message import (
    MAX_MESSAGE, Request, Response, SipParseError, frame_stream, is_list_header, make_response,
    parse_message, validate_request, validate_response,
)
from appliance.sip.uri import AbsoluteUri, SipUri, UriError, is_host, parse_sip_uri, parse_uri, uri_equal

CRLF = "\r\n"


def msg(*lines: str, body: str = "") -> bytes:
    """A message from its head lines and body, with CRLF line ends."""
    return (CRLF.join(lines) + CRLF + CRLF + body).encode()


def options(*extra: str, uri: str = "sip:bob@example.com", method: str = "OPTIONS") -> bytes:
    """A valid request with some extra header lines."""
    return msg(
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@example.com>",
        'From: "Alice" <sip:alice@example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.example.com",
        f"CSeq: 314159 {method}",
        *extra,
    )


def parsed_request(data: bytes) -> Request:
    """Parse and validate a request."""
    message = parse_message(data)
    assert isinstance(message, Request)
    validate_request(message)
    return message


# --- URI comparison, RFC 3261 §19.1.4 -------------------------------------------

EQUAL = [
    # the RFC's examples of equivalent URIs
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    # and more of the rules
    ("sip:alice@atlanta.com;transport=UDP", "sip:alice@atlanta.com;transport=udp"),
    ("SIP:alice@ATLANTA.com", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15", "sip:alice@atlanta.com;ttl=15;maddr=239.255.255.1"),
    ("sip:alice:secret@atlanta.com", "sip:alice:s%65cret@atlanta.com"),
    ("sip:a%3bb@atlanta.com", "sip:a%3Bb@atlanta.com"),
    ("sip:alice@atlanta.com;%6C%72", "sip:alice@atlanta.com;lr"),
    ("sip:alice@atlanta.com;n%61me=v%61lue", "sip:alice@atlanta.com;name=VALUE"),
    ("sip:alice@atlanta.com?Subject=hi", "sip:alice@atlanta.com?subject=h%69"),
    ("sip:alice@[2001:db8::1]:5070", "sip:alice@[2001:DB8::1]:5070"),
    ("sips:alice@atlanta.com", "sips:alice@atlanta.com"),
]
NOT_EQUAL = [
    # the RFC's examples of URIs that are not equivalent
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    # and more of the rules
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice:secret@atlanta.com", "sip:alice:SECRET@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;user=phone"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;ttl=1"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;method=INVITE"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=239.255.255.1"),
    ("sip:alice@atlanta.com;x=1", "sip:alice@atlanta.com;x=2"),
    ("sip:alice@atlanta.com;x", "sip:alice@atlanta.com;x=1"),
    # reserved characters differ from their escapes
    ("sip:a%3Bb@atlanta.com", "sip:a;b@atlanta.com"),
    ("sip:alice@atlanta.com;name=value%2541", "sip:alice@atlanta.com;name=valueA"),
    ("sip:a%253B@atlanta.com", "sip:a%3B@atlanta.com"),
    ("sip:alice@atlanta.com?subject=a&x=1", "sip:alice@atlanta.com?subject=a"),
    ("sip:alice@atlanta.com:5060", "sip:alice@atlanta.com:5061"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_uris(a: str, b: str) -> None:
    ua, ub = parse_sip_uri(a), parse_sip_uri(b)
    assert uri_equal(ua, ub) and uri_equal(ub, ua)
    assert ua == ub


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_unequal_uris(a: str, b: str) -> None:
    ua, ub = parse_sip_uri(a), parse_sip_uri(b)
    assert not uri_equal(ua, ub) and not uri_equal(ub, ua)
    assert ua != ub


def test_uri_equality_is_not_transitive() -> None:
    plain = parse_sip_uri("sip:carol@chicago.com")
    on, off = parse_sip_uri("sip:carol@chicago.com;security=on"), parse_sip_uri("sip:carol@chicago.com;security=off")
    assert plain == on and plain == off and on != off


def test_sip_uri_is_not_hashable_and_not_equal_to_other_types() -> None:
    uri = parse_sip_uri("sip:alice@atlanta.com")
    with pytest.raises(TypeError):
        hash(uri)
    assert uri != "sip:alice@atlanta.com"


# --- URI parsing ------------------------------------------------------------------

def test_sip_uri_parts() -> None:
    uri = parse_sip_uri("sips:alice:pw@atlanta.com:5061;transport=tcp;lr?subject=hi&x=y")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == ("sips", "alice", "pw", "atlanta.com", 5061)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == {"subject": "hi", "x": "y"}
    assert uri.transport == "tcp" and uri.param("TRANSPORT") == "tcp" and uri.has_param("LR")
    assert str(uri) == "sips:alice:pw@atlanta.com:5061;transport=tcp;lr?subject=hi&x=y"
    assert parse_sip_uri(str(uri)) == uri


def test_sip_uri_defaults() -> None:
    assert parse_sip_uri("sip:h.example.com").host_port() == ("h.example.com", 5060)
    assert parse_sip_uri("sips:h.example.com").host_port() == ("h.example.com", 5061)
    assert parse_sip_uri("sips:h.example.com").transport == "tls"
    assert parse_sip_uri("sip:[2001:db8::1]:5070").host_port() == ("2001:db8::1", 5070)
    assert parse_sip_uri("sip:a@h").with_params(lr=None).params == {"lr": None}


@pytest.mark.parametrize("text", [
    "sip:", "sip:@example.com", "sip:alice@", "sip:alice@exa mple.com", "sip:alice@example.com:0",
    "sip:alice@example.com:65536", "sip:alice@example.com:50x", "sip:alice@example.com:", "sip:alice@-bad-.com",
    "sip:alice@256.1.1.1", "sip:alice@[2001:db8::1", "sip:alice@example.com;", "sip:alice@example.com;a;;b",
    "sip:alice@example.com?noequals", "sip:al<ice@example.com", "sip:alice@example.com:５０６０",
    "sip:alice@exa\x00mple.com", "http://example.com", "sip:a\"b@example.com", "sip:al ice@example.com",
])
def test_bad_sip_uris(text: str) -> None:
    with pytest.raises(UriError):
        parse_sip_uri(text)


def test_other_schemes_are_opaque() -> None:
    assert parse_uri("tel:+1-201-555-0123") == AbsoluteUri("tel", "+1-201-555-0123")
    assert str(parse_uri("mailto:a@b.example")) == "mailto:a@b.example"
    assert isinstance(parse_uri("SIP:a@b.example"), SipUri)
    for text in ("nocolon", "1tel:123", "tel:", "tel:12 3", "tel:1\x0023"):
        with pytest.raises(UriError):
            parse_uri(text)


def test_is_host() -> None:
    assert all(is_host(h) for h in ("example.com", "192.0.2.1", "[::1]", "a-b.example."))
    assert is_host("desktop_7.lan")  # not RFC 3261, but Windows host names appear in phones' Vias
    assert not any(is_host(h) for h in ("exa mple.com", "1.2.3.999", "[::1", "example.com:5060", "", "é.example"))


# --- header grammar ----------------------------------------------------------------

def test_canonical_names_and_compact_forms() -> None:
    compact = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
               "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via"}
    for short, long in compact.items():
        assert canonical_name(short) == long and canonical_name(short.upper()) == long
    assert canonical_name("cseq") == "CSeq" and canonical_name("WWW-AUTHENTICATE") == "WWW-Authenticate"
    assert canonical_name("X-Custom") == "X-Custom"
    assert is_list_header("v") and is_list_header("Route") and not is_list_header("From")


def test_split_list() -> None:
    assert split_list('"Doe, John" <sip:j@d.example>, <sip:x@y.example;a=b,c>') == [
        '"Doe, John" <sip:j@d.example>', "<sip:x@y.example;a=b,c>"]
    assert split_list(' "a \\" , b" , c ') == ['"a \\" , b"', "c"]
    assert split_list("  ") == [] and split_list(" one ") == ["one"]
    for bad in ("a,,b", "a,", '"a, b'):
        with pytest.raises(HeaderError):
            split_list(bad)


def test_parse_params() -> None:
    assert parse_params(" ; Tag = x ;lr; q=0.5 ") == {"tag": "x", "lr": None, "q": "0.5"}
    assert parse_params(';name="a;b \\" c"') == {"name": '"a;b \\" c"'}
    assert parse_params("") == {}
    for bad in (";", "x=1", ";a=", ";a=b c", ';a="open', ";a b=1", ";a=<x>"):
        with pytest.raises(HeaderError):
            parse_params(bad)


def test_quote_round_trip() -> None:
    for text in ['plain', 'a "quoted" \\ word', "ctl \x00\x07\x7f", "tab\there", "ünï"]:
        assert unquote(quote(text)) == text
    assert quote("a\r\nb") == '"ab"'
    assert unquote("token") == "token"


def test_parse_via() -> None:
    via = parse_via("SIP / 2.0 / tcp  [2001:db8::1] : 5070 ;branch=z9hG4bK1;received=192.0.2.1;rport")
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "[2001:db8::1]", 5070, "z9hG4bK1")
    assert via.params == {"branch": "z9hG4bK1", "received": "192.0.2.1", "rport": None}
    assert str(via) == "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;received=192.0.2.1;rport"
    assert parse_via(str(via)) == via
    assert Via("UDP", "h.example").branch is None
    for bad in ("SIP/2.0/UDP", "SIP/3.0/UDP h", "SIP/2.0/UDP h:0", "SIP/2.0/UDP h:70000", "SIP/2.0/UDP h*x",
                "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h:５", "SIP/2.0 UDP h"):
        with pytest.raises(HeaderError):
            parse_via(bad)


def test_parse_name_addr() -> None:
    value = parse_name_addr('"Bob \\"B\\"" <sip:bob@example.com;lr>;tag=a6c85cf;q=0.7')
    assert value.display == 'Bob "B"' and value.tag == "a6c85cf" and value.params["q"] == "0.7"
    assert isinstance(value.uri, SipUri) and value.uri.has_param("lr")
    assert parse_name_addr(str(value)).display == 'Bob "B"'
    assert parse_name_addr("Bob Smith <sip:b@example.com>").display == "Bob Smith"
    assert parse_name_addr("<sip:b@example.com>").display is None
    bare = parse_name_addr(" sip:b@example.com;tag=1 ")
    assert isinstance(bare.uri, SipUri) and bare.uri.params == {} and bare.tag == "1"
    assert parse_name_addr("<tel:+15551234>").uri == AbsoluteUri("tel", "+15551234")
    assert str(NameAddr(parse_sip_uri("sip:a@b.example"), "A \\ B", {"tag": "1"})) == '"A \\\\ B" <sip:a@b.example>;tag=1'
    for bad in ('"Bob <sip:b@example.com>', "Bo,b <sip:b@example.com>", "<sip:b@example.com", '"Bob" sip:b@example.com',
                "< sip:b@example.com>", "sip:b@example.com?x=y", "sip:b@example.com junk", "<sip:b@example.com> junk"):
        with pytest.raises(HeaderError):
            parse_name_addr(bad)


def test_parse_cseq_and_uint() -> None:
    assert parse_cseq(" 0009 \t INVITE ") == (9, "INVITE")
    assert parse_cseq(f"{2**31 - 1} ACK") == (2**31 - 1, "ACK")
    for bad in (f"{2**31} ACK", "1", "x INVITE", "1 IN VITE", "-1 ACK", "１ ACK", "¹ ACK"):
        with pytest.raises(HeaderError):
            parse_cseq(bad)
    assert parse_uint(" 70 ", "Max-Forwards", 255) == 70
    for bad in ("256", "-1", "", "7 0", "²", "١٢"):
        with pytest.raises(HeaderError):
            parse_uint(bad, "Max-Forwards", 255)


# --- messages: compact forms, folding, lists ---------------------------------------

def test_compact_headers() -> None:
    data = msg(
        "INVITE sip:bob@example.com SIP/2.0",
        "v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
        "t: <sip:bob@example.com>",
        "f: <sip:alice@example.com>;tag=1",
        "i: abc@pc33",
        "CSeq: 1 INVITE",
        "m: <sip:alice@pc33.example.com>",
        "c: application/sdp",
        "s: lunch",
        "k: 100rel, timer",
        "e: gzip",
        "l: 4",
        body="v=0\n",
    )
    request = parsed_request(data)
    assert request.call_id == "abc@pc33" and request.content_type == "application/sdp"
    assert request.header("Subject") == "lunch" and request.header("s") == "lunch"
    assert request.header_values("Supported") == ["100rel", "timer"]
    assert request.header("Content-Encoding") == "gzip"
    assert request.top_via.host == "pc33.example.com" and request.body == b"v=0\n"
    assert [name for name, _ in request.headers][:3] == ["Via", "To", "From"]
    out = request.to_bytes()
    assert b"\r\nContent-Type: application/sdp\r\n" in out and b"\r\nContent-Length: 4\r\n" in out


def test_folded_headers() -> None:
    data = msg(
        "OPTIONS sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.example.com",
        "\t;branch=z9hG4bK776asdhds",
        "To: <sip:bob@example.com>",
        "From:",
        "   <sip:alice@example.com>",
        "  ;tag=1",
        "Call-ID: abc",
        "CSeq:  2",
        "\t OPTIONS",
        "Subject: one",
        " two",
        "\tthree",
    )
    request = parsed_request(data)
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.from_.tag == "1" and request.cseq == (2, "OPTIONS")
    assert request.header("Subject") == "one two three"


def test_bare_lf_line_ends_are_accepted() -> None:
    data = options().replace(b"\r\n", b"\n") + b"body\r\n\r\nmore"
    request = parsed_request(data)
    assert request.body == b"body\r\n\r\nmore"
    assert request.cseq == (314159, "OPTIONS")


def test_multi_value_via_and_contact() -> None:
    data = msg(
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com:5070;branch=z9hG4bK2",
        "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3",
        "To: <sip:alice@example.com>",
        "From: <sip:alice@example.com>;tag=1",
        "Call-ID: reg",
        "CSeq: 1 REGISTER",
        'Contact: "Doe, Alice" <sip:alice@a.example.com>;q=0.7, <sip:alice@b.example.com>;expires=60',
        "Contact: sip:alice@c.example.com;q=0.1",
    )
    request = parsed_request(data)
    assert [(v.host, v.port, v.branch) for v in request.vias] == [
        ("a.example.com", None, "z9hG4bK1"), ("b.example.com", 5070, "z9hG4bK2"), ("c.example.com", None, "z9hG4bK3")]
    assert request.top_via.host == "a.example.com"
    contacts = request.contacts
    assert [c.display for c in contacts] == ["Doe, Alice", None, None]
    assert [c.params for c in contacts] == [{"q": "0.7"}, {"expires": "60"}, {"q": "0.1"}]


def test_wildcard_contact_is_not_a_binding() -> None:
    request = parsed_request(options("Contact: *", "Expires: 0", method="REGISTER"))
    assert request.contacts == [] and request.header("Contact") == "*"


def test_header_access_helpers() -> None:
    request = parsed_request(options("X-A: 1", "x-a: 2", "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>"))
    assert request.header_lines("X-A") == ["1", "2"] and request.header("x-A") == "1"
    assert request.header_values("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    request.set_header("x-a", "3")
    assert request.header_lines("X-A") == ["3"]
    request.add_header("Route", "<sip:p0.example.com;lr>", first=True)
    assert request.header_values("Route")[0] == "<sip:p0.example.com;lr>"
    request.remove_header("route")
    assert request.header("Route") is None
    request.set_header("Via", "SIP/2.0/TCP new.example.com;branch=z9hG4bKnew")
    assert request.top_via.host == "new.example.com"  # the parsed view follows the change


# --- start lines and validation --------------------------------------------------------

def test_start_lines() -> None:
    assert parse_message(msg("SIP/2.0 180 Ringing")).start_line() == "SIP/2.0 180 Ringing"
    assert parse_message(msg("sip/2.0 200 OK")).start_line() == "SIP/2.0 200 OK"
    assert parse_message(msg("OPTIONS sip:a@b.example sip/2.0")).start_line() == "OPTIONS sip:a@b.example SIP/2.0"
    response = parse_message(msg("SIP/2.0 603 Decline, with regrets"))
    assert isinstance(response, Response) and response.reason == "Decline, with regrets"
    assert Response(486).reason == "Busy Here" and Response(299).reason == "Unknown"


@pytest.mark.parametrize(("line", "status"), [
    ("SIP/2.0 099 Low", 400), ("SIP/2.0 700 High", 400), ("SIP/2.0 20 OK", 400), ("SIP/2.0 2000 OK", 400),
    ("SIP/2.0 ２00 OK", 400), ("SIP/2.0  200 OK", 400), ("SIP/2.0 200 O\x00K", 400), ("SIP/3.0 200 OK", 505),
    ("ſip/2.0 200 OK", 400), ("OPTIONS sip:a@b.example SIP/3.0", 505), ("OPTIONS sip:a@b.example HTTP/1.1", 400),
    ("OPTIONS sip:a@b.example", 400), ("OPTIONS  sip:a@b.example SIP/2.0", 400), ("OPT<IONS sip:a@b SIP/2.0", 400),
    ("OPTIONS sip:a@b.example SIP/2.0 ", 400), ("OPTIONS <sip:a@b.example> SIP/2.0", 400),
    ("OPTIONS sip:a\x01@b.example SIP/2.0", 400), ("OPTIONS\tsip:a@b.example\tSIP/2.0", 400), ("", 400),
])
def test_bad_start_lines(line: str, status: int) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(msg(line, "Via: SIP/2.0/UDP h"))
    assert caught.value.status == status


@pytest.mark.parametrize("line", [
    "Bad Header: x", ": no name", "no colon", "Bad<Name>: x", "X-Ctl: a\x00b", "X-Ctl: a\rb", "X-Ctl: \x1b[31m",
    'X-Ctl: "quoted\x00"', "X-Del: \x7f",
])
def test_bad_header_lines(line: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(options(line))
    assert caught.value.status == 400


def test_controls_are_allowed_only_as_quoted_pairs() -> None:
    request = parsed_request(options('X-Pair: "a\\\x00b\\\x7f" tail\tand tab'))
    assert request.header("X-Pair") == '"a\\\x00b\\\x7f" tail\tand tab'


def test_content_length_rules() -> None:
    assert parse_message(options("Content-Length: 3") + b"abcdef").body == b"abc"
    assert parse_message(options() + b"abc").body == b"abc"
    assert parse_message(options() + b"abc", stream=True).body == b""
    for bad in ("Content-Length: 7", "Content-Length: -1", "Content-Length: x", "Content-Length: 1, 2",
                "Content-Length: ３", "Content-Length: 99999999999"):
        with pytest.raises(SipParseError):
            parse_message(options(bad) + b"abcdef")
    with pytest.raises(SipParseError, match="more than one"):
        parse_message(options("Content-Length: 1", "l: 1") + b"a")


def test_size_limit_and_missing_end_of_headers() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(options() + b"x" * MAX_MESSAGE)
    assert caught.value.status == 513
    with pytest.raises(SipParseError, match="end of headers"):
        parse_message(options().rstrip(b"\r\n"))


def test_validate_request_rules() -> None:
    for missing in ("To", "From", "Call-ID", "CSeq", "Via"):
        data = b"\r\n".join(line for line in options().split(b"\r\n") if not line.startswith(missing.encode() + b":"))
        with pytest.raises(SipParseError, match=f"missing {missing}"):
            validate_request(parse_message(data))
    for extra, status in [
        ("Max-Forwards: 256", 400), ("Expires: 4294967296", 400),
        ("Call-ID: second", 400), ("Contact: <sip:a@b.example", 400), ("From: <sip:x@y.example>", 400),
    ]:
        with pytest.raises(SipParseError) as caught:
            validate_request(parse_message(options(extra)))
        assert caught.value.status == status, extra
    parsed_request(options("Date: Sat, 13 Nov 2010 23:29:00 GMT", "Expires: 4294967295"))
    for uri, status in [("sip:a@b.example?Subject=x", 400), ("mailto:a@b.example", 416), ("sip:a%", 400)]:
        with pytest.raises(SipParseError) as caught:
            validate_request(parse_message(options(uri=uri)))
        assert caught.value.status == status, uri
    parsed_request(options(uri="tel:+15551234"))


def test_validate_request_methods() -> None:
    request = parse_message(options(method="PUBLISH"))
    assert isinstance(request, Request)
    validate_request(request)
    with pytest.raises(SipParseError) as caught:
        validate_request(request, methods={"INVITE", "OPTIONS"})
    assert caught.value.status == 501
    validate_request(request, methods={"PUBLISH"})


def test_validate_request_branch_cookie_alone() -> None:
    data = options().replace(b"branch=z9hG4bK776asdhds", b"branch=z9hG4bK")
    with pytest.raises(SipParseError, match="magic cookie"):
        validate_request(parse_message(data))
    parsed_request(options().replace(b";branch=z9hG4bK776asdhds", b";branch=1"))


def test_validate_response() -> None:
    head = ["Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1", "To: <sip:b@example.com>;tag=2",
            "From: <sip:a@example.com>;tag=1", "Call-ID: x", "CSeq: 1 INVITE"]
    ok = parse_message(msg("SIP/2.0 200 OK", *head))
    assert isinstance(ok, Response)
    validate_response(ok)
    for broken in (head[1:], head + ["CSeq: 2 INVITE"], [*head[:4], "CSeq: x INVITE"], [*head[:1], 'To: "b <sip:b@x>, c', *head[2:]]):
        response = parse_message(msg("SIP/2.0 200 OK", *broken))
        assert isinstance(response, Response)
        with pytest.raises(SipParseError):
            validate_response(response)


# --- make_response ------------------------------------------------------------------------

def test_make_response_mirrors_the_request() -> None:
    request = parsed_request(options(
        "Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp1",
        "Contact: <sip:alice@pc33.example.com>", "Record-Route: <sip:proxy.example.com;lr>"))
    response = make_response(request, 200, to_tag="as83kd9bs", extra=[("Allow", "INVITE, ACK"), ("Supported", "timer")])
    assert response.status == 200 and response.reason == "OK"
    assert response.header_lines("Via") == request.header_lines("Via")
    for name in ("From", "Call-ID", "CSeq"):
        assert response.header(name) == request.header(name)
    assert response.header("To") == "Bob <sip:bob@example.com>;tag=as83kd9bs"
    assert response.to.tag == "as83kd9bs" and response.to.uri == request.to.uri
    assert response.header("Contact") is None and response.header("Max-Forwards") is None
    assert response.header("Record-Route") is None
    assert response.header_values("Allow") == ["INVITE", "ACK"]
    again = parse_message(response.to_bytes())
    assert isinstance(again, Response)
    validate_response(again)
    assert again.to.tag == "as83kd9bs" and again.vias == request.vias


def test_make_response_to_tag_rules() -> None:
    request = parsed_request(options())
    assert make_response(request, 100, to_tag="x").to.tag is None
    assert make_response(request, 404, "Nobody Here").reason == "Nobody Here"
    # Every answer but 100 has a To tag (RFC 3261 §8.2.6.2): derived from the request, the same each time.
    assert make_response(request, 486).to.tag == make_response(request, 486).to.tag is not None
    tagged = parsed_request(options().replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=old"))
    assert make_response(tagged, 200, to_tag="new").to.tag == "old"
    body = make_response(request, 200, body=b"v=0\r\n", extra=[("Content-Type", "application/sdp")])
    assert parse_message(body.to_bytes()).body == b"v=0\r\n"


def test_make_response_copes_with_a_broken_to() -> None:
    request = parse_message(options().replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:bob@exa mple.com>;TAG=x"))
    assert isinstance(request, Request)
    assert make_response(request, 400, to_tag="t").header("To") == "<sip:bob@exa mple.com>;TAG=x"
    request = parse_message(options().replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:bob@exa mple.com>"))
    assert isinstance(request, Request)
    assert make_response(request, 400, to_tag="t").header("To") == "<sip:bob@exa mple.com>;tag=t"


# --- frame_stream ---------------------------------------------------------------------------

def test_frame_stream_partial_input() -> None:
    data = options("Content-Length: 5") + b"hello"
    buffer = bytearray()
    frames = []
    for byte in data:  # one octet at a time: nothing comes out until the body is whole
        buffer.append(byte)
        frame = frame_stream(buffer)
        if frame is not None:
            frames.append(frame)
    assert frames == [data] and not buffer


def test_frame_stream_concatenated_messages() -> None:
    first = options("Content-Length: 5") + b"hello"
    second = options("l: 0")
    third = msg("SIP/2.0 200 OK", "Via: SIP/2.0/UDP h", "Content-Length  :  3") + b"abc"
    buffer = bytearray(b"\r\n\r\n" + first + b"\r\n" + second + third + third[:10])
    assert frame_stream(buffer) == first
    assert frame_stream(buffer) == second
    assert frame_stream(buffer) == third
    assert frame_stream(buffer) is None and buffer == bytearray(third[:10])
    buffer += third[10:]
    assert frame_stream(buffer) == third and not buffer


def test_frame_stream_keepalive_and_missing_length() -> None:
    buffer = bytearray(b"\r\n\r\n")  # a CRLF keep-alive ping (RFC 5626 §3.5.1)
    assert frame_stream(buffer) is None and not buffer
    buffer = bytearray(options() + b"junk")  # no Content-Length on a stream: no body
    assert frame_stream(buffer) == options() and buffer == bytearray(b"junk")


def test_frame_stream_errors() -> None:
    for bad in ("Content-Length: -5", "Content-Length: five", "Content-Length: ", "l: 5x"):
        with pytest.raises(SipParseError):
            frame_stream(bytearray(options(bad) + b"hello"))
    with pytest.raises(SipParseError) as caught:
        frame_stream(bytearray(options(f"Content-Length: {MAX_MESSAGE + 1}")))
    assert caught.value.status == 513
    with pytest.raises(SipParseError) as caught:
        frame_stream(bytearray(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * MAX_MESSAGE))
    assert caught.value.status == 513
    assert frame_stream(bytearray(b"OPTIONS sip:a@b SIP/2.0\r\nX: y")) is None


# --- serialise and parse back ----------------------------------------------------------------

def test_built_request_round_trip() -> None:
    request = Request("INVITE", "sip:bob@example.com", body=b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n")
    request.add_header("Via", str(Via("UDP", "192.0.2.1", 5062, {"branch": "z9hG4bKx1", "rport": None})))
    request.add_header("Max-Forwards", "70")
    request.add_header("From", str(NameAddr(parse_sip_uri("sip:alice@example.com"), 'Alice "A" \\ Z', {"tag": "f1"})))
    request.add_header("To", str(NameAddr(parse_sip_uri("sip:bob@example.com"))))
    request.add_header("Call-ID", "c1@192.0.2.1")
    request.add_header("CSeq", "1 INVITE")
    request.add_header("Content-Type", "application/sdp")
    data = request.to_bytes()
    assert data.startswith(b"INVITE sip:bob@example.com SIP/2.0\r\n") and b"\r\nContent-Length: 31\r\n\r\n" in data
    again = parsed_request(data)
    assert again.method == "INVITE" and again.uri == "sip:bob@example.com"
    assert again.headers == request.headers + [["Content-Length", "31"]]
    assert again.from_.display == 'Alice "A" \\ Z' and again.from_.tag == "f1"
    assert again.top_via.params == {"branch": "z9hG4bKx1", "rport": None} and again.top_via.port == 5062
    assert again.body == request.body and bytes(again) == data


def test_parsed_message_round_trip_is_a_fixed_point() -> None:
    data = msg(
        "INVITE sip:bob@example.com SIP/2.0",
        "v: SIP/2.0/UDP pc33.example.com ; branch = z9hG4bK1",
        "t: <sip:bob@example.com>",
        "f: Alice <sip:alice@example.com>",
        "  ;tag=1",
        "i: abc",
        "CSeq: 1 INVITE",
        "Subject:    spaced   out   ",
        "l: 2",
        body="hi",
    )
    once = parse_message(data).to_bytes()
    assert once == parse_message(once).to_bytes()
    assert b"\r\nFrom: Alice <sip:alice@example.com> ;tag=1\r\n" in once
    assert b"\r\nSubject: spaced   out\r\n" in once
