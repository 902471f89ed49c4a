"""SDP for calls the box terminates itself (IVR, prompts): pick a codec, answer, offer (RFC 3264)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .sdp import SdpError, SessionDescription

__all__ = ["MediaChoice", "choose", "local_answer", "local_offer", "DEFAULT_EVENT_PT", "BOX_CODECS"]

BOX_CODECS = ("PCMU", "PCMA")
DEFAULT_EVENT_PT = 101
_STATIC = {"PCMU": 0, "PCMA": 8}


@dataclass(frozen=True)
class MediaChoice:
    """What both ends agreed for the box's end of a leg."""

    codec: str                 # "PCMU" or "PCMA"
    payload_type: int          # as negotiated (0 or 8 for G.711)
    event_pt: int | None       # telephone-event payload type, or None when the peer has none
    host: str | None           # where the peer wants media (None for hold or a host name)
    port: int
    direction: str = "sendrecv"


def choose(sdp: SessionDescription, prefer: tuple[str, ...] = BOX_CODECS) -> MediaChoice:
    """The first G.711 codec in the peer's order, with its telephone-event at 8 kHz; SdpError if none."""
    audio = sdp.audio()
    if audio is None or audio.proto.upper() not in ("RTP/AVP", "RTP/AVPF"):
        raise SdpError("no audio stream over plain RTP")
    codec: tuple[str, int] | None = None
    event_pt: int | None = None
    for pt in audio.formats:
        encoding = (audio.encoding(pt) or "").split("/")
        name = encoding[0].upper()
        rate = encoding[1] if len(encoding) > 1 else ""
        if not pt.isdigit():
            continue
        if codec is None and name in prefer and rate in ("8000", ""):
            codec = (name, int(pt))
        elif name == "TELEPHONE-EVENT" and rate == "8000" and event_pt is None:
            event_pt = int(pt)
    if codec is None:
        raise SdpError("no G.711 codec (PCMU or PCMA) offered")
    host = sdp.connection_for(audio)
    if host in ("0.0.0.0", "::") or host is None or not _is_ip(host):
        host = None
    return MediaChoice(codec[0], codec[1], event_pt, host, audio.port, sdp.direction_of(audio))


def local_answer(choice: MediaChoice, address: str, port: int, session_id: int, version: int) -> bytes:
    """The box's answer: one codec, plus telephone-event if the offer had it, mirroring hold."""
    reply = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(
        choice.direction, "sendrecv")
    return _build(address, port, session_id, version, [(choice.payload_type, choice.codec)],
                  choice.event_pt, reply)


def local_offer(address: str, port: int, session_id: int, version: int,
                codecs: tuple[str, ...] = BOX_CODECS, event_pt: int | None = DEFAULT_EVENT_PT,
                payload_types: dict[str, int] | None = None) -> bytes:
    """An offer from the box: the given G.711 codecs, and telephone-event unless event_pt is None."""
    pts = payload_types or {}
    return _build(address, port, session_id, version, [(pts.get(c, _STATIC[c]), c) for c in codecs],
                  event_pt, "sendrecv")


def _build(address: str, port: int, session_id: int, version: int, codecs: list[tuple[int, str]],
           event_pt: int | None, direction: str) -> bytes:
    addrtype = "IP6" if ":" in address else "IP4"
    formats = [str(pt) for pt, _ in codecs] + ([str(event_pt)] if event_pt is not None else [])
    lines = [
        "v=0",
        f"o=switchboard {session_id} {version} IN {addrtype} {address}",
        "s=switchboard",
        f"c=IN {addrtype} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(formats)}",
    ]
    lines += [f"a=rtpmap:{pt} {name}/8000" for pt, name in codecs]
    if event_pt is not None:
        lines += [f"a=rtpmap:{event_pt} telephone-event/8000", f"a=fmtp:{event_pt} 0-15"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
