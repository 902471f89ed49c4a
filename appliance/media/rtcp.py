"""RTCP (RFC 3550): reception statistics, SR/RR/SDES/BYE building and compound packet parsing.

Pure code: no sockets, and every clock is passed in. Monotonic seconds time arrivals and
delays; wall-clock (Unix) seconds only become the NTP timestamps an SR carries.
"""
from __future__ import annotations

import random
import struct
from typing import NamedTuple, Protocol, Union

__all__ = [
    "RtcpError", "ReportBlock", "SenderReport", "ReceiverReport", "SdesChunk", "SourceDescription",
    "Bye", "RtcpPacket", "ReceptionStats", "SenderStats", "build_sr", "build_rr", "build_bye",
    "parse_rtcp", "round_trip_time", "ntp_timestamp", "ntp_middle32", "next_interval",
    "RTCP_INTERVAL", "PT_SR", "PT_RR", "PT_SDES", "PT_BYE",
]

RTCP_INTERVAL = 5.0
PT_SR, PT_RR, PT_SDES, PT_BYE = 200, 201, 202, 203
_SDES_CNAME = 1

MIN_SEQUENTIAL = 2
MAX_DROPOUT = 3000
MAX_MISORDER = 100
_SEQ_MOD = 1 << 16
_U32 = 0xFFFFFFFF
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_MAX_BLOCKS = 31  # the 5-bit report count

_HEADER = struct.Struct("!BBH")
_HEADER_SSRC = struct.Struct("!BBHI")
_SENDER_INFO = struct.Struct("!IIIII")  # NTP msw, NTP lsw, RTP timestamp, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction<<24 | cumulative lost, highest, jitter, lsr, dlsr
_U32S = struct.Struct("!I")


class RtcpError(ValueError):
    """Not a well-formed RTCP (compound) packet."""


class ReportBlock(NamedTuple):
    """One reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # 0..255, fixed point /256, since the previous report
    cumulative_lost: int  # 24-bit signed: duplicates can make it negative
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received, 0 if none
    dlsr: int  # delay since that SR, 1/65536 s


class SenderReport(NamedTuple):
    """A parsed SR: sender info and its report blocks."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    blocks: tuple[ReportBlock, ...]

    @property
    def ntp_middle32(self) -> int:
        """The 32 bits of the NTP timestamp a receiver echoes back as LSR."""
        return ntp_middle32(self.ntp_timestamp)


class ReceiverReport(NamedTuple):
    """A parsed RR."""

    ssrc: int
    blocks: tuple[ReportBlock, ...]


class SdesChunk(NamedTuple):
    """One SDES chunk: a source and its CNAME (None when the chunk carries none)."""

    ssrc: int
    cname: str | None


class SourceDescription(NamedTuple):
    """A parsed SDES packet (only CNAME items are kept)."""

    chunks: tuple[SdesChunk, ...]


class Bye(NamedTuple):
    """A parsed BYE."""

    ssrcs: tuple[int, ...]
    reason: str


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye]


def ntp_timestamp(unix: float) -> int:
    """64-bit NTP timestamp for a Unix wall-clock time in seconds."""
    secs = unix + _NTP_EPOCH_OFFSET
    whole = int(secs)
    return ((whole & _U32) << 32) | (int((secs - whole) * 4294967296.0) & _U32)


def ntp_middle32(ntp: int) -> int:
    """Middle 32 bits of a 64-bit NTP timestamp (the LSR / RTT arrival format)."""
    return (ntp >> 16) & _U32


class ReceptionStats:
    """Reception statistics of one incoming source (RFC 3550 A.1, A.3, A.8).

    One instance per SSRC. It does not see SSRCs: the owner compares them and calls
    reset() (or makes a new instance) when the source changes, which puts it back on
    probation and forgets the old source's counters, jitter and last SR.
    """

    __slots__ = (
        "clock_rate", "max_seq", "cycles", "base_seq", "bad_seq", "probation", "received",
        "expected_prior", "received_prior", "transit", "jitter16", "lsr", "sr_arrival", "_started",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next packet starts a new source on probation."""
        self._started = False
        self.probation = MIN_SEQUENTIAL
        self.lsr = 0
        self.sr_arrival = 0.0
        self.jitter16 = 0  # jitter scaled by 16 (the integer form of A.8)
        self._init_seq(0)

    def _init_seq(self, seq: int) -> None:
        """RFC 3550 A.1 init_seq: seq becomes the base of a (re)started sequence."""
        self.base_seq = self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1  # matches no 16-bit seq
        self.cycles = 0
        self.received = self.received_prior = self.expected_prior = 0
        self.transit: int | None = None  # a restarted stream's timestamps have a new origin

    def update(self, seq: int, timestamp: int, arrival: float, timed: bool = True) -> bool:
        """Account one received RTP packet (arrival in monotonic seconds); False if not counted.

        Packets are not counted while the source is on probation or after a large jump
        that has not yet been confirmed by a following packet (RFC 3550 A.1). timed=False
        counts a packet whose timestamp does not advance with time (RFC 4733 event updates
        all carry the event's start), so it does not feed the jitter estimate.
        """
        if self.probation:
            if not self._probation(seq):
                return False
        else:
            udelta = (seq - self.max_seq) & 0xFFFF
            if udelta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += _SEQ_MOD
                self.max_seq = seq
            elif udelta <= _SEQ_MOD - MAX_MISORDER:
                if seq != self.bad_seq:
                    self.bad_seq = (seq + 1) & 0xFFFF
                    return False
                # Two sequential packets after a big jump: the sender restarted, resync.
                self._init_seq(seq)
            # else: a duplicate or reordered packet, counted but leaving max_seq alone.
        self.received += 1
        if not timed:
            return True
        transit = round(arrival * self.clock_rate) - timestamp
        if self.transit is not None:
            d = (transit - self.transit) & _U32
            if d & 0x80000000:
                d = 0x100000000 - d
            self.jitter16 += d - ((self.jitter16 + 8) >> 4)
        self.transit = transit
        return True

    def _probation(self, seq: int) -> bool:
        """A.1 probation: True when seq completes MIN_SEQUENTIAL in-order packets (then counted)."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
        if seq == (self.max_seq + 1) & 0xFFFF:
            self.probation -= 1
            self.max_seq = seq
            if self.probation == 0:
                self._init_seq(seq)
                return True
        else:
            self.probation = MIN_SEQUENTIAL - 1
            self.max_seq = seq
        return False

    @property
    def valid(self) -> bool:
        """True once the source has passed probation."""
        return not self.probation

    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (cycles + max seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected: extended max - base + 1 (0 while on probation)."""
        return 0 if self.probation else self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost, unclamped (negative when duplicates outnumber losses)."""
        return self.expected - self.received

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units, as reported."""
        return self.jitter16 >> 4

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return self.jitter16 * 1000 / (16 * self.clock_rate)

    def note_sr(self, ntp_middle32: int, arrival_mono: float) -> None:
        """Remember an SR from this source (its NTP middle 32 bits) for the next LSR/DLSR."""
        self.lsr = ntp_middle32 & _U32
        self.sr_arrival = arrival_mono

    def report_block(self, ssrc: int, now_mono: float) -> ReportBlock:
        """The report block for this source now; starts a new interval for fraction lost (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            # All lost gives 256/256, which does not fit the 8-bit field.
            fraction = min(255, (lost_interval << 8) // expected_interval)
        cumulative = max(-0x800000, min(0x7FFFFF, expected - self.received))
        dlsr = 0
        if self.lsr:
            dlsr = max(0, min(_U32, int((now_mono - self.sr_arrival) * 65536)))
        highest = 0 if self.probation else self.extended_max & _U32
        return ReportBlock(ssrc & _U32, fraction, cumulative, highest,
                           min(_U32, self.jitter16 >> 4), self.lsr, dlsr)


class SenderStats:
    """What one outgoing stream has sent, for its SRs (counts wrap at 32 bits when reported)."""

    __slots__ = ("clock_rate", "packets", "octets", "last_timestamp", "last_sent")

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.reset()

    def reset(self) -> None:
        """Zero the counts (RFC 3550 §6.4.1: on an SSRC change)."""
        self.packets = self.octets = 0
        self.last_timestamp = 0
        self.last_sent: float | None = None

    def sent(self, timestamp: int, payload_octets: int, now_mono: float) -> None:
        """Account one sent RTP packet: its timestamp and payload size (header excluded)."""
        self.packets += 1
        self.octets += payload_octets
        self.last_timestamp = timestamp
        self.last_sent = now_mono

    def rtp_timestamp_at(self, now_mono: float) -> int:
        """The RTP timestamp corresponding to now, extrapolated from the last packet sent."""
        if self.last_sent is None:
            return self.last_timestamp & _U32
        return (self.last_timestamp + round((now_mono - self.last_sent) * self.clock_rate)) & _U32


def _pack_blocks(out: bytearray, blocks: list[ReportBlock]) -> None:
    """Append report blocks in wire format."""
    for b in blocks:
        out += _BLOCK.pack(b.ssrc & _U32, ((b.fraction_lost & 0xFF) << 24) | (b.cumulative_lost & 0xFFFFFF),
                           b.highest_seq & _U32, b.jitter & _U32, b.lsr & _U32, b.dlsr & _U32)


def _check_blocks(blocks: list[ReportBlock]) -> None:
    """Refuse more blocks than the 5-bit count can say."""
    if len(blocks) > _MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} report blocks, at most {_MAX_BLOCKS} fit one report")


def _sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk: ssrc and its CNAME, null-terminated and padded to 32 bits."""
    text = cname.encode("utf-8")
    if not 0 < len(text) <= 255:
        raise ValueError("CNAME must be 1..255 bytes of UTF-8")
    chunk = _U32S.pack(ssrc & _U32) + bytes((_SDES_CNAME, len(text))) + text
    chunk += bytes(4 - len(chunk) % 4)  # at least one null octet ends the item list
    return _HEADER.pack(0x81, PT_SDES, len(chunk) // 4) + chunk


def build_sr(ssrc: int, sender: SenderStats, now_wall: float, now_mono: float,
             blocks: list[ReportBlock], cname: str) -> bytes:
    """Compound SR + SDES CNAME; now_wall (Unix seconds) gives the NTP time, now_mono the RTP one."""
    _check_blocks(blocks)
    ntp = ntp_timestamp(now_wall)
    out = bytearray(_HEADER_SSRC.pack(0x80 | len(blocks), PT_SR, 6 + 6 * len(blocks), ssrc & _U32))
    out += _SENDER_INFO.pack(ntp >> 32, ntp & _U32, sender.rtp_timestamp_at(now_mono),
                             sender.packets & _U32, sender.octets & _U32)
    _pack_blocks(out, blocks)
    return bytes(out) + _sdes_cname(ssrc, cname)


def build_rr(ssrc: int, blocks: list[ReportBlock], cname: str) -> bytes:
    """Compound RR + SDES CNAME (an RR with no blocks is valid: nothing received yet)."""
    _check_blocks(blocks)
    out = bytearray(_HEADER_SSRC.pack(0x80 | len(blocks), PT_RR, 1 + 6 * len(blocks), ssrc & _U32))
    _pack_blocks(out, blocks)
    return bytes(out) + _sdes_cname(ssrc, cname)


def build_bye(ssrc: int, reason: str = "") -> bytes:
    """A BYE packet, to append to a build_sr/build_rr compound (a BYE may not travel alone)."""
    body = _U32S.pack(ssrc & _U32)
    if reason:
        text = reason.encode("utf-8")[:255]
        body += bytes((len(text),)) + text
        body += bytes(-len(body) % 4)
    return _HEADER.pack(0x81, PT_BYE, len(body) // 4) + body


def _parse_blocks(data: bytes | memoryview, pos: int, count: int) -> tuple[ReportBlock, ...]:
    """count report blocks starting at pos (bounds already checked)."""
    blocks = []
    for i in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos + i * _BLOCK.size)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(data: bytes | memoryview, start: int, end: int, count: int) -> SourceDescription:
    """SDES chunks in data[start+4:end]; start is the packet's first byte (chunks align to it)."""
    chunks = []
    pos = start + 4
    for _ in range(count):
        if pos + 4 > end:
            raise RtcpError("SDES chunk truncated")
        (ssrc,) = _U32S.unpack_from(data, pos)
        pos += 4
        cname: str | None = None
        while True:
            if pos >= end:
                raise RtcpError("SDES item list not terminated")
            kind = data[pos]
            if kind == 0:
                pos = start + ((pos + 1 - start + 3) & ~3)
                break
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise RtcpError("SDES item truncated")
            length = data[pos + 1]
            if kind == _SDES_CNAME:
                cname = bytes(data[pos + 2:pos + 2 + length]).decode("utf-8", "replace")
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, cname))
    return SourceDescription(tuple(chunks))


def _parse_bye(data: bytes | memoryview, pos: int, end: int, count: int) -> Bye:
    """BYE body in data[pos:end]: count SSRCs and an optional reason."""
    if pos + 4 * count > end:
        raise RtcpError("BYE truncated")
    ssrcs = struct.unpack_from(f"!{count}I", data, pos)
    pos += 4 * count
    reason = ""
    if pos < end:
        length = data[pos]
        if pos + 1 + length > end:
            raise RtcpError("BYE reason truncated")
        reason = bytes(data[pos + 1:pos + 1 + length]).decode("utf-8", "replace")
    return Bye(tuple(ssrcs), reason)


def parse_rtcp(data: bytes | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet into SR/RR/SDES/BYE items, skipping other types.

    Raises RtcpError on anything malformed. Lenient where RFC 3550 is strict but nothing
    is ambiguous: the first packet need not be an SR/RR (RFC 5506 reduced size), and
    padding is accepted on any packet, not only the last.
    """
    n = len(data)
    if n == 0:
        raise RtcpError("empty packet")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < n:
        if n - offset < 4:
            raise RtcpError("truncated RTCP header")
        b0, pt, length = _HEADER.unpack_from(data, offset)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6}")
        size = (length + 1) * 4
        if offset + size > n:
            raise RtcpError(f"RTCP length {size} beyond the {n - offset} bytes left")
        end = offset + size
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > size - 4:
                raise RtcpError(f"bad RTCP padding {pad}")
            end -= pad
        count = b0 & 0x1F
        if pt == PT_SR:
            if end - offset < 28 + 24 * count:
                raise RtcpError("SR shorter than its report count")
            ssrc, msw, lsw, rtp_ts, packets_sent, octets = struct.unpack_from("!6I", data, offset + 4)
            packets.append(SenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets_sent, octets,
                                        _parse_blocks(data, offset + 28, count)))
        elif pt == PT_RR:
            if end - offset < 8 + 24 * count:
                raise RtcpError("RR shorter than its report count")
            (ssrc,) = _U32S.unpack_from(data, offset + 4)
            packets.append(ReceiverReport(ssrc, _parse_blocks(data, offset + 8, count)))
        elif pt == PT_SDES:
            packets.append(_parse_sdes(data, offset, end, count))
        elif pt == PT_BYE:
            packets.append(_parse_bye(data, offset + 4, end, count))
        offset += size
    return packets


def round_trip_time(block: ReportBlock, arrival_wall_ntp_middle32: int) -> float | None:
    """RTT in seconds from a report block about our SR: A - LSR - DLSR (RFC 3550 §6.4.1).

    None when the peer has not had an SR from us (LSR 0) or the result is clearly bogus
    (negative by more than the 1 ms the truncated fields can account for).
    """
    if not block.lsr:
        return None
    rtt = (arrival_wall_ntp_middle32 - block.lsr - block.dlsr) & _U32
    if rtt & 0x80000000:
        rtt -= 0x100000000
        if rtt < -66:  # ~1 ms of rounding in three truncated 1/65536 s values
            return None
        return 0.0
    return rtt / 65536


class _Uniform(Protocol):
    """Anything with random.uniform's signature: the random module or a random.Random."""

    def uniform(self, a: float, b: float) -> float: ...


def next_interval(rng: _Uniform = random) -> float:
    """Seconds until the next report: RTCP_INTERVAL randomized over 0.5..1.5 of itself."""
    return RTCP_INTERVAL * rng.uniform(0.5, 1.5)
