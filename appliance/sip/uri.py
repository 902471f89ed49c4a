"""SIP and other URIs: parsing, printing and RFC 3261 §19.1.4 comparison."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?\Z")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
# Characters allowed unescaped in the user part, params and headers (RFC 3261 §25.1).
_USER_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})*\Z")
_PASSWORD_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z")
_PARAM_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+\Z")
_HEADER_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*\Z")

# Parameters that must match when present in either URI (RFC 3261 §19.1.4).
_SIGNIFICANT = ("user", "ttl", "method", "maddr", "transport")


class UriError(ValueError):
    """A URI that does not follow the RFC 3261 grammar."""


class UnsupportedScheme(UriError):
    """A well-formed URI whose scheme the box does not route (answered 416)."""


def unescape(text: str) -> str:
    """Decode %HH escapes, keeping undecodable bytes as surrogates."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


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
        """Value of a URI parameter, by case-insensitive name."""
        return self.params.get(name.lower())

    def has_param(self, name: str) -> bool:
        """Whether a URI parameter is present, valued or not."""
        return name.lower() in self.params

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
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
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
    if not rest or any(c in rest for c in " \t\r\n<>\""):
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
    if any(c in rest for c in " \t\r\n<>\""):
        raise UriError(f"bad characters in URI {text!r}")
    return AbsoluteUri(scheme.lower(), rest)


def uri_equal(a: SipUri, b: SipUri) -> bool:
    """Compare two SIP URIs as RFC 3261 §19.1.4 says."""
    if a.scheme != b.scheme or a.host_lower != b.host_lower or a.port != b.port:
        return False
    if a.user_unescaped != b.user_unescaped:
        return False
    if (a.password and unescape(a.password)) != (b.password and unescape(b.password)):
        return False
    for name in set(a.params) | set(b.params):
        in_a, in_b = name in a.params, name in b.params
        if not (in_a and in_b):
            if name in _SIGNIFICANT:
                return False
            continue
        va, vb = a.params[name], b.params[name]
        if (va is None) != (vb is None) or (va and vb and unescape(va).lower() != unescape(vb).lower()):
            return False
    ha = {k.lower(): unescape(v) for k, v in a.headers.items()}
    hb = {k.lower(): unescape(v) for k, v in b.headers.items()}
    return ha == hb
