"""DTMF out of band: RFC 4733 telephone-events in RTP, and SIP INFO bodies."""
from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "DIGITS", "DtmfReceiver", "dtmf_packets", "InfoDigit", "parse_info_dtmf", "EVENT_STEP_MS",
]

DIGITS = "0123456789*#ABCD"  # RFC 4733 event codes 0..15, in order
EVENT_STEP_MS = 50  # interval between packets of one event
_END_REPEATS = 3
_EVENT = struct.Struct("!BBH")


class DtmfReceiver:
    """Turns telephone-event payloads into digits, each reported exactly once.

    An event is identified by its RTP timestamp (all its packets share it), so
    retransmitted end packets and late updates of a reported event are ignored.
    The payload type number is the caller's business (negotiated, often 101).
    """

    def __init__(self) -> None:
        self._reported_ts: int | None = None  # event timestamp already reported
        self._pending: tuple[int, str] | None = None  # (timestamp, digit) begun, no end yet

    def feed(self, payload: bytes | memoryview, timestamp: int, marker: bool = False) -> list[str]:
        """Feed one telephone-event payload; returns the digits completed by it (usually 0 or 1)."""
        if len(payload) < 4:
            return []
        event, flags, _duration = _EVENT.unpack_from(payload, 0)
        if event >= len(DIGITS):  # flash, tones etc.: not digits
            return []
        if timestamp == self._reported_ts:
            return []
        out: list[str] = []
        pending = self._pending
        if pending is not None and pending[0] != timestamp:
            # A new event began while the previous one's end packets were all lost.
            out.append(pending[1])
            self._reported_ts = pending[0]
            self._pending = None
        digit = DIGITS[event]
        if flags & 0x80:
            out.append(digit)
            self._reported_ts = timestamp
            self._pending = None
        else:
            self._pending = (timestamp, digit)
        return out

    def flush(self) -> list[str]:
        """Report an event that began but never ended (call on stream timeout or hang-up)."""
        if self._pending is None:
            return []
        ts, digit = self._pending
        self._pending = None
        self._reported_ts = ts
        return [digit]


def dtmf_packets(digit: str, duration_ms: int = 100, volume: int = 10,
                 clock_rate: int = 8000) -> list[tuple[bytes, bool, bool]]:
    """Payloads for sending one digit: (payload, marker, same_timestamp) per packet.

    Send them EVENT_STEP_MS apart (the three end packets back to back is fine),
    all with the event's start timestamp: same_timestamp is False only on the
    first, meaning "stamp with the stream's current timestamp"; the rest reuse it.
    With RtpSender: next_packet(p, pt, samples=0, marker=m) for each, then
    skip(duration_ms * clock_rate // 1000, talkspurt=True) before audio resumes.
    """
    if len(digit) != 1 or digit.upper() not in DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    event = DIGITS.index(digit.upper())
    if not 0 <= volume <= 63:
        raise ValueError("volume is 0..63 (-dBm0)")
    total = duration_ms * clock_rate // 1000
    if not 0 < total <= 0xFFFF:
        raise ValueError(f"duration out of range: {duration_ms} ms")
    step = EVENT_STEP_MS * clock_rate // 1000
    packets: list[tuple[bytes, bool, bool]] = []
    elapsed = step
    while elapsed < total:
        packets.append((_EVENT.pack(event, volume, elapsed), not packets, bool(packets)))
        elapsed += step
    end = _EVENT.pack(event, 0x80 | volume, total)
    for _ in range(_END_REPEATS):
        packets.append((end, not packets, bool(packets)))
    return packets


class InfoDigit(NamedTuple):
    """A digit from a SIP INFO body, with its duration when the body gives one."""

    digit: str
    duration_ms: int | None


def parse_info_dtmf(content_type: str, body: str | bytes) -> InfoDigit | None:
    """Digit from an INFO with application/dtmf-relay or application/dtmf; None otherwise."""
    if isinstance(body, bytes):
        body = body.decode("ascii", "replace")
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/dtmf-relay":
        fields: dict[str, str] = {}
        for line in body.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()
        digit = _digit(fields.get("signal", ""))
        if digit is None:
            return None
        dur = fields.get("duration", "")
        return InfoDigit(digit, int(dur) if dur.isdigit() else None)
    if ctype == "application/dtmf":
        digit = _digit(body.strip())
        return None if digit is None else InfoDigit(digit, None)
    return None


def _digit(signal: str) -> str | None:
    """Normalise a Signal value: a digit character or an event code ("10" is *, "11" is #)."""
    s = signal.strip().upper()
    if len(s) == 1 and s in DIGITS:
        return s
    if s.isdigit() and int(s) < len(DIGITS):
        return DIGITS[int(s)]
    return None
