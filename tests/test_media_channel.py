"""MediaChannel over real UDP on 127.0.0.1: prompts, one continuous stream across a hand-over, DTMF, RTCP."""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from appliance.media import channel as channel_module
from appliance.media import rtcp
from appliance.media.channel import MediaChannel
from appliance.media.dtmf import dtmf_packets
from appliance.media.g711 import ulaw_encode
from appliance.media.ports import PortAllocator
from appliance.media.prompts import Prompt, frames
from appliance.media.relay import MediaEngine
from appliance.media.rtp import RtpSender, StreamSplicer, parse_rtp
from appliance.media.tones import dtmf_tone, tone_pcm
from test_media_relay import free_range

HOST = "127.0.0.1"


def tone_prompt(seconds: float, name: str = "tone") -> Prompt:
    """A prompt of a 1 kHz tone."""
    pcm = tone_pcm((1000.0,), seconds)
    return Prompt(name, pcm, tuple(frames(pcm)))


class Phone:
    """A UDP socket pair standing in for a phone's RTP and RTCP ports."""

    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.rtp.setblocking(False)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind((HOST, 0))
        self.rtcp.setblocking(False)

    @property
    def port(self) -> int:
        return self.rtp.getsockname()[1]

    def drain(self, sock: socket.socket | None = None) -> list[bytes]:
        out = []
        while True:
            try:
                out.append((sock or self.rtp).recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


@pytest.fixture
def rig():  # type: ignore[no-untyped-def]
    """A loop, an engine, one relay and two phones wired to its legs."""
    loop = asyncio.new_event_loop()
    low, high = free_range(2)
    engine = MediaEngine(loop, PortAllocator(low, high, HOST))
    relay = engine.create_relay()
    caller, callee = Phone(), Phone()
    relay.set_remote("a", HOST, caller.port, caller.rtcp.getsockname()[1])
    relay.set_remote("b", HOST, callee.port, callee.rtcp.getsockname()[1])
    yield loop, relay, caller, callee
    engine.close()
    caller.close()
    callee.close()
    loop.close()


def run(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def headers(packets: list[bytes]):  # type: ignore[no-untyped-def]
    return [parse_rtp(p) for p in packets]


def test_prompt_is_one_paced_stream(rig) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, _ = rig
    ch = MediaChannel(loop, relay, "a", "PCMU", 0, 101, on_digit=lambda d, how: None)
    done = []
    ch.play(tone_prompt(0.2), on_done=lambda: done.append(True))
    run(loop, 0.4)
    got = headers(caller.drain())
    assert done == [True]
    assert len(got) == 10
    assert {h.ssrc for h in got} == {ch.sender.ssrc}
    assert [h.payload_type for h in got] == [0] * 10
    assert [(b.seq - a.seq) & 0xFFFF for a, b in zip(got, got[1:])] == [1] * 9
    assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(got, got[1:])] == [160] * 9
    assert [h.marker for h in got] == [True] + [False] * 9


def test_handover_to_a_person_and_back_keeps_one_stream(rig) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, callee = rig
    ch = MediaChannel(loop, relay, "a", "PCMU", 0, 101, on_digit=lambda d, how: None)
    ch.play(tone_prompt(0.1))
    run(loop, 0.2)
    prompt = headers(caller.drain())
    ch.connect()
    person = RtpSender(ssrc=0x12345678, seq=40000, timestamp=7_000_000)
    for _ in range(5):
        callee.rtp.sendto(person.next_packet(b"\xff" * 160, 0), (HOST, relay.b.port))
        run(loop, 0.02)
    caller.rtp.sendto(b"\x80\x00\x00\x01" + bytes(8) + b"\x7f" * 160, (HOST, relay.a.port))
    run(loop, 0.05)
    relayed = headers(caller.drain())
    assert len(callee.drain()) == 1  # the caller's audio reaches the person untouched
    ch.disconnect()
    ch.play(tone_prompt(0.06))
    run(loop, 0.15)
    back = headers(caller.drain())

    stream = prompt + relayed + back
    assert len(relayed) == 5 and len(back) == 3
    assert {h.ssrc for h in stream} == {ch.sender.ssrc}
    assert [(b.seq - a.seq) & 0xFFFF for a, b in zip(stream, stream[1:])] == [1] * (len(stream) - 1)
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(stream, stream[1:])]
    assert all(160 <= step < 160 * 10 for step in steps), steps  # forward in time, never backwards
    markers = [i for i, h in enumerate(stream) if h.marker]
    assert markers == [0, len(prompt), len(prompt) + len(relayed)]


def test_splicer_restarts_on_a_new_source() -> None:
    sender = RtpSender(ssrc=1, seq=100, timestamp=1000)
    splice = StreamSplicer(sender, lambda: sender.timestamp)
    first = bytearray(RtpSender(ssrc=7, seq=5, timestamp=50).next_packet(b"\0" * 160, 0))
    splice(first, len(first))
    other = bytearray(RtpSender(ssrc=8, seq=9000, timestamp=90).next_packet(b"\0" * 160, 0, marker=False))
    other[1] &= 0x7F
    splice(other, len(other))
    a, b = parse_rtp(bytes(first)), parse_rtp(bytes(other))
    assert (a.ssrc, a.seq, a.timestamp) == (1, 100, 1000)
    assert (b.ssrc, b.seq) == (1, 101) and b.marker


def test_rfc4733_digit_reported_once_despite_repeated_end_packets(rig) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, _ = rig
    heard = []
    MediaChannel(loop, relay, "a", "PCMU", 0, 96, on_digit=lambda d, how: heard.append((d, how)))
    phone = RtpSender(ssrc=99, seq=1, timestamp=8000)
    for digit in "5#":
        for payload, marker, _same in dtmf_packets(digit):
            caller.rtp.sendto(phone.next_packet(payload, 96, samples=0, marker=marker), (HOST, relay.a.port))
            run(loop, 0.005)
        phone.skip(800)
    run(loop, 0.05)
    assert heard == [("5", "rfc4733"), ("#", "rfc4733")]


def test_inband_digit_heard_on_a_line_without_telephone_event(rig) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, _ = rig
    heard = []
    MediaChannel(loop, relay, "a", "PCMU", 0, None, on_digit=lambda d, how: heard.append((d, how)), inband=True)
    phone = RtpSender(ssrc=5, seq=10, timestamp=0)
    pcm = bytes(3200) + dtmf_tone("7", 0.12, 0.2) + bytes(3200)
    for frame in frames(pcm):
        caller.rtp.sendto(phone.next_packet(ulaw_encode(frame), 0), (HOST, relay.a.port))
        run(loop, 0.02)
    run(loop, 0.2)
    assert heard == [("7", "inband")]


def test_digits_sent_as_rfc4733_events(rig) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, _ = rig
    ch = MediaChannel(loop, relay, "a", "PCMA", 8, 101, on_digit=lambda d, how: None)
    done = []
    ch.send_digits("19", on_done=lambda: done.append(True))
    run(loop, 0.6)
    got = caller.drain()
    events = [(parse_rtp(p), p[12:16]) for p in got]
    assert done == [True]
    assert {h.payload_type for h, _ in events} == {101}
    starts = sorted({h.timestamp for h, _ in events})
    assert len(starts) == 2  # one timestamp per digit
    ends = [(body[0], h.timestamp) for h, body in events if body[1] & 0x80]
    assert [e for e, _ in ends] == [1, 1, 1, 9, 9, 9]


def test_rtcp_sender_report_goes_to_the_callers_rtcp_port(rig, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    loop, relay, caller, _ = rig
    monkeypatch.setattr(channel_module.rtcp, "next_interval", lambda rng=None: 0.15)
    ch = MediaChannel(loop, relay, "a", "PCMU", 0, 101, on_digit=lambda d, how: None)
    ch.play(tone_prompt(0.1))
    run(loop, 0.3)
    reports = [rtcp.parse_rtcp(p) for p in caller.drain(caller.rtcp)]
    assert reports, "no RTCP arrived"
    first = reports[-1][0]
    assert first.ssrc == ch.sender.ssrc
    assert first.packet_count == 5
    stats = ch.close()
    assert stats["sent_packets"] == 5


def test_recording_gets_both_directions(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import wave

    from appliance.media.recorder import WavRecorder

    loop, relay, caller, _ = rig
    ch = MediaChannel(loop, relay, "a", "PCMU", 0, 101, on_digit=lambda d, how: None)
    ch.record(WavRecorder(tmp_path / "rec.wav", channels=2, clock=loop.time))
    ch.play(tone_prompt(0.2))
    phone = RtpSender(ssrc=3, seq=1, timestamp=0)
    for _ in range(10):
        caller.rtp.sendto(phone.next_packet(ulaw_encode(tone_pcm((500.0,), 0.02)), 0), (HOST, relay.a.port))
        run(loop, 0.02)
    run(loop, 0.1)
    ch.close()
    with wave.open(str(tmp_path / "rec.wav")) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        data = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    left, right = samples[0::2], samples[1::2]
    assert max(abs(x) for x in left) > 3000  # the caller's 500 Hz tone
    assert max(abs(x) for x in right) > 3000  # the prompt the caller heard


def test_per_call_prompts_are_encoded_but_not_kept() -> None:
    from appliance.media.g711 import codec_for
    from appliance.media.prompts import Prompt, frames

    pcm = b"\x10\x00" * 1600
    before = len(channel_module._ENCODED)
    for _ in range(50):  # fifty callers, fifty announcements: memory must not grow with them
        announcement = Prompt("announcement", pcm, tuple(frames(pcm)))
        assert len(channel_module.encoded_frames(announcement, codec_for("PCMU"))) == 10
    assert len(channel_module._ENCODED) == before
    shared = Prompt("greeting", pcm, tuple(frames(pcm)))
    first = channel_module.encoded_frames(shared, codec_for("PCMU"))
    assert channel_module.encoded_frames(shared, codec_for("PCMU")) is first  # shared prompts: encoded once
