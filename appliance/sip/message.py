"""SIP messages: a strict parser, validation and serialisation (RFC 3261 §7, §20, §25)."""
from __future__ import annotations

import hashlib

import re
from typing import Collection, Iterable

from .headers import (
    LIST_HEADERS, SINGLE_HEADERS, TOKEN, HeaderError, NameAddr, Via, canonical_name,
    parse_cseq, parse_name_addr, parse_uint, parse_via, split_list,
)
from .uri import AbsoluteUri, SipUri, UriError, parse_uri

MAGIC_COOKIE = "z9hG4bK"

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
_STREAM_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?([^\r\n]*)", re.I)
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_STATUS_CODE = re.compile(r"[1-6][0-9][0-9]\Z")
# Controls allowed nowhere in a header value but inside a quoted-pair (HTAB is LWS).
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
        if headers is None:
            headers = []
        for entry in headers:
            entry[0] = canonical_name(entry[0])
        self.headers: list[list[str]] = headers
        self.body = body
        self._cache: dict[str, object] = {}

    # --- header access -------------------------------------------------
    # Names are stored canonical (see canonical_name), so lookups compare strings directly.
    def header(self, name: str) -> str | None:
        """Value of the first header with this name (compact forms included)."""
        wanted = canonical_name(name)
        for hname, value in self.headers:
            if hname == wanted:
                return value
        return None

    def header_lines(self, name: str) -> list[str]:
        """Every header line with this name, unsplit."""
        wanted = canonical_name(name)
        return [value for hname, value in self.headers if hname == wanted]

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, with comma-separated lists split."""
        values: list[str] = []
        for line in self.header_lines(name):
            values.extend(split_list(line))
        return values

    def set_header(self, name: str, value: str) -> None:
        """Replace all headers of this name by one (added at the end if absent)."""
        name = canonical_name(name)
        for i, (hname, _) in enumerate(self.headers):
            if hname == name:
                self.headers[i] = [name, value]
                self.headers[i + 1 :] = [h for h in self.headers[i + 1 :] if h[0] != name]
                break
        else:
            self.headers.append([name, value])
        self._cache.clear()

    def add_header(self, name: str, value: str, first: bool = False) -> None:
        """Add a header line, at the top of its kind when first is set."""
        entry = [canonical_name(name), value]
        if first:
            index = next((i for i, h in enumerate(self.headers) if h[0] == entry[0]), 0)
            self.headers.insert(index, entry)
        else:
            self.headers.append(entry)
        self._cache.clear()

    def remove_header(self, name: str) -> None:
        """Remove every header with this name."""
        name = canonical_name(name)
        self.headers = [h for h in self.headers if h[0] != name]
        self._cache.clear()

    def set_top_via(self, via: Via) -> None:
        """Rewrite the topmost Via value in place, keeping the others as written and the parsed cache."""
        for entry in self.headers:
            if entry[0] == "Via":
                values = split_list(entry[1])
                values[0] = str(via)
                entry[1] = ", ".join(values)
                break
        vias = self._cache.get("vias")
        if vias:
            vias[0] = via  # type: ignore[index]

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
    # the first empty line ends the head, whatever line ends the sender used
    end = _END_OF_HEAD.search(data)
    if end is None:
        raise SipParseError("no end of headers")
    return data[: end.start()], data[end.end() :]


def _bad_controls(value: str) -> bool:
    """Whether a header value has a control character outside a quoted-pair."""
    if not _CTL.search(value):
        return False
    quoted, i = False, 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\" and i + 1 < len(value) and value[i + 1] not in "\r\n":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif _CTL.match(ch):
            return True
        i += 1
    return False


def _parse_start_line(line: str) -> Request | Response:
    if line[:4].isascii() and line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        if not version.isascii() or version.upper() != "SIP/2.0":
            raise SipParseError(f"unsupported version {version!r}", 505)
        code, _, reason = rest.partition(" ")
        if not _STATUS_CODE.match(code):
            raise SipParseError(f"bad status code {code!r}")
        if _CTL.search(reason):
            raise SipParseError("control character in the reason phrase")
        return Response(int(code), reason.strip())
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError("malformed Request-Line")
    method, uri, version = parts
    if not TOKEN.match(method):
        raise SipParseError(f"bad method {method!r}")
    if not version.isascii() or not version.upper().startswith("SIP/"):
        raise SipParseError(f"bad version {version!r}")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported version {version!r}", 505)
    if uri.startswith("<"):
        raise SipParseError("Request-URI enclosed in <>")
    if _CTL.search(uri):
        raise SipParseError("control character in the Request-URI")
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
        value = match.group(2).rstrip()
        if _bad_controls(value):
            raise SipParseError(f"control character in header {match.group(1)[:40]!r}")
        headers.append([canonical_name(match.group(1)), value])
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


def frame_stream(buffer: bytearray, max_headers: int = MAX_MESSAGE) -> bytes | None:
    """Take one whole message off the front of a stream buffer, or None if incomplete."""
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n", 0, max_headers + 4)
    if end < 0:
        if len(buffer) > max_headers:
            raise SipParseError("headers too long", 513)
        return None
    length = 0
    match = _STREAM_LENGTH.search(buffer, 0, end)
    if match:
        # without a number the framing is lost for good: the caller closes the connection
        text = match.group(1).strip()
        if not text.isdigit() or not text.isascii():
            raise SipParseError(f"bad Content-Length {text[:20]!r}")
        length = int(text)
        if length > MAX_MESSAGE:
            raise SipParseError("Content-Length too large", 513)
    total = end + 4 + length
    if len(buffer) < total:
        return None
    message = bytes(buffer[:total])
    del buffer[:total]
    return message


def validate_request(request: Request, *, methods: Collection[str] | None = None) -> None:
    """Check what a UAS needs before acting; raise SipParseError with the status to answer.

    methods, when given, is what the UAS implements: any other method gets 501.
    """
    for name in ("To", "From", "Call-ID", "CSeq", "Via"):
        if request.header(name) is None:
            raise SipParseError(f"missing {name}")
    _check_singletons(request)
    try:
        number, method = request.cseq
        vias = request.vias
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
    # RFC 4475 §3.2.1 allows falling back to RFC 2543 matching; rejecting is the strict choice
    if vias[0].branch == MAGIC_COOKIE:
        raise SipParseError("branch is only the magic cookie")
    # A non-GMT Date is ignored, as RFC 4475 §3.1.2.12 allows: phones with odd clocks still work
    # and nothing in the box reads the Date of a request.
    if methods is not None and request.method not in methods:
        raise SipParseError(f"method {request.method!r} not implemented", 501)
    if method != request.method:
        raise SipParseError("CSeq method does not match the Request-Line")
    try:
        ruri = request.ruri
    except UriError as exc:
        raise SipParseError(f"bad Request-URI: {exc}") from None
    if isinstance(ruri, AbsoluteUri) and ruri.scheme != "tel":
        raise SipParseError(f"unsupported URI scheme {ruri.scheme!r}", 416)
    # RFC 3261 §19.1.1 forbids headers in a Request-URI; RFC 4475 §3.1.2.11 allows rejecting
    if isinstance(ruri, SipUri) and ruri.headers:
        raise SipParseError("headers in the Request-URI")


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
            try:
                several = len(split_list(value)) > 1 if lower in ("from", "to") else "," in value
            except HeaderError as exc:
                raise SipParseError(str(exc)) from None
            if lower in seen or several:
                # for From and To this is also an unquoted ',' in a display name (RFC 4475 §3.1.2.15)
                raise SipParseError(f"more than one {name}, or a ',' outside quotes and <>")
            seen.add(lower)


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, extra: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Response:
    """Build a response that mirrors the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6).

    Every response but 100 carries a To tag (§8.2.6.2); without one given, it is derived from the
    request, so a retransmitted request answered again gets the same tag.
    """
    headers: list[list[str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            headers.append([name, value])
        elif name == "To":
            if status != 100 and not _has_tag(request, value):
                value = f"{value};tag={to_tag or _derived_tag(request)}"
            headers.append([name, value])
    response = Response(status, reason, headers, body)
    for name, value in extra:
        response.add_header(name, value)
    return response


def _derived_tag(request: Request) -> str:
    """A To tag that is the same for the same request (its Call-ID, From and top Via)."""
    seed = "\n".join(str(request.header(name) or "") for name in ("Call-ID", "From", "Via", "CSeq"))
    return hashlib.blake2b(seed.encode("utf-8", "replace"), digest_size=5).hexdigest()


def _has_tag(request: Request, value: str) -> bool:
    """Whether the To header carries a tag, even when it is too broken to parse."""
    try:
        return request.to.tag is not None
    except (HeaderError, UriError):
        return re.search(r";\s*tag\s*=", value, re.I) is not None


def is_list_header(name: str) -> bool:
    """Whether a header carries a comma-separated list."""
    return canonical_name(name).lower() in LIST_HEADERS
