"""V.253 DLE framing of the voice stream: escaping audio and decoding DLE-coded events."""
from __future__ import annotations

from dataclasses import dataclass, field

DLE = 0x10
ETX = 0x03
SUB = 0x1A

END_TX = bytes([DLE, ETX])        # DTE -> DCE: end of transmitted voice data (+VTX)
END_DUPLEX = bytes([DLE]) + b"^"  # DTE -> DCE: leave full-duplex (+VTR) for command mode
ABORT_RX = bytes([DLE]) + b"!"    # DTE -> DCE: abort receive (+VRX)

DTMF_CODES = "0123456789*#ABCD"

# V.253 table 14 (DCE -> DTE) plus the DTE -> DCE codes the simulator must understand.
EVENT_NAMES = {
    "a": "answer-tone", "b": "busy", "c": "fax-calling", "d": "dial-tone", "e": "data-calling",
    "f": "bell-answer-tone", "h": "handset-on-hook", "H": "handset-off-hook", "l": "loop-break",
    "L": "loop-reversal", "o": "overrun", "q": "quiet", "r": "ringback", "R": "ring",
    "s": "silence", "t": "handset-off-hook", "u": "underrun", "/": "dtmf-start", "~": "dtmf-end",
    "^": "end-duplex", "!": "abort",
}
HANGUP_EVENTS = frozenset({"b", "l", "h"})  # the far end (or the line) went away


@dataclass(frozen=True)
class DleEvent:
    """One DLE-coded event: a DTMF digit or a tone/line condition."""

    code: str

    @property
    def digit(self) -> str | None:
        """The DTMF digit, if this event is one."""
        return self.code if self.code in DTMF_CODES else None

    @property
    def name(self) -> str:
        """A readable name for the event."""
        return "dtmf" if self.digit else EVENT_NAMES.get(self.code, "unknown")


@dataclass
class DleResult:
    """What one chunk of the stream held: audio, events, and whether the stream ended (DLE ETX)."""

    audio: bytes = b""
    events: list[DleEvent] = field(default_factory=list)
    ended: bool = False
    rest: bytes = b""  # bytes after DLE ETX: back in command mode


def escape(data: bytes) -> bytes:
    """Escape audio for the wire: every 0x10 is doubled."""
    return data.replace(b"\x10", b"\x10\x10")


def encode_event(code: str) -> bytes:
    """A DLE-coded event as sent on the wire."""
    return bytes([DLE]) + code.encode("ascii")


class DleDecoder:
    """Splits a DLE-framed stream into audio and events; keeps state across chunks."""

    def __init__(self) -> None:
        self._pending_dle = False

    def feed(self, data: bytes) -> DleResult:
        """Decode a chunk; after DLE ETX the rest is returned untouched."""
        out = bytearray()
        result = DleResult()
        i = 0
        n = len(data)
        while i < n:
            if not self._pending_dle:
                j = data.find(DLE, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j + 1
                self._pending_dle = True
                continue
            self._pending_dle = False
            code = data[i]
            i += 1
            if code == DLE:
                out.append(DLE)
            elif code == SUB:
                out += b"\x10\x10"
            elif code == ETX:
                result.ended = True
                result.rest = bytes(data[i:])
                break
            else:
                result.events.append(DleEvent(chr(code)))
        result.audio = bytes(out)
        return result
