"""RTP (RFC 3550) header parsing without copying, and a sender for one outgoing stream."""
from __future__ import annotations

import secrets
import struct
from typing import Callable, NamedTuple

__all__ = ["RtpHeader", "RtpError", "parse_rtp", "RtpSender", "StreamSplicer", "HEADER_SIZE"]

HEADER_SIZE = 12
_FIXED = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")


class RtpError(ValueError):
    """Not a well-formed RTP version 2 packet."""


class RtpHeader(NamedTuple):
    """Decoded RTP header; the payload is packet[payload_offset:payload_end]."""

    version: int
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload_offset: int
    payload_end: int  # excludes RTP padding

    def payload(self, packet: memoryview) -> memoryview:
        """View of the payload inside packet (no copy; valid as long as packet is)."""
        return packet[self.payload_offset:self.payload_end]


def parse_rtp(packet: memoryview | bytes | bytearray) -> RtpHeader:
    """Parse the header of one RTP packet; raises RtpError for non-v2 or truncated packets."""
    n = len(packet)
    if n < HEADER_SIZE:
        raise RtpError(f"packet too short ({n} bytes)")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(packet, 0)
    version = b0 >> 6
    if version != 2:
        raise RtpError(f"RTP version {version}")
    cc = b0 & 0x0F
    offset = HEADER_SIZE + 4 * cc
    extension = bool(b0 & 0x10)
    if extension:
        if n < offset + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", packet, offset + 2)
        offset += 4 + 4 * words
    if offset > n:
        raise RtpError("header longer than packet")
    end = n
    padding = bool(b0 & 0x20)
    if padding:
        pad = packet[n - 1]
        if pad == 0 or offset + pad > n:
            raise RtpError(f"bad padding length {pad}")
        end -= pad
    return RtpHeader(2, padding, extension, cc, bool(b1 & 0x80), b1 & 0x7F,
                     seq, ts, ssrc, offset, end)


class RtpSender:
    """Numbers packets of one outgoing stream: fixed SSRC, continuous seq and timestamp.

    The stream stays one stream to the phone whatever feeds it (prompt, relayed
    person, tones): only payload and payload type change between sources.
    """

    def __init__(self, ssrc: int | None = None, seq: int | None = None,
                 timestamp: int | None = None) -> None:
        # Random initial values as RFC 3550 recommends (known-plaintext, and a
        # restarted stream is not mistaken for the old one).
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc & 0xFFFFFFFF
        self.seq = secrets.randbits(16) if seq is None else seq & 0xFFFF
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self._mark_next = True  # the first packet of a stream starts a talkspurt
        # True when a StreamSplicer sent the last packet: timestamp is then that packet's, not the next one's.
        self.relayed = False

    def start_talkspurt(self) -> None:
        """Set the marker bit on the next packet (new source or end of silence)."""
        self._mark_next = True

    def skip(self, samples: int, talkspurt: bool = True) -> None:
        """Advance the timestamp over samples not sent (silence gap), marking the next packet."""
        if samples < 0:
            raise ValueError("cannot skip backwards")
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        if talkspurt:
            self._mark_next = True

    def next_packet(self, payload: bytes, pt: int, samples: int = 160, marker: bool = False) -> bytes:
        """Build the next packet, stamped now, then advance seq by 1 and timestamp by samples.

        samples=0 keeps the timestamp, as RFC 4733 events need for their updates.
        """
        if not 0 <= pt <= 127:
            raise ValueError(f"bad payload type {pt}")
        m = 0x80 if (marker or self._mark_next) else 0
        self._mark_next = False
        header = _FIXED.pack(0x80, m | pt, self.seq, self.timestamp, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.relayed = False
        return header + payload


class StreamSplicer:
    """Rewrites relayed packets in place into an RtpSender's stream (its SSRC, seq and timestamp).

    Used when a caller who heard the box's prompts is connected to a person: the caller's
    phone keeps seeing one stream, with the marker bit on the first packet of each new source.
    The sender is left where the relayed stream ended, so the box can take over again.
    """

    __slots__ = ("_sender", "_expected_timestamp", "_source", "_seq_delta", "_ts_delta")

    def __init__(self, sender: RtpSender, expected_timestamp: Callable[[], int]) -> None:
        self._sender = sender
        self._expected_timestamp = expected_timestamp  # the sender's timestamp for "now"
        self._source: int | None = None
        self._seq_delta = 0
        self._ts_delta = 0

    def __call__(self, buf: bytearray, n: int) -> None:
        """Rewrite the RTP header of the packet held in buf[:n]."""
        if n < HEADER_SIZE:
            return
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(buf, 2)
        sender = self._sender
        if ssrc != self._source:
            # A new source (first packet, or the far end restarted its stream): continue
            # from where the sender's stream is now, and flag the discontinuity.
            self._source = ssrc
            self._seq_delta = sender.seq - seq
            self._ts_delta = self._expected_timestamp() - ts
            buf[1] |= 0x80
        seq = (seq + self._seq_delta) & 0xFFFF
        ts = (ts + self._ts_delta) & 0xFFFFFFFF
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, sender.ssrc)
        sender.seq = (seq + 1) & 0xFFFF
        sender.timestamp = ts
        sender.relayed = True
