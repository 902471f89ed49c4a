"""HTTP Digest authentication for SIP (RFC 7616, RFC 8760): server and client side."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

_HASHES: dict[str, Callable[..., Any]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# Client-side preference when a server offers several challenges (RFC 8760 §2.4).
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BARE_VALUE = re.compile(r"[^\s,\"=\\]+")
_SPACE = re.compile(r"[ \t]*")

_NC = re.compile(r"[0-9A-Fa-f]{8}\Z")
_HEX = re.compile(r"[0-9A-Fa-f]+\Z")

_STAMP = struct.Struct(">Q")
_RANDOM_BYTES = 16
_MAC_BYTES = 32
_NONCE_BYTES = _STAMP.size + _RANDOM_BYTES + _MAC_BYTES
_NONCE_CHARS = -(-_NONCE_BYTES * 4 // 3)
_NONCE_TEXT = re.compile(r"[A-Za-z0-9_-]{%d}\Z" % _NONCE_CHARS)



def _skip_space(text: str, pos: int) -> int:
    """The offset of the first non-blank character at or after pos (_SPACE matches the empty string too)."""
    match = _SPACE.match(text, pos)
    return match.end() if match is not None else pos

def _split_algorithm(algorithm: str | None) -> tuple[str, bool]:
    """Canonical base algorithm and whether it is a -sess variant; ValueError if unknown."""
    token = "MD5" if algorithm is None else algorithm.upper()
    sess = token.endswith("-SESS")
    base = token.removesuffix("-SESS")
    if base not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return base, sess


def _h(base: str, text: str) -> str:
    """Hex hash of UTF-8 text with the named algorithm."""
    return _HASHES[base](text.encode("utf-8", "surrogateescape")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """HA1 = H(username:realm:password) as lowercase hex, for "MD5" or "SHA-256"."""
    base, sess = _split_algorithm(algorithm)
    if sess:
        raise ValueError("a -sess HA1 depends on the nonce; store the plain one")
    return _h(base, f"{username}:{realm}:{password}")


def _quote(text: str) -> str:
    """Quoted-string with backslash escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_FAST_PARAM = re.compile(r'[ \t]*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)[ \t]*=[ \t]*'
                         r'(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9!#$%&\'*+.^_`|~/:@?-]+))[ \t]*(?:,|\Z)')


def _parse_fast(text: str) -> tuple[str, dict[str, str]] | None:
    """The common, well-formed case in a few regex steps; None sends the value to the careful parser."""
    scheme, space, rest = text.partition(" ")
    if not space or not _TOKEN.fullmatch(scheme):
        return None
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    while pos < end:
        match = _FAST_PARAM.match(rest, pos)
        if match is None:
            return None
        name, quoted, bare = match.groups()
        name = name.lower()
        if name in params:
            return None
        params[name] = bare if quoted is None else (_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted)
        pos = match.end()
    return scheme, params


def parse_credentials(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into scheme and lower-cased auth-params."""
    if not isinstance(value, str):
        raise ValueError("credentials must be text")
    text = value.strip()
    fast = _parse_fast(text)
    if fast is not None:
        return fast
    match = _TOKEN.match(text)
    if match is None:
        raise ValueError("missing auth scheme")
    scheme, pos = match.group(), match.end()
    if pos < len(text) and text[pos] not in " \t":
        raise ValueError("auth scheme must be followed by whitespace")
    params: dict[str, str] = {}
    expect_separator = False
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            return scheme, params
        if text[pos] == ",":
            # Empty list elements are allowed (RFC 7230 §7).
            pos, expect_separator = pos + 1, False
            continue
        if expect_separator:
            raise ValueError(f"expected ',' at offset {pos}")
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"expected a parameter name at offset {pos}")
        name = match.group().lower()
        pos = _skip_space(text, match.end())
        if pos >= len(text) or text[pos] != "=":
            raise ValueError(f"parameter {name!r} has no value")
        pos = _skip_space(text, pos + 1)
        if pos < len(text) and text[pos] == '"':
            param, pos = _read_quoted(text, pos)
        else:
            match = _BARE_VALUE.match(text, pos)
            if match is None:
                raise ValueError(f"parameter {name!r} has an empty or malformed value")
            param, pos = match.group(), match.end()
        if name in params:
            raise ValueError(f"parameter {name!r} repeated")
        params[name] = param
        expect_separator = True


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Unescaped content of the quoted-string starting at pos, and the offset after it."""
    match = _QUOTED.match(text, pos)
    if match is None:
        raise ValueError("unterminated quoted string")
    content = match.group(1)
    return (_ESCAPE.sub(r"\1", content) if "\\" in content else content), match.end()


class NonceManager:
    """Stateless HMAC-signed nonces plus bounded nonce-count replay tracking."""

    def __init__(self, secret: bytes | None = None, lifetime: float = 300.0,
                 clock: Callable[[], float] = time.time, max_tracked: int = 10_000) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        self.lifetime = lifetime
        self._clock = clock
        self._max_tracked = max_tracked
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (stamp, last nc)
        self._forgotten_upto = -1  # newest stamp among evicted nonces
        # With a persisted secret, nonces from before a restart still verify, but
        # their nc history is gone: treat them as forgotten so they cannot be replayed.
        self._started = int(clock() * 1000)
        self._last_stamp: tuple[str | None, int | None] = (None, None)
        self._lock = threading.Lock()

    def _mac(self, body: bytes) -> bytes:
        """HMAC-SHA256 over timestamp and random part."""
        return hmac.digest(self._secret, body, "sha256")

    def issue(self) -> str:
        """A fresh nonce carrying its issue time in milliseconds."""
        stamp = max(0, int(self._clock() * 1000))
        if stamp < self._started:
            # The wall clock stepped back: our own new nonces must not look pre-start.
            with self._lock:
                self._started = min(self._started, stamp)
        body = _STAMP.pack(stamp) + secrets.token_bytes(_RANDOM_BYTES)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def _stamp(self, nonce: str) -> int | None:
        """Issue time (ms) of a nonce this box signed, or None."""
        # One verify asks up to three times about the same nonce: remember the last answer.
        # A single tuple, so another thread never sees a nonce paired with another's stamp.
        last = self._last_stamp
        if last[0] == nonce:
            return last[1]
        stamp = self._decode_stamp(nonce)
        self._last_stamp = (nonce, stamp)
        return stamp

    def _decode_stamp(self, nonce: str) -> int | None:
        if not isinstance(nonce, str) or not _NONCE_TEXT.match(nonce):
            return None
        padded = nonce + "=" * (-len(nonce) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded)
        except (binascii.Error, ValueError):
            return None
        # Spare low bits of the last character would let several strings decode to
        # the same nonce and dodge the per-string nc tracking.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != nonce:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return _STAMP.unpack_from(body)[0]

    def check(self, nonce: str) -> Literal["ok", "stale", "invalid"]:
        """Whether a nonce is ours and still fresh."""
        stamp = self._stamp(nonce)
        if stamp is None:
            return "invalid"
        age = self._clock() - stamp / 1000
        # A nonce from the future only means the wall clock stepped back (no RTC on
        # a Pi); tolerate up to one lifetime of it rather than rejecting outright.
        return "ok" if -self.lifetime <= age <= self.lifetime else "stale"

    def forgotten(self, nonce: str) -> bool:
        """True if the nc history of this nonce may have been evicted (treat as stale)."""
        stamp = self._stamp(nonce)
        if stamp is None:
            return True
        with self._lock:
            return nonce not in self._seen and self._older_than_memory(stamp)

    def _older_than_memory(self, stamp: int) -> bool:
        """Whether a nonce's nc history could predate what this manager remembers."""
        return stamp < self._started or stamp <= self._forgotten_upto

    def check_nc(self, nonce: str, nc: int) -> bool:
        """Accept nc only if it is higher than any seen before with this nonce."""
        stamp = self._stamp(nonce)
        if stamp is None or not 0 < nc <= 0xFFFFFFFF:
            return False
        with self._lock:
            entry = self._seen.get(nonce)
            if entry is None:
                if self._older_than_memory(stamp):
                    return False
            elif nc <= entry[1]:
                return False
            self._seen[nonce] = (stamp, nc)
            self._seen.move_to_end(nonce)
            while len(self._seen) > self._max_tracked:
                _, (old_stamp, _) = self._seen.popitem(last=False)
                self._forgotten_upto = max(self._forgotten_upto, old_stamp)
            return True


@dataclass
class AuthResult:
    """Outcome of checking one Authorization header."""

    ok: bool
    username: str | None
    stale: bool = False


class DigestAuthenticator:
    """Server side: issue challenges and verify credentials against stored HA1s."""

    def __init__(self, realm: str, lookup_ha1: Callable[[str, str], str | None],
                 nonces: NonceManager | None = None,
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5")) -> None:
        canonical = [_canonical(a) for a in algorithms]
        if not canonical:
            raise ValueError("at least one digest algorithm is needed")
        self.realm = realm
        self._lookup = lookup_ha1
        self.nonces = nonces if nonces is not None else NonceManager()
        # Challenges go out in the order given: many phones (and SIPp) read only the first one.
        self.algorithms = tuple(dict.fromkeys(canonical))
        self._opaque = secrets.token_urlsafe(16)
        # Unknown users are checked against this so they cost and answer like a wrong password.
        dummy_password = secrets.token_hex(16)
        self._dummy = {b: ha1("\x00unknown", realm, dummy_password, b) for b in _HASHES}

    def challenges(self, stale: bool = False) -> list[str]:
        """WWW-Authenticate/Proxy-Authenticate values, in the configured order."""
        nonce = self.nonces.issue()
        tail = ", stale=true" if stale else ""
        return [f"Digest realm={_quote(self.realm)}, nonce=\"{nonce}\", opaque=\"{self._opaque}\", "
                f"algorithm={algorithm}, qop=\"auth\"{tail}" for algorithm in self.algorithms]

    def verify(self, method: str, auth_value: str, request_uri: str | None = None) -> AuthResult:
        """Check credentials; never raises on malformed input."""
        try:
            scheme, params = parse_credentials(auth_value)
        except ValueError:
            return AuthResult(False, None)
        username = params.get("username")
        fail = AuthResult(False, username)
        if scheme.lower() != "digest" or username is None or not isinstance(method, str):
            return fail
        nonce, uri, response = params.get("nonce"), params.get("uri"), params.get("response")
        if params.get("realm") != self.realm or not nonce or uri is None or not response:
            return fail
        if request_uri is not None and uri != request_uri:
            return fail
        if params.get("userhash", "false").lower() != "false":
            return fail
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in {a.upper() for a in self.algorithms}:
            return fail
        base, sess = _split_algorithm(algorithm)
        qop, nc, cnonce = params.get("qop"), params.get("nc"), params.get("cnonce")
        if qop is not None:
            if qop.lower() != "auth" or nc is None or not _NC.match(nc) or not cnonce:
                return fail
        elif sess:
            return fail  # -sess needs a cnonce
        if not _HEX.match(response):
            return fail
        status = self.nonces.check(nonce)
        if status == "invalid":
            return fail

        stored = self._lookup(username, base)
        known = stored is not None
        key = stored.lower() if stored is not None else self._dummy[base]
        if sess:
            key = _h(base, f"{key}:{nonce}:{cnonce}")
        expected = _expected_response(base, key, method, uri, nonce, qop, nc, cnonce)
        matched = hmac.compare_digest(expected.encode("ascii"), response.lower().encode("ascii"))
        if not (matched and known):
            return fail
        # Only a correct response earns stale=true (RFC 7616 §3.3), so it never
        # hides a password guess from the ban list.
        if status == "stale":
            return AuthResult(False, username, stale=True)
        if qop is not None:
            if self.nonces.forgotten(nonce) or not self.nonces.check_nc(nonce, int(nc or "0", 16)):
                return AuthResult(False, username, stale=True)
        return AuthResult(True, username)


def _canonical(algorithm: str) -> str:
    """RFC spelling of a supported algorithm name."""
    base, sess = _split_algorithm(algorithm)
    return base + ("-sess" if sess else "")


def _expected_response(base: str, key: str, method: str, uri: str, nonce: str,
                       qop: str | None, nc: str | None, cnonce: str | None) -> str:
    """Request-digest from HA1 (already -sess adjusted) per RFC 7616 §3.4.1."""
    ha2 = _h(base, f"{method}:{uri}")
    if qop is None:
        return _h(base, f"{key}:{nonce}:{ha2}")
    return _h(base, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def pick_challenge(values: Iterable[str]) -> str | None:
    """The challenge value build_authorization should answer, strongest algorithm first."""
    best: tuple[int, str] | None = None
    for value in values:
        try:
            scheme, params = parse_credentials(value)
        except ValueError:
            continue
        algorithm = params.get("algorithm", "MD5").upper()
        if scheme.lower() != "digest" or algorithm not in _PREFERENCE:
            continue
        if params.get("qop") is not None and "auth" not in _qop_options(params["qop"]):
            continue
        rank = _PREFERENCE.index(algorithm)
        if best is None or rank < best[0]:
            best = (rank, value)
    return None if best is None else best[1]


def _qop_options(value: str) -> list[str]:
    """Tokens of a challenge's qop list."""
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def build_authorization(challenge_value: str, method: str, uri: str, username: str,
                        password: str, nc: int = 1, cnonce: str | None = None) -> str:
    """Authorization/Proxy-Authorization value answering a Digest challenge."""
    scheme, params = parse_credentials(challenge_value)
    if scheme.lower() != "digest":
        raise ValueError(f"unsupported auth scheme {scheme!r}")
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or not nonce:
        raise ValueError("challenge lacks realm or nonce")
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError("nc out of range")
    written_algorithm = params.get("algorithm")
    base, sess = _split_algorithm(written_algorithm)
    qop: str | None = None
    if params.get("qop") is not None:
        if "auth" not in _qop_options(params["qop"]):
            raise ValueError(f"unsupported qop {params['qop']!r}")
        qop = "auth"
    if cnonce is None and (qop or sess):
        cnonce = secrets.token_hex(16)
    nc_text = f"{nc:08x}"
    key = ha1(username, realm, password, base)
    if sess:
        key = _h(base, f"{key}:{nonce}:{cnonce}")
    response = _expected_response(base, key, method, uri, nonce, qop,
                                  nc_text if qop else None, cnonce if qop else None)
    parts = [f"username={_quote(username)}", f"realm={_quote(realm)}", f"nonce={_quote(nonce)}",
             f"uri={_quote(uri)}", f"response=\"{response}\""]
    if written_algorithm is not None:
        parts.append(f"algorithm={written_algorithm}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce or '')}"]
    elif sess:
        parts.append(f"cnonce={_quote(cnonce or '')}")
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    return "Digest " + ", ".join(parts)
