"""V.253 DLE coding of the voice stream."""
from __future__ import annotations

from hypothesis import given, strategies as st

from hw.modem.dle import END_DUPLEX, DleDecoder, DleEvent, encode_event, escape


def test_escape_doubles_dle() -> None:
    assert escape(b"\x01\x10\x02\x10\x10") == b"\x01\x10\x10\x02\x10\x10\x10\x10"


def test_events_audio_and_end() -> None:
    d = DleDecoder()
    res = d.feed(b"ab\x10\x10c\x105\x10#\x10bde\x10\x03\r\nOK\r\n")
    assert res.audio == b"ab\x10cde"
    assert [e.code for e in res.events] == ["5", "#", "b"]
    assert [e.digit for e in res.events] == ["5", "#", None]
    assert res.events[2].name == "busy"
    assert res.ended and res.rest == b"\r\nOK\r\n"


def test_dle_split_across_chunks() -> None:
    d = DleDecoder()
    first = d.feed(b"x\x10")
    second = d.feed(b"\x10y\x10")
    third = d.feed(b"9z")
    assert first.audio + second.audio + third.audio == b"x\x10yz"
    assert third.events == [DleEvent("9")]


def test_dle_sub_is_two_dles() -> None:
    assert DleDecoder().feed(b"\x10\x1a").audio == b"\x10\x10"


def test_shielded_dtmf_and_names() -> None:
    res = DleDecoder().feed(b"\x10/\x107\x10~")
    assert [e.name for e in res.events] == ["dtmf-start", "dtmf", "dtmf-end"]
    assert DleDecoder().feed(END_DUPLEX).events[0].name == "end-duplex"
    assert encode_event("5") == b"\x105"


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_round_trip_any_chunking(data: bytes, size: int) -> None:
    wire = escape(data) + b"\x10\x03tail"
    d = DleDecoder()
    out = bytearray()
    rest = None
    for i in range(0, len(wire), size):
        res = d.feed(wire[i:i + size])
        out += res.audio
        assert not res.events
        if res.ended:
            rest = res.rest + wire[i + size:]
            break
    assert bytes(out) == data and rest == b"tail"
