"""RFC 4733 telephone-event receive/send and SIP INFO DTMF bodies."""
from __future__ import annotations

import struct

import pytest

from appliance.media.dtmf import DIGITS, DtmfReceiver, dtmf_packets, parse_info_dtmf
from appliance.media.rtp import RtpSender, parse_rtp


def ev(digit: str, end: bool = False, duration: int = 400, volume: int = 10) -> bytes:
    return struct.pack("!BBH", DIGITS.index(digit), (0x80 if end else 0) | volume, duration)


def feed_all(rx: DtmfReceiver, packets) -> list[str]:
    out: list[str] = []
    for payload, ts, marker in packets:
        out += rx.feed(payload, ts, marker)
    return out


def test_full_event_reported_once_on_first_end() -> None:
    rx = DtmfReceiver()
    assert rx.feed(ev("5", duration=0), 1000, True) == []
    assert rx.feed(ev("5", duration=400), 1000, False) == []
    assert rx.feed(ev("5", True, 800), 1000, False) == ["5"]
    assert rx.feed(ev("5", True, 800), 1000, False) == []  # retransmitted end
    assert rx.feed(ev("5", True, 800), 1000, False) == []
    assert rx.feed(ev("5", duration=400), 1000, False) == []  # late reordered update
    assert rx.flush() == []


def test_same_digit_twice_is_two_events() -> None:
    rx = DtmfReceiver()
    seq = [(ev("1"), 0, True), (ev("1", True), 0, False), (ev("1", True), 0, False),
           (ev("1"), 2400, True), (ev("1", True), 2400, False), (ev("1", True), 2400, False)]
    assert feed_all(rx, seq) == ["1", "1"]


def test_lost_start_packets_end_only() -> None:
    rx = DtmfReceiver()
    assert feed_all(rx, [(ev("#", True), 500, False)] * 3) == ["#"]


def test_lost_end_packets_reported_when_next_event_starts() -> None:
    rx = DtmfReceiver()
    assert feed_all(rx, [(ev("7"), 0, True), (ev("7"), 0, False)]) == []
    assert rx.feed(ev("8"), 4000, True) == ["7"]
    assert rx.feed(ev("8", True), 4000, False) == ["8"]


def test_lost_end_then_next_is_end_only() -> None:
    rx = DtmfReceiver()
    rx.feed(ev("2"), 0, True)
    assert rx.feed(ev("3", True), 4000, False) == ["2", "3"]


def test_flush_reports_unfinished_event_once() -> None:
    rx = DtmfReceiver()
    rx.feed(ev("9"), 10, True)
    assert rx.flush() == ["9"]
    assert rx.flush() == []
    assert rx.feed(ev("9", True), 10, False) == []  # its end arriving late is not a second 9


def test_all_digits_and_non_digit_events_ignored() -> None:
    rx = DtmfReceiver()
    out = []
    for i, d in enumerate(DIGITS):
        out += rx.feed(ev(d, True), i * 1000, False)
    assert "".join(out) == DIGITS
    assert rx.feed(struct.pack("!BBH", 16, 0x80, 800), 99999, False) == []  # flash
    assert rx.feed(b"\x01\x80", 123456, False) == []  # truncated


def test_accepts_memoryview() -> None:
    rx = DtmfReceiver()
    assert rx.feed(memoryview(b"xx" + ev("4", True))[2:], 1, False) == ["4"]


def test_dtmf_packets_shape() -> None:
    pk = dtmf_packets("5", duration_ms=100, volume=10)
    fields = [struct.unpack("!BBH", p) for p, _, _ in pk]
    assert [f[0] for f in fields] == [5] * 4
    assert [f[1] for f in fields] == [10, 0x80 | 10, 0x80 | 10, 0x80 | 10]
    assert [f[2] for f in fields] == [400, 800, 800, 800]
    assert [m for _, m, _ in pk] == [True, False, False, False]
    assert [s for _, _, s in pk] == [False, True, True, True]


def test_dtmf_packets_long_event_updates_every_50ms() -> None:
    pk = dtmf_packets("#", duration_ms=250, volume=3)
    durations = [struct.unpack("!BBH", p)[2] for p, _, _ in pk]
    assert durations == [400, 800, 1200, 1600, 2000, 2000, 2000]
    assert sum(1 for p, _, _ in pk if p[1] & 0x80) == 3
    assert pk[0][0][0] == 11


def test_dtmf_packets_short_event_is_end_only() -> None:
    pk = dtmf_packets("A", duration_ms=40)
    assert len(pk) == 3 and pk[0][1] is True
    assert all(p[1] & 0x80 and struct.unpack("!H", p[2:])[0] == 320 for p, _, _ in pk)


@pytest.mark.parametrize("kwargs", [{"digit": "E"}, {"digit": "12"}, {"digit": ""},
                                    {"digit": "1", "volume": 64},
                                    {"digit": "1", "duration_ms": 0},
                                    {"digit": "1", "duration_ms": 9000}])
def test_dtmf_packets_rejects(kwargs) -> None:
    with pytest.raises(ValueError):
        dtmf_packets(**kwargs)


def test_send_through_rtp_sender_and_receive() -> None:
    """The generated packets, stamped as documented, decode back to the digits once each."""
    s = RtpSender(seq=0, timestamp=8000)
    rx = DtmfReceiver()
    got: list[str] = []
    stamps = []
    for digit in "159#":
        s.next_packet(b"\xff" * 160, 0)  # some audio between digits
        for payload, marker, _same in dtmf_packets(digit):
            pkt = memoryview(s.next_packet(payload, 101, samples=0, marker=marker))
            h = parse_rtp(pkt)
            stamps.append(h.timestamp)
            got += rx.feed(h.payload(pkt), h.timestamp, h.marker)
        s.skip(800)
    assert "".join(got) == "159#"
    assert len(set(stamps)) == 4  # one timestamp per event


@pytest.mark.parametrize("ctype,body,expected", [
    ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", ("5", 160)),
    ("Application/DTMF-Relay; charset=x", b"Signal= #\nDuration= 250", ("#", 250)),
    ("application/dtmf-relay", "Signal=*\r\n", ("*", None)),
    ("application/dtmf-relay", "Signal=11\r\nDuration=100", ("#", 100)),
    ("application/dtmf-relay", "Signal=10", ("*", None)),
    ("application/dtmf-relay", "signal=d\r\nduration=x", ("D", None)),
    ("application/dtmf", "7", ("7", None)),
    ("application/dtmf", "#\r\n", ("#", None)),
])
def test_parse_info(ctype: str, body, expected) -> None:
    assert tuple(parse_info_dtmf(ctype, body)) == expected


@pytest.mark.parametrize("ctype,body", [
    ("application/dtmf-relay", "Duration=160"),
    ("application/dtmf-relay", "Signal=E"),
    ("application/dtmf-relay", "Signal=16"),
    ("application/dtmf", ""),
    ("application/sdp", "Signal=5"),
    ("text/plain", "5"),
])
def test_parse_info_rejects(ctype: str, body: str) -> None:
    assert parse_info_dtmf(ctype, body) is None
