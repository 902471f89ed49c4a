"""RTCP: A.1 sequence accounting, A.3 fraction lost, A.8 jitter, SR/RR/SDES/BYE wire format, RTT."""
from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.rtcp import (
    Bye, ReceiverReport, ReceptionStats, ReportBlock, RtcpError, SdesChunk, SenderReport,
    SenderStats, SourceDescription, build_bye, build_rr, build_sr, next_interval, ntp_middle32,
    ntp_timestamp, parse_rtcp, round_trip_time, RTCP_INTERVAL,
)

REMOTE = 0x11223344
LOCAL = 0xAABBCCDD


def stream(stats: ReceptionStats, seqs: list[int], start: float = 0.0) -> list[bool]:
    """Feed packets with the given sequence numbers, one per 20 ms, timestamps following seq."""
    return [stats.update(s & 0xFFFF, (s * 160) & 0xFFFFFFFF, start + i * 0.02) for i, s in enumerate(seqs)]


# --- A.1 sequence validation and loss accounting ---

def test_probation_ignores_the_first_packet_then_counts() -> None:
    st_ = ReceptionStats()
    assert stream(st_, [1000, 1001, 1002]) == [False, True, True]
    assert st_.valid and (st_.received, st_.expected, st_.lost) == (2, 2, 0)


def test_probation_restarts_on_out_of_order_packet() -> None:
    st_ = ReceptionStats()
    assert stream(st_, [10, 50, 51, 52]) == [False, False, True, True]
    assert (st_.received, st_.expected) == (2, 2)


def test_no_packets_reports_nothing_lost() -> None:
    b = ReceptionStats().report_block(REMOTE, 0.0)
    assert b == ReportBlock(REMOTE, 0, 0, 0, 0, 0, 0)


def test_loss_with_gaps() -> None:
    st_ = ReceptionStats()
    seqs = [s for s in range(100, 200) if s not in (120, 121, 150)]
    stream(st_, seqs)
    # 100 is spent on probation: base is 101, highest 199.
    assert (st_.expected, st_.received, st_.lost) == (99, 96, 3)
    b = st_.report_block(REMOTE, 2.0)
    assert (b.cumulative_lost, b.highest_seq, b.fraction_lost) == (3, 199, 3 * 256 // 99)


def test_reordering_is_not_loss() -> None:
    st_ = ReceptionStats()
    assert stream(st_, [0, 1, 2, 4, 3, 5, 7, 6, 8])[1:] == [True] * 8
    assert (st_.expected, st_.received, st_.lost, st_.extended_max) == (8, 8, 0, 8)


def test_duplicates_make_cumulative_loss_negative() -> None:
    st_ = ReceptionStats()
    stream(st_, [0, 1, 2, 2, 3, 3, 3])
    assert (st_.expected, st_.received, st_.lost) == (3, 6, -3)
    b = st_.report_block(REMOTE, 1.0)
    assert (b.cumulative_lost, b.fraction_lost) == (-3, 0)
    assert parse_rtcp(build_rr(LOCAL, [b], "x"))[0].blocks[0].cumulative_lost == -3


def test_cumulative_loss_clamps_to_24_bits() -> None:
    st_ = ReceptionStats()
    stream(st_, [0, 1])
    st_.cycles = 1 << 30  # as if a huge number of packets had gone missing
    assert st_.report_block(REMOTE, 0.0).cumulative_lost == 0x7FFFFF


def test_sequence_wrap_counts_cycles() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(65530, 65546)))  # 65530..65535 then 0..9
    assert st_.cycles == 65536 and st_.max_seq == 9
    assert (st_.expected, st_.received, st_.lost) == (15, 15, 0)
    assert st_.report_block(REMOTE, 0.0).highest_seq == 65536 + 9


def test_probation_across_the_wrap() -> None:
    st_ = ReceptionStats()
    assert stream(st_, [65535, 0, 1]) == [False, True, True]
    assert (st_.expected, st_.received) == (2, 2)


def test_reordered_packet_from_before_the_wrap() -> None:
    st_ = ReceptionStats()
    stream(st_, [65533, 65534, 0, 65535, 1])
    assert (st_.cycles, st_.max_seq, st_.expected, st_.received) == (65536, 1, 4, 4)


def test_big_jump_is_ignored_until_confirmed_then_resyncs() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(0, 10)))
    assert st_.update(40000, 0, 1.0) is False  # a stray: not counted
    assert (st_.max_seq, st_.received) == (9, 9)
    assert st_.update(10, 1600, 1.02) is True  # the old stream carries on
    assert st_.update(30000, 0, 1.04) is False
    assert st_.update(30001, 160, 1.06) is True  # sequential after the jump: restarted sender
    assert (st_.base_seq, st_.max_seq, st_.received, st_.expected) == (30001, 30001, 1, 1)


def test_gap_within_max_dropout_is_loss_not_restart() -> None:
    st_ = ReceptionStats()
    stream(st_, [0, 1])
    assert st_.update(2999, 0, 1.0) is True
    assert (st_.expected, st_.received, st_.lost) == (2999, 2, 2997)


def test_reset_forgets_the_source() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(50)))
    st_.note_sr(0x12345678, 0.5)
    st_.reset()
    assert not st_.valid and st_.received == 0 and st_.lsr == 0
    assert stream(st_, [7, 8]) == [False, True]
    assert st_.report_block(REMOTE, 1.0) == ReportBlock(REMOTE, 0, 0, 8, 0, 0, 0)


# --- A.3 fraction lost per interval ---

def test_fraction_lost_is_per_interval() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(0, 11)))  # 1..10 counted
    assert st_.report_block(REMOTE, 0.0).fraction_lost == 0
    stream(st_, [s for s in range(11, 21) if s % 2])  # 11, 13, .., 19: 5 of 9 expected (11..19)
    b = st_.report_block(REMOTE, 1.0)
    assert b.fraction_lost == (4 << 8) // 9 and b.cumulative_lost == 4
    stream(st_, list(range(20, 30)))
    b = st_.report_block(REMOTE, 2.0)
    assert b.fraction_lost == 0 and b.cumulative_lost == 4


def test_nothing_received_in_interval_is_zero_fraction() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(5)))
    st_.report_block(REMOTE, 0.0)
    assert st_.report_block(REMOTE, 5.0).fraction_lost == 0


def test_fraction_lost_saturates_at_255() -> None:
    st_ = ReceptionStats()
    stream(st_, list(range(5)))
    st_.report_block(REMOTE, 0.0)
    st_.max_seq += 10  # an interval where everything expected is missing (unreachable via update)
    assert st_.report_block(REMOTE, 1.0).fraction_lost == 255


# --- A.8 jitter ---

def test_constant_delay_has_no_jitter() -> None:
    st_ = ReceptionStats()
    for i in range(500):
        st_.update(i & 0xFFFF, (123456 + i * 160) & 0xFFFFFFFF, 1000.0 + 0.037 + i * 0.02)
    assert st_.jitter == 0 and st_.jitter_ms == 0.0


def test_alternating_delay_converges_on_its_step() -> None:
    # Transit alternates between two values 80 units (10 ms) apart: |D| is always 80.
    st_ = ReceptionStats()
    for i in range(1000):
        st_.update(i, i * 160, i * 0.02 + (0.010 if i % 2 else 0.0))
    assert 79 <= st_.jitter <= 80
    assert st_.jitter_ms == pytest.approx(10.0, abs=0.15)
    assert st_.report_block(REMOTE, 0.0).jitter == st_.jitter


def test_uniform_random_delay_converges_on_a_third_of_its_range() -> None:
    # E|X - Y| for X, Y uniform on [0, a] is a/3: here a = 30 ms, so jitter ≈ 10 ms.
    rng = random.Random(7)
    st_ = ReceptionStats()
    samples = []
    for i in range(20000):
        st_.update(i & 0xFFFF, i * 160, i * 0.02 + rng.uniform(0, 0.030))
        if i > 1000:
            samples.append(st_.jitter_ms)
    assert sum(samples) / len(samples) == pytest.approx(10.0, rel=0.05)


def test_jitter_survives_timestamp_wrap() -> None:
    st_ = ReceptionStats()
    for i in range(200):
        st_.update(i, (0xFFFFFFFF - 8000 + i * 160) & 0xFFFFFFFF, 5.0 + i * 0.02)
    assert st_.jitter == 0


# --- wire format ---

def test_rr_known_bytes() -> None:
    block = ReportBlock(0x01020304, 0x40, 0x000105, 0x00010010, 0x20, 0xCAFEBABE, 0x00018000)
    packet = build_rr(0xDEADBEEF, [block], "ab")
    assert packet == bytes.fromhex(
        "81c90007" "deadbeef"  # V=2 RC=1 PT=201 length 7 words, sender SSRC
        "01020304" "40000105" "00010010" "00000020" "cafebabe" "00018000"
        "81ca0003" "deadbeef" "01026162" "00000000"  # SDES, SC=1: CNAME "ab", then a whole word of nulls
    )


def test_empty_rr_and_cname_padding() -> None:
    assert build_rr(1, [], "ab")[:8] == bytes.fromhex("80c9000100000001")
    sdes = build_rr(1, [], "abcd")[8:]
    assert sdes == bytes.fromhex("81ca0003" "00000001" "01046162" "63640000")


def test_sr_known_bytes() -> None:
    sender = SenderStats()
    for i in range(3):
        sender.sent(1000 + i * 160, 160, 10.0 + i * 0.02)
    # Unix 0.5 is NTP 2208988800.5; 60 ms after the last packet is 480 samples later.
    packet = build_sr(0x01010101, sender, 0.5, 10.1, [], "c")
    assert packet[:28] == bytes.fromhex(
        "80c80006" "01010101" "83aa7e80" "80000000"
        + f"{1000 + 2 * 160 + 480:08x}" + "00000003" + f"{480:08x}"
    )
    assert packet[28:] == bytes.fromhex("81ca0002" "01010101" "01016300")


def test_ntp_conversion() -> None:
    ntp = ntp_timestamp(1_700_000_000.25)
    assert ntp >> 32 == 1_700_000_000 + 2208988800 and ntp & 0xFFFFFFFF == 1 << 30
    assert ntp_middle32(ntp) == (((1_700_000_000 + 2208988800) & 0xFFFF) << 16) | 0x4000


def test_too_many_blocks_refused() -> None:
    with pytest.raises(ValueError):
        build_rr(1, [ReportBlock(0, 0, 0, 0, 0, 0, 0)] * 32, "x")


def test_bad_cname_refused() -> None:
    with pytest.raises(ValueError):
        build_rr(1, [], "")
    with pytest.raises(ValueError):
        build_rr(1, [], "x" * 256)


def test_parse_compound_sr_sdes_bye() -> None:
    sender = SenderStats()
    sender.sent(5000, 160, 1.0)
    blocks = [ReportBlock(REMOTE, 12, -2, 70000, 33, 0x11112222, 65536),
              ReportBlock(0x99, 255, 0x7FFFFF, 1, 0, 0, 0)]
    packet = build_sr(LOCAL, sender, 1_700_000_000.0, 1.0, blocks, "box@pbx") + build_bye(LOCAL, "hung up")
    sr, sdes, bye = parse_rtcp(packet)
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (LOCAL, 5000, 1, 160)
    assert sr.ntp_timestamp == ntp_timestamp(1_700_000_000.0)
    assert sr.blocks == tuple(blocks)
    assert sdes == SourceDescription((SdesChunk(LOCAL, "box@pbx"),))
    assert bye == Bye((LOCAL,), "hung up")


def test_parse_from_memoryview_and_bye_without_reason() -> None:
    packet = build_rr(7, [], "x") + build_bye(7)
    assert parse_rtcp(memoryview(packet)) == [ReceiverReport(7, ()), SourceDescription((SdesChunk(7, "x"),)),
                                              Bye((7,), "")]


def test_parse_skips_unknown_types_and_other_sdes_items() -> None:
    app = bytes.fromhex("80cc0002" "00000007") + b"NAME"  # APP
    xr = bytes.fromhex("80cf0001" "00000007")  # XR, empty
    # SDES with two chunks: NAME item then CNAME; a chunk with only a NOTE.
    sdes = bytes.fromhex("82ca0006" "00000001" "0201" "41" "0103" "616263" "00000000"
                         "00000002" "07014e00")
    result = parse_rtcp(build_rr(7, [], "x") + app + xr + sdes)
    assert result[2] == SourceDescription((SdesChunk(1, "abc"), SdesChunk(2, None)))
    assert len(result) == 3


def test_parse_padding_on_last_packet() -> None:
    rr = bytearray(build_rr(7, [], "x"))
    bye = bytearray(bytes.fromhex("a1cb0002" "00000007" "00000004"))  # P bit, 4 octets of padding
    assert parse_rtcp(bytes(rr + bye))[-1] == Bye((7,), "")


@pytest.mark.parametrize("data", [
    b"",
    b"\x80\xc9",  # header truncated
    bytes.fromhex("40c90001" "00000007"),  # version 1
    bytes.fromhex("80c90002" "00000007"),  # length beyond the buffer
    bytes.fromhex("81c90001" "00000007"),  # RC=1 with no block
    bytes.fromhex("81c80001" "00000007"),  # SR without sender info
    bytes.fromhex("a0c90001" "00000000"),  # padding count 0
    bytes.fromhex("a0c90001" "00000009"),  # padding longer than the packet
    bytes.fromhex("81ca0001" "00000001"),  # SDES chunk with no terminating null
    bytes.fromhex("81ca0002" "00000001" "01096100"),  # CNAME longer than the packet
    bytes.fromhex("82cb0001" "00000001"),  # BYE with SC=2 but one SSRC
    bytes.fromhex("81cb0002" "00000001" "09616263"),  # BYE reason longer than the packet
    build_rr(7, [], "x") + b"\x80\xc9\x00",  # trailing junk
])
def test_malformed_raises_rtcp_error(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(data)


def test_rtcp_error_is_a_value_error() -> None:
    assert issubclass(RtcpError, ValueError)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_rtcp(data)
    except RtcpError:
        pass


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([b"\x80", b"\x81", b"\xa1", b"\x9f", b"\xc8", b"\xc9", b"\xca", b"\xcb",
                                 b"\x00", b"\x01", b"\x02", b"\x06", b"\x07", b"\xff"]), max_size=80))
def test_fuzz_rtcp_shaped_bytes(parts: list[bytes]) -> None:
    # Bytes drawn mostly from header-like values reach deeper than uniformly random ones.
    try:
        parse_rtcp(b"".join(parts))
    except RtcpError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1)), max_size=31),
       st.text(min_size=1, max_size=60))
def test_build_parse_round_trip(raw: list[tuple[int, ...]], cname: str) -> None:
    blocks = [ReportBlock(*b) for b in raw]
    rr, sdes = parse_rtcp(build_rr(LOCAL, blocks, cname))
    assert rr == ReceiverReport(LOCAL, tuple(blocks)) and sdes.chunks == (SdesChunk(LOCAL, cname),)


# --- SR -> RR -> RTT ---

def test_sr_rr_round_trip_time() -> None:
    """We send an SR; the peer echoes it 0.25 s later in an RR that reaches us 0.15 s after that."""
    wall0, mono0, one_way = 1_700_000_123.4, 500.0, 0.05
    sender = SenderStats()
    sender.sent(1234, 160, mono0)
    sr = parse_rtcp(build_sr(LOCAL, sender, wall0, mono0, [], "us"))[0]
    assert isinstance(sr, SenderReport)

    # Peer side: its own monotonic clock, with a different origin.
    peer = ReceptionStats()
    for i in range(10):
        peer.update(i, i * 160, 20.0 + i * 0.02)
    peer.note_sr(sr.ntp_middle32, 20.0 + one_way)
    rr_bytes = build_rr(REMOTE, [peer.report_block(LOCAL, 20.0 + one_way + 0.25)], "them")
    block = parse_rtcp(rr_bytes)[0].blocks[0]
    assert block.lsr == ntp_middle32(ntp_timestamp(wall0))
    assert abs(block.dlsr - 0.25 * 65536) <= 1

    arrival = ntp_middle32(ntp_timestamp(wall0 + one_way + 0.25 + 0.10))
    assert round_trip_time(block, arrival) == pytest.approx(0.15, abs=1 / 65536 * 2)


def test_rtt_none_without_lsr_and_zero_for_rounding() -> None:
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), 123456) is None
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 1000, 10), 1009) == 0.0
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 1000, 65536), 1000) is None  # 1 s negative: bogus


def test_rtt_across_middle32_wrap() -> None:
    block = ReportBlock(1, 0, 0, 0, 0, 0xFFFFFF00, 0x100)
    assert round_trip_time(block, 0x00010000) == 1.0


def test_dlsr_zero_without_sr_and_clamped() -> None:
    st_ = ReceptionStats()
    stream(st_, [0, 1])
    assert st_.report_block(REMOTE, 100.0).dlsr == 0
    st_.note_sr(5, 100.0)
    assert st_.report_block(REMOTE, 99.0).dlsr == 0  # a clock that went backwards


def test_sender_timestamp_extrapolation_wraps() -> None:
    s = SenderStats()
    assert s.rtp_timestamp_at(1.0) == 0
    s.sent(0xFFFFFF00, 160, 2.0)
    assert s.rtp_timestamp_at(2.1) == (0xFFFFFF00 + 800) & 0xFFFFFFFF
    s.reset()
    assert (s.packets, s.octets) == (0, 0)


def test_sr_counts_wrap_at_32_bits() -> None:
    s = SenderStats()
    s.sent(0, 100, 0.0)
    s.packets, s.octets = 2**32 + 5, 2**32 + 7
    sr = parse_rtcp(build_sr(1, s, 0.0, 0.0, [], "x"))[0]
    assert isinstance(sr, SenderReport) and (sr.packet_count, sr.octet_count) == (5, 7)


def test_next_interval_is_randomized_around_the_interval() -> None:
    rng = random.Random(1)
    values = [next_interval(rng) for _ in range(2000)]
    assert all(0.5 * RTCP_INTERVAL <= v <= 1.5 * RTCP_INTERVAL for v in values)
    assert min(values) < 0.6 * RTCP_INTERVAL and max(values) > 1.4 * RTCP_INTERVAL
    assert 0.5 * RTCP_INTERVAL <= next_interval() <= 1.5 * RTCP_INTERVAL


def test_block_fields_round_trip_through_struct() -> None:
    # cumulative_lost is 24-bit two's complement on the wire.
    packet = build_rr(1, [ReportBlock(2, 1, -1, 3, 4, 5, 6)], "x")
    assert struct.unpack_from("!I", packet, 12)[0] == 0x01FFFFFF


def test_event_packets_count_but_do_not_feed_jitter() -> None:
    """RFC 4733 updates share the event's timestamp: counted for loss, kept out of the jitter."""
    stats = ReceptionStats()
    seq, ts, t = 1000, 0, 0.0
    for _ in range(50):  # steady audio: zero jitter
        stats.update(seq, ts, t)
        seq, ts, t = seq + 1, ts + 160, t + 0.02
    for _ in range(8):  # one 160 ms key press: same timestamp, 20 ms apart
        stats.update(seq, ts, t, timed=False)
        seq, t = seq + 1, t + 0.02
    ts += 8 * 160
    stats.update(seq, ts, t)
    assert stats.jitter_ms == 0.0
    assert stats.received == 58  # the first packet of a source is not counted (RFC 3550 A.1)
