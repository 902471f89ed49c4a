"""SIP and other URIs: parsing, printing and RFC 3261 §19.1.4 comparison."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
# Underscores are not in RFC 3261's hostname, but real phones put Windows host names in their Via.
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?)*\.?\Z")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
# Characters allowed unescaped in the user part, params and headers (RFC 3261 §25.1).
_USER_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})*\Z")
_PASSWORD_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z")
_PARAM_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+\Z")
_HEADER_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*\Z")
_PORT = re.compile(r":[0-9]{1,5}\Z")
# Never valid unescaped anywhere in a URI: controls, space, <, > and ".
_NOT_URIC = re.compile(r"[\x00-\x20\x7f<>\"]")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# RFC 2396 reserved characters, and '%' itself: escaped, they differ from themselves unescaped.
_KEEP_ESCAPED = frozenset(b";/?:@&=+$,%")

# Parameters that must match when present in either URI (RFC 3261 §19.1.4).
_SIGNIFICANT = frozenset({b"user", b"ttl", b"method", b"maddr", b"transport"})


class UriError(ValueError):
    """A URI that does not follow the RFC 3261 grammar."""


class UnsupportedScheme(UriError):
    """A well-formed URI whose scheme the box does not route (answered 416)."""


def unescape(text: str) -> str:
    """Decode %HH escapes, keeping undecodable bytes as surrogates."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _comparable(text: str) -> bytes:
    """Form for RFC 3261 §19.1.4 comparison: only unreserved characters equal their escapes."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"%" not in raw:
        return raw

    def decode(match: re.Match[bytes]) -> bytes:
        byte = int(match.group(1), 16)
        return b"%%%02X" % byte if byte in _KEEP_ESCAPED else bytes((byte,))

    return _ESCAPE.sub(decode, raw)


@dataclass
class SipUri:
    """A sip: or sips: URI with its parts kept as written."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def host_lower(self) -> str:
        """Host for comparison: case-insensitive."""
        return self.host.lower()

    @property
    def transport(self) -> str:
        """Transport parameter, lower case, 'udp' when absent."""
        value = self.param("transport")
        return value.lower() if value else ("tls" if self.scheme == "sips" else "udp")

    @property
    def user_unescaped(self) -> str | None:
        """User part with escapes decoded."""
        return None if self.user is None else unescape(self.user)

    def param(self, name: str) -> str | None:
        """Value of a URI parameter, by case-insensitive name (escaped names match too)."""
        key = self._param_key(name)
        return None if key is None else self.params[key]

    def has_param(self, name: str) -> bool:
        """Whether a URI parameter is present, valued or not."""
        return self._param_key(name) is not None

    def _param_key(self, name: str) -> str | None:
        lower = name.lower()
        if lower in self.params:
            return lower
        wanted = _comparable(lower).lower()
        return next((k for k in self.params if "%" in k and _comparable(k).lower() == wanted), None)

    def host_port(self) -> tuple[str, int]:
        """Host and port to send to, with the default port applied."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host, self.port or (5061 if self.scheme == "sips" else 5060)

    def with_params(self, **changes: str | None) -> "SipUri":
        """Copy with some parameters set or added."""
        params = dict(self.params)
        params.update({k.lower(): v for k, v in changes.items()})
        return SipUri(self.scheme, self.host, self.user, self.password, self.port, params, dict(self.headers))

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params.items():
            out += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        return uri_equal(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass
class AbsoluteUri:
    """A URI of another scheme (tel:, mailto:, ...), kept opaque."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        if not item:
            raise UriError("empty URI parameter")
        name, eq, value = item.partition("=")
        if not _PARAM_CHARS.match(name) or (eq and not _PARAM_CHARS.match(value)):
            raise UriError(f"bad URI parameter {item!r}")
        params[name.lower()] = value if eq else None
    return params


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or not name or not _HEADER_CHARS.match(name) or not _HEADER_CHARS.match(value):
            raise UriError(f"bad URI header {item!r}")
        headers[name] = value
    return headers


def is_host(text: str) -> bool:
    """Whether text is a hostname, IPv4 address or IPv6 reference (no port)."""
    try:
        return _parse_hostport(text)[1] is None
    except UriError:
        return False


def _parse_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UriError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if not _IPV6.match(host):
            raise UriError(f"bad IPv6 reference {host!r}")
    else:
        host, _, port_text = text.partition(":")
        rest = ":" + port_text if _ else ""
        if _IPV4.match(host):
            if any(int(part) > 255 for part in host.split(".")):
                raise UriError(f"bad IPv4 address {host!r}")
        elif not _HOSTNAME.match(host):
            raise UriError(f"bad host {host!r}")
    if not rest:
        return host, None
    if not _PORT.match(rest):
        raise UriError(f"bad port in {text!r}")
    port = int(rest[1:])
    if not 0 < port < 65536:
        raise UriError(f"port out of range in {text!r}")
    return host, port


def parse_sip_uri(text: str) -> SipUri:
    """Parse a sip: or sips: URI strictly; raise UriError if malformed."""
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips"):
        raise UriError(f"not a SIP URI: {text!r}")
    if not rest or _NOT_URIC.search(rest):
        raise UriError(f"bad characters in URI {text!r}")
    user = password = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
            if not _PASSWORD_CHARS.match(pw):
                raise UriError(f"bad password in {text!r}")
        if not user or not _USER_CHARS.match(user):
            raise UriError(f"bad user part in {text!r}")
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport)
    params = _parse_params(param_text) if semi else {}
    headers = _parse_headers(header_text) if qmark else {}
    return SipUri(scheme, host, user, password, port, params, headers)


def parse_uri(text: str) -> SipUri | AbsoluteUri:
    """Parse any URI: SIP ones fully, others only checked for a valid scheme."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.match(scheme) or not rest:
        raise UriError(f"not a URI: {text!r}")
    if scheme.lower() in ("sip", "sips"):
        return parse_sip_uri(text)
    if _NOT_URIC.search(rest):
        raise UriError(f"bad characters in URI {text!r}")
    return AbsoluteUri(scheme.lower(), rest)


def uri_equal(a: SipUri, b: SipUri) -> bool:
    """Compare two SIP URIs as RFC 3261 §19.1.4 says."""
    if a.scheme != b.scheme or a.host_lower != b.host_lower or a.port != b.port:
        return False
    # userinfo is case-sensitive; everything else compares case-insensitively
    if _optional(a.user) != _optional(b.user) or _optional(a.password or None) != _optional(b.password or None):
        return False
    pa, pb = _comparable_params(a), _comparable_params(b)
    for name in pa.keys() | pb.keys():
        if name not in pa or name not in pb:
            if name in _SIGNIFICANT:
                return False
            continue
        if pa[name] != pb[name]:
            return False
    ha = {_comparable(k).lower(): _comparable(v) for k, v in a.headers.items()}
    hb = {_comparable(k).lower(): _comparable(v) for k, v in b.headers.items()}
    return ha == hb


def _optional(text: str | None) -> bytes | None:
    return None if text is None else _comparable(text)


def _comparable_params(uri: SipUri) -> dict[bytes, bytes | None]:
    return {
        _comparable(k).lower(): None if v is None else _comparable(v).lower()
        for k, v in uri.params.items()
    }
