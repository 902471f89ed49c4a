"""SDP (RFC 4566) parsing, printing and media anchoring for the B2BUA (RFC 3264)."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Iterable

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# Static RTP payload types (RFC 3551) that may appear without an rtpmap.
STATIC_PAYLOADS = {"0": "PCMU/8000", "3": "GSM/8000", "4": "G723/8000", "8": "PCMA/8000",
                   "9": "G722/8000", "13": "CN/8000", "18": "G729/8000"}
# What an anchored SDP passes on from the other phone: the media format and the direction, nothing else.
# The box is the endpoint each phone talks to, so attributes that describe the other phone's identity or
# transport stay behind: a=tool, a=label, a=ssrc (the IVR hand-over changes the SSRC), a=msid, ICE
# candidates, crypto, rtcp-fb (feedback the relay does not take part in). See the README's "Pointing a phone at it".
_PASSED_ATTRIBUTES = frozenset({"rtpmap", "fmtp", "ptime", "maxptime", "sendrecv", "sendonly", "recvonly",
                                "inactive"})
# Attributes whose value starts with the payload type they describe.
_FORMAT_ATTRIBUTES = frozenset({"rtpmap", "fmtp", "rtcp-fb"})
_PLAIN_RTP = frozenset({"RTP/AVP", "RTP/AVPF"})
_LINE = re.compile(r"([a-z])=(.*)\Z", re.DOTALL)
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})


class SdpError(ValueError):
    """Malformed SDP, or an offer this box cannot anchor (answer 488)."""


@dataclass
class MediaDescription:
    """One m= section; c= and a= lines parsed, the rest kept as written."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None  # full c= value, e.g. "IN IP4 192.0.2.1"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)  # i=, b=, k= lines, "b=AS:64"
    port_count: int | None = None

    def attribute(self, name: str) -> str | None:
        """Value of the first a= attribute with that name ("" if it has none), or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def rtpmap(self) -> dict[str, str]:
        """Payload type -> encoding, e.g. {"0": "PCMU/8000"}, from a=rtpmap lines."""
        found: dict[str, str] = {}
        for key, value in self.attributes:
            if key == "rtpmap" and value:
                pt, _, encoding = value.partition(" ")
                if encoding.strip():
                    found.setdefault(pt, encoding.strip())
        return found

    def encoding(self, pt: str) -> str | None:
        """Encoding of one format: rtpmap first, then the static payload table."""
        return self.rtpmap().get(pt) or STATIC_PAYLOADS.get(pt)

    def codec_names(self) -> list[str]:
        """Encoding names of the formats in order (the payload type itself if unknown)."""
        mapping = self.rtpmap()
        names = []
        for pt in self.formats:
            encoding = mapping.get(pt) or STATIC_PAYLOADS.get(pt)
            names.append(encoding.split("/")[0] if encoding else pt)
        return names

    @property
    def direction(self) -> str:
        """Media-level direction; c=0.0.0.0 (RFC 2543 hold) counts as inactive unless sendonly."""
        declared = next((key for key, _ in self.attributes if key in DIRECTIONS), None)
        return _effective_direction(declared or "sendrecv", _address(self.connection))

    def lines(self) -> list[str]:
        """The section's lines in RFC 4566 order."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [" ".join(["m=" + self.media, port, self.proto, *self.formats])]
        out += [line for line in self.other_lines if line.startswith("i=")]
        if self.connection is not None:
            out.append("c=" + self.connection)
        out += [line for line in self.other_lines if not line.startswith("i=")]
        out += ["a=" + key + ("" if value is None else ":" + value) for key, value in self.attributes]
        return out


@dataclass
class SessionDescription:
    """A whole SDP body: session-level lines in their original order, then media sections."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # ("v", "0"), ("o", "..."), ...
    media: list[MediaDescription] = field(default_factory=list)

    def value(self, kind: str) -> str | None:
        """First session-level value of a line type, e.g. value("o")."""
        return next((text for key, text in self.lines if key == kind), None)

    def set_value(self, kind: str, text: str) -> None:
        """Replace the first session-level line of a type, or insert it in RFC 4566 order."""
        for i, (key, _) in enumerate(self.lines):
            if key == kind:
                self.lines[i] = (kind, text)
                return
        order = "vosiuepcbtrzka"
        rank = order.index(kind) if kind in order else len(order)
        at = next((i for i, (key, _) in enumerate(self.lines)
                   if (order.index(key) if key in order else len(order)) > rank), len(self.lines))
        self.lines.insert(at, (kind, text))

    @property
    def origin(self) -> str | None:
        """The o= value."""
        return self.value("o")

    @property
    def connection(self) -> str | None:
        """The session-level c= value."""
        return self.value("c")

    @property
    def attributes(self) -> list[tuple[str, str | None]]:
        """Session-level a= lines as (name, value)."""
        return [_split_attribute(text) for key, text in self.lines if key == "a"]

    def audio(self) -> MediaDescription | None:
        """First audio stream that is not rejected (port 0), or None."""
        return next((m for m in self.media if m.media == "audio" and m.port != 0), None)

    def connection_for(self, media: MediaDescription) -> str | None:
        """Address a stream's media goes to: media-level c= or else session-level c=."""
        return _address(media.connection or self.connection)

    def direction_of(self, media: MediaDescription) -> str:
        """Effective direction of a stream, with session-level a= and c= applied."""
        declared = next((key for key, _ in media.attributes if key in DIRECTIONS), None)
        if declared is None:
            declared = next((key for key, _ in self.attributes if key in DIRECTIONS), "sendrecv")
        return _effective_direction(declared, self.connection_for(media))

    def is_hold(self, media: MediaDescription) -> bool:
        """Whether this SDP puts the stream on hold (sendonly, inactive or c=0.0.0.0)."""
        return self.direction_of(media) in ("sendonly", "inactive")

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends."""
        out = [f"{key}={text}" for key, text in self.lines]
        for media in self.media:
            out += media.lines()
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")


def _address(connection: str | None) -> str | None:
    """Address part of a c= value, without any multicast TTL or count."""
    if connection is None:
        return None
    parts = connection.split()
    return parts[2].split("/")[0] if len(parts) >= 3 else None


def _effective_direction(declared: str, address: str | None) -> str:
    """Direction after RFC 2543 hold: the party at 0.0.0.0 cannot receive."""
    if address in _HOLD_ADDRESSES and declared != "sendonly":
        return "inactive"
    return declared


def _split_attribute(text: str) -> tuple[str, str | None]:
    """"rtpmap:0 PCMU/8000" -> ("rtpmap", "0 PCMU/8000"); "sendonly" -> ("sendonly", None)."""
    name, colon, value = text.partition(":")
    return (name, value) if colon else (name, None)


def _parse_connection(text: str) -> str:
    """Validate a c= value and return it unchanged."""
    parts = text.split()
    if len(parts) != 3:
        raise SdpError(f"bad c= line: {text!r}")
    return text


def _parse_media_line(text: str) -> MediaDescription:
    """Parse an m= value into an empty MediaDescription."""
    parts = text.split()
    if len(parts) < 3:
        raise SdpError(f"bad m= line: {text!r}")
    media, port_text, proto, *formats = parts
    port_text, slash, count_text = port_text.partition("/")
    if not port_text.isdigit() or (slash and not count_text.isdigit()):
        raise SdpError(f"non-numeric port in m= line: {text!r}")
    port = int(port_text)
    if port > 65535:
        raise SdpError(f"port out of range in m= line: {text!r}")
    if not formats and port != 0:
        raise SdpError(f"m= line without formats: {text!r}")
    return MediaDescription(media, port, proto, formats, port_count=int(count_text) if slash else None)


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; SdpError if it is malformed."""
    text = body.decode("utf-8", "surrogateescape") if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(text, str):
        raise SdpError("SDP must be bytes or text")
    sdp = SessionDescription()
    current: MediaDescription | None = None
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if not line:
            continue  # tolerate blank lines and a missing or doubled final CRLF
        match = _LINE.match(line)
        if match is None:
            raise SdpError(f"malformed SDP line: {line!r}")
        kind, value = match.groups()
        if not sdp.lines:
            if kind != "v" or value != "0":
                raise SdpError("SDP must start with v=0")
        elif kind == "v":
            raise SdpError("repeated v= line")
        if kind == "m":
            current = _parse_media_line(value)
            sdp.media.append(current)
        elif current is None:
            if kind == "c":
                _parse_connection(value)
            sdp.lines.append((kind, value))
        elif kind == "c" and current.connection is None:
            current.connection = _parse_connection(value)
        elif kind == "a":
            current.attributes.append(_split_attribute(value))
        else:
            current.other_lines.append(line)
    if not sdp.lines:
        raise SdpError("empty SDP")
    origin = sdp.value("o")
    if origin is None or len(origin.split()) != 6:
        raise SdpError("missing or malformed o= line")
    return sdp


def anchor(sdp: SessionDescription, address: str, port: int, session_id: int, version: int,
           allowed: Iterable[str] = ("PCMU", "PCMA", "telephone-event")) -> SessionDescription:
    """SDP for the other leg with the audio stream pointed at our relay; SdpError if none fits."""
    allowed_names = {name.lower() for name in allowed}
    chosen = next((m for m in sdp.media if _anchorable(m, allowed_names)), None)
    if chosen is None:
        raise SdpError("no audio stream with an allowed codec over plain RTP")
    addrtype = "IP6" if ":" in address else "IP4"
    our_connection = f"IN {addrtype} {address}"
    original_direction = sdp.direction_of(chosen)

    out = SessionDescription(
        lines=[(k, v) for k, v in sdp.lines
               if k != "a" or _split_attribute(v)[0] in _PASSED_ATTRIBUTES],
    )
    out.set_value("o", f"switchboard {session_id} {version} {our_connection}")
    out.set_value("c", our_connection)
    for media in sdp.media:
        if media is chosen:
            out.media.append(_anchor_audio(media, port, our_connection, allowed_names))
        else:
            # Rejected streams keep their m= line so the count matches (RFC 3264 §6).
            out.media.append(MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"]))
    audio = out.media[sdp.media.index(chosen)]
    if out.direction_of(audio) != original_direction:
        _set_direction(audio, original_direction)
    return out


def _anchorable(media: MediaDescription, allowed_names: set[str]) -> bool:
    """Whether a stream is audio over plain RTP with at least one allowed codec."""
    return (media.media == "audio" and media.port != 0 and media.proto.upper() in _PLAIN_RTP
            and bool(_kept_formats(media, allowed_names)))


def _kept_formats(media: MediaDescription, allowed_names: set[str]) -> list[str]:
    """Allowed formats in offer order; events only at a clock rate some kept codec uses."""
    kept = [pt for pt in media.formats
            if (media.encoding(pt) or "").split("/")[0].lower() in allowed_names]
    rates = {_rate(media.encoding(pt)) for pt in kept if not _is_event(media.encoding(pt))}
    return [pt for pt in kept if not _is_event(media.encoding(pt)) or _rate(media.encoding(pt)) in rates]


def _is_event(encoding: str | None) -> bool:
    """Whether an rtpmap encoding is RFC 4733 telephone-event."""
    return (encoding or "").split("/")[0].lower() == "telephone-event"


def _rate(encoding: str | None) -> str:
    """Clock rate part of an rtpmap encoding, "" if absent."""
    parts = (encoding or "").split("/")
    return parts[1] if len(parts) > 1 else ""


def _anchor_audio(media: MediaDescription, port: int, our_connection: str,
                  allowed_names: set[str]) -> MediaDescription:
    """Copy of the audio stream on our address and port, with only allowed codecs."""
    formats = _kept_formats(media, allowed_names)
    keep = set(formats)
    attributes = []
    for key, value in media.attributes:
        if key not in _PASSED_ATTRIBUTES:
            continue
        if key in _FORMAT_ATTRIBUTES and (value or "").split(" ")[0] not in keep | {"*"}:
            continue
        attributes.append((key, value))
    return MediaDescription(
        media.media, port, media.proto, formats,
        connection=our_connection if media.connection is not None else None,
        attributes=attributes, other_lines=copy.copy(media.other_lines),
    )


def _set_direction(media: MediaDescription, direction: str) -> None:
    """Make a stream's direction explicit, replacing any direction attribute in place."""
    for i, (key, _) in enumerate(media.attributes):
        if key in DIRECTIONS:
            media.attributes[i] = (direction, None)
            return
    media.attributes.append((direction, None))
