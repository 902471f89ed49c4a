"""SIP messages: a strict parser, validation and serialisation (RFC 3261 §7, §20, §25)."""
from __future__ import annotations

import re
from typing import Iterable

from .headers import (
    LIST_HEADERS, SINGLE_HEADERS, TOKEN, HeaderError, NameAddr, Via, canonical_name,
    parse_cseq, parse_name_addr, parse_uint, parse_via, split_list,
)
from .uri import AbsoluteUri, SipUri, UriError, parse_uri

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
}
MAX_MESSAGE = 65535
_HEADER_LINE = re.compile(r"([^\s:]+)[ \t]*:[ \t]*(.*)\Z", re.S)
_LINE_SPLIT = re.compile(r"\r?\n")
_FOLD = re.compile(r"\r?\n[ \t]+")
_STREAM_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I)


class SipParseError(ValueError):
    """A message that cannot be accepted; status is what a request gets in reply."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Message:
    """Headers and body shared by requests and responses."""

    __slots__ = ("headers", "body", "_cache")

    def __init__(self, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        self.headers: list[list[str]] = headers if headers is not None else []
        self.body = body
        self._cache: dict[str, object] = {}

    # --- header access -------------------------------------------------
    def header(self, name: str) -> str | None:
        """Value of the first header with this name (compact forms included)."""
        wanted = canonical_name(name).lower()
        for hname, value in self.headers:
            if hname.lower() == wanted:
                return value
        return None

    def header_lines(self, name: str) -> list[str]:
        """Every header line with this name, unsplit."""
        wanted = canonical_name(name).lower()
        return [value for hname, value in self.headers if hname.lower() == wanted]

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, with comma-separated lists split."""
        values: list[str] = []
        for line in self.header_lines(name):
            values.extend(split_list(line))
        return values

    def set_header(self, name: str, value: str) -> None:
        """Replace all headers of this name by one (added at the end if absent)."""
        name = canonical_name(name)
        lower = name.lower()
        for i, (hname, _) in enumerate(self.headers):
            if hname.lower() == lower:
                self.headers[i] = [name, value]
                self.headers[i + 1 :] = [h for h in self.headers[i + 1 :] if h[0].lower() != lower]
                break
        else:
            self.headers.append([name, value])
        self._cache.clear()

    def add_header(self, name: str, value: str, first: bool = False) -> None:
        """Add a header line, at the top of its kind when first is set."""
        entry = [canonical_name(name), value]
        if first:
            lower = entry[0].lower()
            index = next((i for i, h in enumerate(self.headers) if h[0].lower() == lower), 0)
            self.headers.insert(index, entry)
        else:
            self.headers.append(entry)
        self._cache.clear()

    def remove_header(self, name: str) -> None:
        """Remove every header with this name."""
        lower = canonical_name(name).lower()
        self.headers = [h for h in self.headers if h[0].lower() != lower]
        self._cache.clear()

    def _cached(self, key: str, build):  # type: ignore[no-untyped-def]
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
            return value

    # --- parsed views (cached) -----------------------------------------
    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """CSeq number and method."""
        return self._cached("cseq", lambda: parse_cseq(self.header("CSeq") or ""))

    @property
    def vias(self) -> list[Via]:
        """All Via values, top first."""
        return self._cached("vias", lambda: [parse_via(v) for v in self.header_values("Via")])

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        return self.vias[0]

    @property
    def from_(self) -> NameAddr:
        """The From header, parsed."""
        return self._cached("from", lambda: parse_name_addr(self.header("From") or ""))

    @property
    def to(self) -> NameAddr:
        """The To header, parsed."""
        return self._cached("to", lambda: parse_name_addr(self.header("To") or ""))

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values, parsed ('*' is not included; see is_wildcard_contact)."""
        def build() -> list[NameAddr]:
            return [parse_name_addr(v) for v in self.header_values("Contact") if v != "*"]
        return self._cached("contacts", build)

    @property
    def content_type(self) -> str:
        """Content-Type media type, lower case, without parameters."""
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def start_line(self) -> str:
        """The first line of the message."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise, setting Content-Length from the body."""
        lines = [self.start_line()]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    """A SIP request."""

    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri: str, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    @property
    def ruri(self) -> SipUri | AbsoluteUri:
        """The Request-URI, parsed."""
        return self._cached("ruri", lambda: parse_uri(self.uri))

    def start_line(self) -> str:
        """Request-Line."""
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason", "local")

    def __init__(self, status: int, reason: str | None = None, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.local = False  # True for a timeout or transport error made up by the box itself
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    def start_line(self) -> str:
        """Status-Line."""
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id}>"


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    raise SipParseError("no end of headers")


def _parse_start_line(line: str) -> Request | Response:
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipParseError(f"unsupported version {version!r}", 505)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code!r}")
        return Response(int(code), reason.strip())
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError("malformed Request-Line")
    method, uri, version = parts
    if not TOKEN.match(method):
        raise SipParseError(f"bad method {method!r}")
    if not version.upper().startswith("SIP/"):
        raise SipParseError(f"bad version {version!r}")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported version {version!r}", 505)
    if uri.startswith("<"):
        raise SipParseError("Request-URI enclosed in <>")
    return Request(method, uri)


def parse_message(data: bytes, stream: bool = False) -> Request | Response:
    """Parse one message; on a stream transport Content-Length is mandatory framing."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large", 513)
    head_bytes, body = _split_head(data)
    head = head_bytes.decode("utf-8", "surrogateescape")
    head = _FOLD.sub(" ", head)
    lines = _LINE_SPLIT.split(head)
    message = _parse_start_line(lines[0])
    headers = message.headers
    for line in lines[1:]:
        match = _HEADER_LINE.match(line)
        if not match or not TOKEN.match(match.group(1)):
            raise SipParseError(f"malformed header line {line[:40]!r}")
        headers.append([canonical_name(match.group(1)), match.group(2).rstrip()])
    lengths = message.header_lines("Content-Length")
    if len(lengths) > 1:
        raise SipParseError("more than one Content-Length")
    if lengths:
        try:
            length = parse_uint(lengths[0], "Content-Length", MAX_MESSAGE)
        except HeaderError as exc:
            raise SipParseError(str(exc)) from None
        if length > len(body):
            raise SipParseError("Content-Length larger than the body")
        body = body[:length]
    elif stream:
        body = b""
    message.body = body
    return message


def frame_stream(buffer: bytearray) -> bytes | None:
    """Take one whole message off the front of a stream buffer, or None if incomplete."""
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_MESSAGE:
            raise SipParseError("headers too long", 513)
        return None
    length = 0
    match = _STREAM_LENGTH.search(buffer, 0, end)
    if match:
        length = int(match.group(1))
        if length > MAX_MESSAGE:
            raise SipParseError("Content-Length too large", 513)
    total = end + 4 + length
    if len(buffer) < total:
        return None
    message = bytes(buffer[:total])
    del buffer[:total]
    return message


def validate_request(request: Request) -> None:
    """Check what a UAS needs before acting; raise SipParseError with the status to answer."""
    for name in ("To", "From", "Call-ID", "CSeq", "Via"):
        if request.header(name) is None:
            raise SipParseError(f"missing {name}")
    _check_singletons(request)
    try:
        number, method = request.cseq
        if method != request.method:
            raise SipParseError("CSeq method does not match the Request-Line")
        request.vias
        request.from_
        request.to
        request.contacts
        max_forwards = request.header("Max-Forwards")
        if max_forwards is not None:
            parse_uint(max_forwards, "Max-Forwards", 255)
        expires = request.header("Expires")
        if expires is not None:
            parse_uint(expires, "Expires", 2**32 - 1)
    except (HeaderError, UriError) as exc:
        raise SipParseError(str(exc)) from None
    try:
        ruri = request.ruri
    except UriError as exc:
        raise SipParseError(f"bad Request-URI: {exc}") from None
    if isinstance(ruri, AbsoluteUri) and ruri.scheme != "tel":
        raise SipParseError(f"unsupported URI scheme {ruri.scheme!r}", 416)


def validate_response(response: Response) -> None:
    """Check a response well enough to match it to a transaction; raise SipParseError if not."""
    for name in ("To", "From", "Call-ID", "CSeq", "Via"):
        if response.header(name) is None:
            raise SipParseError(f"missing {name}")
    _check_singletons(response)
    try:
        response.cseq
        response.vias
        response.from_
        response.to
    except (HeaderError, UriError) as exc:
        raise SipParseError(str(exc)) from None


def _check_singletons(message: Message) -> None:
    seen: set[str] = set()
    for name, value in message.headers:
        lower = name.lower()
        if lower in SINGLE_HEADERS:
            several = len(split_list(value)) > 1 if lower in ("from", "to") else "," in value
            if lower in seen or several:
                raise SipParseError(f"more than one {name}")
            seen.add(lower)


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, extra: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Response:
    """Build a response that mirrors the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6)."""
    headers: list[list[str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            headers.append([name, value])
        elif name == "To":
            if to_tag and status != 100 and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            headers.append([name, value])
    response = Response(status, reason, headers, body)
    for name, value in extra:
        response.add_header(name, value)
    return response


def is_list_header(name: str) -> bool:
    """Whether a header carries a comma-separated list."""
    return canonical_name(name).lower() in LIST_HEADERS
