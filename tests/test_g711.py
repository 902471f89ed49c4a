"""G.711 codec: known vectors, round-trip error bounds and codec lookup."""
from __future__ import annotations

import math
import struct

import pytest

from appliance.media.g711 import (
    alaw_decode, alaw_encode, codec_for, ulaw_decode, ulaw_encode,
)


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def unpcm(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def test_silence_vectors() -> None:
    assert ulaw_encode(pcm(0)) == b"\xff"
    assert alaw_encode(pcm(0)) == b"\xd5"
    assert unpcm(ulaw_decode(b"\xff")) == [0]
    assert unpcm(alaw_decode(b"\xd5")) == [8]  # A-law has no exact zero: smallest step is ±8


def test_full_scale_vectors() -> None:
    assert ulaw_encode(pcm(32767, -32768)) == b"\x80\x00"
    assert alaw_encode(pcm(32767, -32768)) == b"\xaa\x2a"
    assert unpcm(ulaw_decode(b"\x80\x00")) == [32124, -32124]
    assert unpcm(alaw_decode(b"\xaa\x2a")) == [32256, -32256]


def test_little_endian_input() -> None:
    # 0x0100 = 256 little-endian; a byte-order bug would read it as 1.
    assert ulaw_encode(b"\x00\x01") == ulaw_encode(pcm(256)) != ulaw_encode(pcm(1))


def test_one_byte_per_sample() -> None:
    assert len(ulaw_encode(bytes(320))) == 160
    assert len(alaw_decode(bytes(160))) == 320


@pytest.mark.parametrize("enc,dec", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_sine_round_trip_error_bound(enc, dec) -> None:
    samples = [int(20000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(800)]
    back = unpcm(dec(enc(pcm(*samples))))
    for s, b in zip(samples, back):
        # Logarithmic quantisation: error within half a step, ~1/32 of the magnitude.
        assert abs(s - b) <= max(16, abs(s) / 30), (s, b)
    signal = sum(s * s for s in samples)
    noise = sum((s - b) ** 2 for s, b in zip(samples, back))
    assert 10 * math.log10(signal / noise) > 30  # G.711 SQNR is ~38 dB at this level


@pytest.mark.parametrize("enc,dec", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_all_codes_are_stable(enc, dec) -> None:
    codes = bytes(range(256))
    assert dec(enc(dec(codes))) == dec(codes)


def test_codec_for() -> None:
    assert codec_for("PCMU") is codec_for(0) is codec_for("pcmu/8000") is codec_for("0")
    assert codec_for("PCMA") is codec_for(8)
    c = codec_for("PCMA")
    assert (c.name, c.payload_type) == ("PCMA", 8)
    assert c.encode is alaw_encode and c.decode is alaw_decode
    enc, dec = codec_for("PCMU")
    assert enc(pcm(0)) == b"\xff" and dec is ulaw_decode
    assert (codec_for(0).name, codec_for(0).payload_type) == ("PCMU", 0)


@pytest.mark.parametrize("bad", ["G729", "", 18, 3])
def test_codec_for_rejects(bad) -> None:
    with pytest.raises(ValueError):
        codec_for(bad)
