"""SIP header grammar: names, lists, parameters, Via and name-addr values."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .uri import AbsoluteUri, SipUri, UriError, is_host, parse_uri

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "u": "Allow-Events", "x": "Session-Expires",
    "b": "Referred-By", "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "y": "Identity",
}
_CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route",
    "Reply-To", "Require", "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp",
    "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Event",
    "Allow-Events", "Session-Expires", "Min-SE", "P-Asserted-Identity", "Privacy", "RSeq", "RAck",
    "Refer-To", "Referred-By", "Replaces", "Subscription-State",
)}
# Headers whose values are comma-separated lists (RFC 3261 §7.3.1).
LIST_HEADERS = frozenset({
    "via", "contact", "route", "record-route", "allow", "supported", "require", "proxy-require",
    "unsupported", "accept", "accept-encoding", "accept-language", "allow-events", "content-encoding",
    "content-language", "in-reply-to", "alert-info", "call-info", "error-info", "warning",
})
# Headers that may appear at most once in a message.
SINGLE_HEADERS = frozenset({
    "call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type", "expires",
    "min-expires",
})
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+\Z")
_DIGITS = re.compile(r"[0-9]{1,10}\Z")
# Controls that a quoted-string can only carry as a quoted-pair (RFC 3261 §25.1).
_QUOTABLE_CTL = re.compile(r'[\x00-\x08\x0b\x0c\x0e-\x1f\x7f"\\]')


class HeaderError(ValueError):
    """A header value that does not follow the grammar."""


_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096  # bounded: every distinct spelling a peer sends would otherwise stay cached


def canonical_name(name: str) -> str:
    """Long, conventionally capitalised form of a header name; equal names give equal strings."""
    found = _NAMES.get(name)
    if found is not None:
        return found
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT:
        found = COMPACT[lower]
    else:
        found = _CANONICAL.get(lower) or "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = found
    return found


def split_list(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and angle brackets."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    items, start, quoted, angle, i = [], 0, False, False, 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    if quoted:
        raise HeaderError("unterminated quoted string")
    items.append(value[start:].strip())
    if any(not item for item in items):
        raise HeaderError("empty list element")
    return items


def unquote(text: str) -> str:
    """Value of a quoted-string, or the text itself when it is not quoted."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner, out, i = text[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """Quoted-string form of text (CR and LF, which no quoted-pair can carry, are dropped)."""
    text = text.replace("\r", "").replace("\n", "")
    return '"' + _QUOTABLE_CTL.sub(lambda m: "\\" + m.group(0), text) + '"'


def _scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string that begins at start."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    raise HeaderError("unterminated quoted string")


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ';name=value;flag' header parameters (keys lower-cased)."""
    params: dict[str, str | None] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise HeaderError(f"expected ';' in parameters {text!r}")
        i += 1
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        name = text[i:j].strip()
        if not TOKEN.match(name):
            raise HeaderError(f"bad parameter name {name!r}")
        value: str | None = None
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == '"':
                end = _scan_quoted(text, j)
                value, j = text[j:end], end
            else:
                k = j
                while k < n and text[k] not in "; \t":
                    k += 1
                value, j = text[j:k], k
                if not _PARAM_VALUE.match(value):
                    raise HeaderError(f"bad parameter value {value!r}")
        params[name.lower()] = value
        i = j
    return params


def format_params(params: dict[str, str | None]) -> str:
    """Print header parameters back as ';name=value'."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class Via:
    """One Via header value."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The branch parameter (transaction id), if any."""
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:\[]+)(?:\s*:\s*([0-9]{1,5}))?\s*(.*)\Z", re.S)


def parse_via(value: str) -> Via:
    """Parse one Via value."""
    match = _VIA.match(value.strip())
    if not match:
        raise HeaderError(f"bad Via {value!r}")
    transport, host, port_text, rest = match.groups()
    if not is_host(host):
        raise HeaderError(f"bad Via host {value!r}")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise HeaderError(f"bad Via port {value!r}")
    return Via(transport.upper(), host, port, parse_params(rest))


@dataclass
class NameAddr:
    """A From, To, Contact, Route or Record-Route value: display name, URI and parameters."""

    uri: SipUri | AbsoluteUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The tag parameter, if any."""
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f"{quote(self.display)} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr or addr-spec with header parameters."""
    text = value.strip()
    display: str | None = None
    if "<" in text:
        if text.startswith('"'):
            end = _scan_quoted(text, 0)
            display = unquote(text[:end])
            rest = text[end:].lstrip()
            if not rest.startswith("<"):
                raise HeaderError(f"expected '<' after display name in {value!r}")
        else:
            lt = text.index("<")
            words = text[:lt].split()
            if any(not TOKEN.match(word) for word in words):
                raise HeaderError(f"bad display name in {value!r}")
            display = " ".join(words) or None
            rest = text[lt:]
        gt = rest.find(">")
        if gt < 0:
            raise HeaderError(f"unterminated '<' in {value!r}")
        uri_text, param_text = rest[1:gt], rest[gt + 1 :]
    else:
        if text.startswith('"'):
            raise HeaderError(f"display name without <URI> in {value!r}")
        # addr-spec: parameters after the URI belong to the header (RFC 3261 §20.10)
        uri_text, semi, param_text = text.partition(";")
        param_text = semi + param_text
        if "?" in uri_text or "," in uri_text:
            raise HeaderError(f"addr-spec with '?' or ',' must use <> in {value!r}")
    try:
        uri = parse_uri(uri_text.strip() if "<" not in text else uri_text)
    except UriError as exc:
        raise HeaderError(str(exc)) from None
    return NameAddr(uri, display, parse_params(param_text))


def parse_cseq(value: str) -> tuple[int, str]:
    """Parse a CSeq value into number and method."""
    parts = value.split()
    if len(parts) != 2 or not _DIGITS.match(parts[0]) or not TOKEN.match(parts[1]):
        raise HeaderError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise HeaderError(f"CSeq number too large {value!r}")
    return number, parts[1]


def parse_uint(value: str, name: str, limit: int) -> int:
    """Parse a non-negative decimal header value up to limit."""
    text = value.strip()
    if not _DIGITS.match(text) or int(text) > limit:
        raise HeaderError(f"bad {name} {value!r}")
    return int(text)
