"""RTP header parsing and the outgoing stream numbering."""
from __future__ import annotations

import struct

import pytest

from appliance.media.rtp import RtpError, RtpSender, parse_rtp


def packet(*, b0: int = 0x80, b1: int = 0, seq: int = 1, ts: int = 2, ssrc: int = 3,
           tail: bytes = b"") -> bytes:
    return struct.pack("!BBHII", b0, b1, seq, ts, ssrc) + tail


def test_parse_plain() -> None:
    data = packet(b1=0x80 | 8, seq=65535, ts=0xFFFFFFFF, ssrc=0xDEADBEEF, tail=b"\xd5" * 160)
    h = parse_rtp(memoryview(data))
    assert (h.version, h.padding, h.extension, h.csrc_count) == (2, False, False, 0)
    assert (h.marker, h.payload_type, h.seq, h.timestamp, h.ssrc) == (True, 8, 65535, 0xFFFFFFFF, 0xDEADBEEF)
    assert (h.payload_offset, h.payload_end) == (12, 172)


def test_payload_is_a_view_not_a_copy() -> None:
    buf = bytearray(packet(tail=b"abcd"))
    view = memoryview(buf)
    payload = parse_rtp(view).payload(view)
    buf[12] = ord("z")  # the shared relay buffer being overwritten is visible through the view
    assert bytes(payload) == b"zbcd"
    assert payload.obj is buf


def test_csrc_extension_and_padding() -> None:
    csrcs = struct.pack("!II", 10, 11)
    ext = struct.pack("!HH", 0xBEDE, 2) + bytes(8)
    pad = b"\x00\x00\x03"
    data = packet(b0=0x80 | 0x20 | 0x10 | 2, b1=101, tail=csrcs + ext + b"PAY" + pad)
    h = parse_rtp(data)
    assert (h.padding, h.extension, h.csrc_count, h.marker, h.payload_type) == (True, True, 2, False, 101)
    assert h.payload_offset == 12 + 8 + 12
    assert bytes(h.payload(memoryview(data))) == b"PAY"


@pytest.mark.parametrize("data", [
    b"",
    packet()[:11],
    packet(b0=0x40),  # version 1
    packet(b0=0x00),  # version 0 (STUN-like)
    packet(b0=0xC0),  # version 3
    packet(b0=0x82),  # two CSRCs announced, none present
    packet(b0=0x90),  # extension announced, none present
    packet(b0=0x90, tail=struct.pack("!HH", 0xBEDE, 5)),  # extension longer than packet
    packet(b0=0xA0, tail=b"ab\x00"),  # padding count 0
    packet(b0=0xA0, tail=b"\x09"),  # padding longer than payload
])
def test_rejects(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(memoryview(data))


def test_sender_round_trips_through_parser() -> None:
    s = RtpSender(ssrc=0x1234, seq=100, timestamp=5000)
    h = parse_rtp(s.next_packet(b"x" * 160, 0))
    assert (h.ssrc, h.seq, h.timestamp, h.payload_type, h.marker) == (0x1234, 100, 5000, 0, True)
    h = parse_rtp(s.next_packet(b"x" * 160, 0))
    assert (h.seq, h.timestamp, h.marker) == (101, 5160, False)


def test_sender_continues_across_sources() -> None:
    s = RtpSender(ssrc=7, seq=10, timestamp=0)
    heads = [parse_rtp(s.next_packet(b"p" * 160, 8)) for _ in range(3)]  # prompt
    s.start_talkspurt()
    heads += [parse_rtp(s.next_packet(b"r" * 160, 8)) for _ in range(3)]  # relayed person
    s.start_talkspurt()
    heads += [parse_rtp(s.next_packet(b"p" * 80, 8, samples=80))]  # prompt again, 10 ms frame
    heads += [parse_rtp(s.next_packet(b"p" * 80, 8, samples=80))]
    assert [h.seq for h in heads] == list(range(10, 18))
    assert [h.timestamp for h in heads] == [0, 160, 320, 480, 640, 800, 960, 1040]
    assert [h.marker for h in heads] == [True, False, False, True, False, False, True, False]
    assert {h.ssrc for h in heads} == {7}


def test_explicit_marker() -> None:
    s = RtpSender()
    s.next_packet(b"", 0)
    assert parse_rtp(s.next_packet(b"", 0, marker=True)).marker
    assert not parse_rtp(s.next_packet(b"", 0)).marker


def test_skip_after_silence_gap() -> None:
    s = RtpSender(seq=0, timestamp=1000)
    s.next_packet(b"a" * 160, 0)
    s.skip(8000 * 2)  # 2 s of silence at 8 kHz: no packets, clock keeps running
    h = parse_rtp(s.next_packet(b"a" * 160, 0))
    assert (h.seq, h.timestamp, h.marker) == (1, 1000 + 160 + 16000, True)
    s.skip(160, talkspurt=False)  # a lost/dropped frame: timestamp moves, no new talkspurt
    h = parse_rtp(s.next_packet(b"a" * 160, 0))
    assert (h.seq, h.timestamp, h.marker) == (2, 1000 + 160 + 16000 + 160 + 160, False)
    with pytest.raises(ValueError):
        s.skip(-1)


def test_wraparound() -> None:
    s = RtpSender(seq=0xFFFF, timestamp=0xFFFFFF00)
    s.next_packet(b"", 0, samples=0x100)
    h = parse_rtp(s.next_packet(b"", 0))
    assert (h.seq, h.timestamp) == (0, 0)


def test_same_timestamp_with_zero_samples() -> None:
    s = RtpSender(seq=0, timestamp=42)
    ts = [parse_rtp(s.next_packet(b"e", 101, samples=0)).timestamp for _ in range(3)]
    assert ts == [42, 42, 42] and s.seq == 3


def test_random_initial_values_differ() -> None:
    senders = [RtpSender() for _ in range(8)]
    assert len({x.ssrc for x in senders}) > 1
    assert len({x.timestamp for x in senders}) > 1


@pytest.mark.parametrize("pt", [-1, 128])
def test_bad_payload_type(pt: int) -> None:
    with pytest.raises(ValueError):
        RtpSender().next_packet(b"", pt)
