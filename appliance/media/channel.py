"""The box's own end of a call leg: plays prompts, hears DTMF, records, and hands over to a person."""
from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from appliance.media import rtcp
from appliance.media.dtmf import EVENT_STEP_MS, DtmfReceiver, dtmf_packets
from appliance.media.g711 import Codec, codec_for
from appliance.media.goertzel import GoertzelDetector
from appliance.media.jitter import JitterBuffer
from appliance.media.player import FRAME_INTERVAL, FramePacer
from appliance.media.prompts import FRAME_SAMPLES, RATE, Prompt
from appliance.media.recorder import WavRecorder
from appliance.media.recording import RelayRecording
from appliance.media.relay import Relay
from appliance.media.rtp import HEADER_SIZE, RtpError, RtpSender, StreamSplicer, parse_rtp
from appliance.media.tones import dtmf_tone

__all__ = ["MediaChannel", "DigitCallback"]

log = logging.getLogger("switchboard.media")

DigitCallback = Callable[[str, str], Any]
"""(digit, how it came: "rfc4733", "info" or "inband")."""

_EVENT_PAUSE = 0.1  # silence between two RFC 4733 digits we send
_TIMESTAMP = struct.Struct("!I")
# Encoded prompt frames per (prompt, codec): prompts are shared by every call, encode once.
_ENCODED: OrderedDict[tuple[int, str], tuple[Prompt, tuple[bytes, ...]]] = OrderedDict()
ENCODED_CACHE_SIZE = 256


PER_CALL_PROMPTS = frozenset({"announcement", "spoken"})
"""Prompts made for one call (a queue position, a whisper): encoded when played, never cached."""


def encoded_frames(prompt: Prompt, codec: Codec) -> tuple[bytes, ...]:
    """A prompt's frames in a codec, encoded once for all calls."""
    if prompt.name in PER_CALL_PROMPTS:
        return tuple(codec.encode(frame) for frame in prompt.frames)
    key = (id(prompt), codec.name)
    hit = _ENCODED.get(key)
    if hit is None or hit[0] is not prompt:
        hit = (prompt, tuple(codec.encode(frame) for frame in prompt.frames))
        _ENCODED[key] = hit
        if len(_ENCODED) > ENCODED_CACHE_SIZE:
            _ENCODED.popitem(last=False)
    else:
        _ENCODED.move_to_end(key)
    return hit[1]


class MediaChannel:
    """Terminates one relay leg: the caller hears the box, and the box hears the caller.

    Everything the caller hears goes out as one RTP stream (one RtpSender): prompts, tones,
    and, after connect(), the relayed person, spliced into the same SSRC and sequence.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, relay: Relay, side: str, codec: str,
                 payload_type: int, event_pt: int | None, on_digit: DigitCallback,
                 inband: bool = False, cname: str = "switchboard") -> None:
        self._loop = loop
        self._relay = relay
        self._side = side
        self.codec = codec_for(codec)
        self.payload_type = payload_type
        self.event_pt = event_pt
        self._on_digit = on_digit
        self.sender = RtpSender()
        self._clock = relay.clock
        self._pacer = FramePacer(self._clock, self._send_frame, on_skip=self._skipped)
        self._receiver = DtmfReceiver()
        self._inband = GoertzelDetector() if inband else None
        self._jitter = JitterBuffer() if inband else None
        self._listen_handle: Any = None
        self._listen_start = 0.0
        self._listen_ticks = 0
        self._last_sent_at: float | None = None  # loop time of the box's last own packet
        self._relayed_from: str | None = None  # the other leg while connected
        self._event_handles: list[asyncio.TimerHandle] = []
        self.recorder: WavRecorder | None = None
        self._relay_recording: RelayRecording | None = None
        self.connected = False
        self.closed = False
        self.cname = cname
        self.rx = rtcp.ReceptionStats()
        self.tx = rtcp.SenderStats()
        self._rx_ssrc: int | None = None
        self.peer_reports: list[rtcp.ReportBlock] = []
        self._rtcp_handle: asyncio.TimerHandle | None = None
        self.digits_heard = 0
        relay.tap(side, self._on_rtp, self._on_rtcp)
        self._schedule_rtcp()

    def set_digit_handler(self, on_digit: DigitCallback) -> None:
        """Send the digits heard from now on to on_digit (the IVR hands the caller to a queue)."""
        self._on_digit = on_digit

    # --- what the caller hears ------------------------------------------------
    @property
    def playing(self) -> bool:
        """True while a prompt or tone is being sent."""
        return self._pacer.playing

    def play(self, prompt: Prompt, on_done: Callable[[], Any] | None = None, loop: bool | None = None) -> None:
        """Play a prompt now (replacing any other); on_done runs when a non-looping one ends."""
        if self.closed:
            return
        self._resume_clock()
        self._pacer.play(encoded_frames(prompt, self.codec), loop=prompt.loop if loop is None else loop,
                         on_done=on_done)

    def play_pcm(self, pcm_frames: Sequence[bytes], on_done: Callable[[], Any] | None = None) -> None:
        """Play raw 8 kHz PCM frames once (tones made on the fly)."""
        if self.closed:
            return
        self._resume_clock()
        self._pacer.play([self.codec.encode(f) for f in pcm_frames], on_done=on_done)

    def stop(self) -> None:
        """Stop whatever the box is playing; the stream pauses (the next sound starts a talkspurt)."""
        self._pacer.stop()

    def send_digits(self, digits: str, on_done: Callable[[], Any] | None = None,
                    duration_ms: int = 100) -> None:
        """Send DTMF: RFC 4733 events if the peer takes them, else tones in the audio."""
        self.stop()
        if self.event_pt is None:
            pcm = b"".join(dtmf_tone(d, duration_ms / 1000) for d in digits)
            size = FRAME_SAMPLES * 2
            self.play_pcm([pcm[i:i + size].ljust(size, b"\0") for i in range(0, len(pcm), size)], on_done)
            return
        self._resume_clock()
        at = self._loop.time()
        for digit in digits:
            packets = dtmf_packets(digit, duration_ms)
            for i, (payload, marker, _same) in enumerate(packets):
                step = min(i, len(packets) - 3) * EVENT_STEP_MS / 1000  # the 3 end packets go together
                last = i == len(packets) - 1
                self._event_handles.append(self._loop.call_at(
                    at + step, self._send_event, payload, marker, i == 0, last, duration_ms))
            at += duration_ms / 1000 + _EVENT_PAUSE
        if on_done is not None:
            self._event_handles.append(self._loop.call_at(at, on_done))

    def _send_event(self, payload: bytes, marker: bool, first: bool, last: bool, duration_ms: int) -> None:
        sender = self.sender
        if first:
            self._resume_clock()
        self._transmit(sender.next_packet(payload, self.event_pt or 0, samples=0, marker=marker))
        if last:
            sender.skip(duration_ms * RATE // 1000)

    def _send_frame(self, frame: bytes) -> None:
        """Send one paced 20 ms frame of the current prompt."""
        packet = self.sender.next_packet(frame, self.payload_type)
        self._transmit(packet)
        if self.recorder is not None:
            self.recorder.write(1, self.codec.decode(frame))

    def _transmit(self, packet: bytes) -> None:
        if self._relay.send(self._side, packet):
            self._last_sent_at = now = self._loop.time()
            self.tx.sent(_TIMESTAMP.unpack_from(packet, 4)[0], len(packet) - HEADER_SIZE, now)

    def _skipped(self, frames: int) -> None:
        """The pacer fell behind and skipped frames: keep the timestamp on real time."""
        self.sender.skip(frames * FRAME_SAMPLES, talkspurt=False)

    def _expected_timestamp(self) -> int:
        """The RTP timestamp that matches 'now' on the box's stream."""
        sender = self.sender
        if self._last_sent_at is None:
            return sender.timestamp
        late = round((self._loop.time() - self._last_sent_at) * RATE) - FRAME_SAMPLES
        return (sender.timestamp + max(0, late)) & 0xFFFFFFFF

    def _resume_clock(self) -> None:
        """Before the box sends again after a pause or a relayed stretch: timestamp to now, marker on."""
        sender = self.sender
        now = self._loop.time()
        if sender.relayed and self._relayed_from is not None:
            last_rx = self._relay.leg(self._relayed_from).last_rx or now  # type: ignore[arg-type]
            sender.timestamp = (sender.timestamp + max(FRAME_SAMPLES, round((now - last_rx) * RATE))) & 0xFFFFFFFF
            sender.relayed = False
        elif self._last_sent_at is not None:
            gap = round((now - self._last_sent_at) * RATE) - FRAME_SAMPLES
            if gap > 0:
                sender.skip(gap)
        sender.start_talkspurt()

    # --- handing over to a person --------------------------------------------
    def connect(self) -> None:
        """Relay the other leg to the caller inside this stream, and the caller to the other leg."""
        if self.closed or self.connected:
            return
        self.stop()
        self._cancel_events()
        self._stop_listening()
        other = "b" if self._side == "a" else "a"
        self.connected = True
        self._relayed_from = other
        self._relay.untap(self._side)
        self._relay.splice(self._side, StreamSplicer(self.sender, self._expected_timestamp))
        if self.recorder is not None:
            self._monitor_for_recording()

    def disconnect(self) -> None:
        """Take the caller back from the person (for prompts or music); the stream carries on."""
        if self.closed or not self.connected:
            return
        self.connected = False
        self._relay.splice(self._side, None)
        if self._relay_recording is not None:
            self._relay_recording.stop()
            self._relay_recording = None
        self._relay.tap(self._side, self._on_rtp, self._on_rtcp)
        self._receiver = DtmfReceiver()

    # --- recording --------------------------------------------------------------
    def record(self, recorder: WavRecorder) -> None:
        """Record what the caller says (left) and hears (right) from now on."""
        self.recorder = recorder
        if self.connected:
            self._monitor_for_recording()

    def _monitor_for_recording(self) -> None:
        assert self.recorder is not None
        self._relay_recording = RelayRecording(self._relay, self.recorder, self._side,
                                               {self.payload_type: self.codec.name})

    # --- what the box hears ---------------------------------------------------
    def _on_rtp(self, packet: memoryview) -> None:
        """A packet from the caller while the box has the leg."""
        try:
            header = parse_rtp(packet)
        except RtpError:
            return
        now = self._loop.time()
        if header.ssrc != self._rx_ssrc:
            self._rx_ssrc = header.ssrc
            self.rx = rtcp.ReceptionStats()
        pt = header.payload_type
        self.rx.update(header.seq, header.timestamp, now, timed=pt != self.event_pt)
        if pt == self.event_pt:
            for digit in self._receiver.feed(header.payload(packet), header.timestamp, header.marker):
                self._digit(digit, "rfc4733")
        elif pt == self.payload_type:
            if self.recorder is not None:
                self.recorder.write(0, self.codec.decode(bytes(header.payload(packet))))
            if self._jitter is not None:
                self._jitter.push(header.seq, header.timestamp, bytes(header.payload(packet)), now)
                if self._listen_handle is None:
                    self._start_listening()

    def inject_digit(self, digit: str, how: str = "info") -> None:
        """A digit that came some other way (SIP INFO)."""
        if not self.closed and not self.connected:
            self._digit(digit, how)

    def _digit(self, digit: str, how: str) -> None:
        self.digits_heard += 1
        self._on_digit(digit, how)

    def _start_listening(self) -> None:
        self._listen_start = self._loop.time()
        self._listen_ticks = 0
        self._listen_handle = self._clock.call_at(self._listen_start, self._listen_tick)

    def _stop_listening(self) -> None:
        if self._listen_handle is not None:
            self._listen_handle.cancel()
            self._listen_handle = None

    def _listen_tick(self) -> None:
        """Every 20 ms: take the next frame from the jitter buffer and look for tones in it."""
        assert self._jitter is not None and self._inband is not None
        payload = self._jitter.pop()
        if payload is not None:
            for digit in self._inband.feed(self.codec.decode(payload)):
                self._digit(digit, "inband")
        self._listen_ticks += 1
        self._listen_handle = self._clock.call_at(
            self._listen_start + self._listen_ticks * FRAME_INTERVAL, self._listen_tick)

    # --- RTCP ---------------------------------------------------------------------
    def _on_rtcp(self, packet: memoryview) -> None:
        """Reports from the caller's phone: keep what they say about our stream."""
        try:
            items = rtcp.parse_rtcp(bytes(packet))
        except rtcp.RtcpError:
            return
        now = self._loop.time()
        for item in items:
            ntp = getattr(item, "ntp_middle32", None)
            if ntp is not None:
                self.rx.note_sr(ntp, now)
            for block in getattr(item, "blocks", ()):
                if block.ssrc == self.sender.ssrc:
                    self.peer_reports = [block]

    def _schedule_rtcp(self) -> None:
        self._rtcp_handle = self._loop.call_later(rtcp.next_interval(random), self._send_rtcp)

    def _send_rtcp(self) -> None:
        """Send a sender report (or a receiver report before the box has sent anything)."""
        if self.closed:
            return
        self._schedule_rtcp()
        if self.connected:
            return  # the relayed party reports for itself
        now = self._loop.time()
        blocks = [self.rx.report_block(self._rx_ssrc, now)] if self._rx_ssrc is not None else []
        if self.tx.packets:
            data = rtcp.build_sr(self.sender.ssrc, self.tx, time.time(), now, blocks, cname=self.cname)
        else:
            data = rtcp.build_rr(self.sender.ssrc, blocks, cname=self.cname)
        self._relay.send_rtcp(self._side, data)

    def stats(self) -> dict:
        """Figures for the call record: what was sent, received, lost, and the jitter."""
        out: dict[str, Any] = {
            "codec": self.codec.name, "sent_packets": self.tx.packets,
            "received_packets": self.rx.received, "lost_packets": max(0, self.rx.lost),
            "jitter_ms": round(self.rx.jitter_ms, 2), "digits": self.digits_heard,
        }
        if self.peer_reports:
            block = self.peer_reports[0]
            out["peer_lost_packets"] = block.cumulative_lost
            out["peer_jitter_ms"] = round(block.jitter * 1000 / RATE, 2)
        if self._pacer.skipped:
            out["late_frames_skipped"] = self._pacer.skipped
        return out

    # --- end -------------------------------------------------------------------
    def close(self) -> dict:
        """Stop everything this channel does (the relay itself belongs to the call); returns stats."""
        if self.closed:
            return self.stats()
        self.closed = True
        self._pacer.stop()
        self._cancel_events()
        self._stop_listening()
        if self._rtcp_handle is not None:
            self._rtcp_handle.cancel()
        for digit in self._receiver.flush():
            log.debug("digit %s ended without its end packet at hang-up", digit)
        if self._relay_recording is not None:
            self._relay_recording.stop()
        if self.recorder is not None:
            self.recorder.close()
        return self.stats()

    def _cancel_events(self) -> None:
        for handle in self._event_handles:
            handle.cancel()
        self._event_handles.clear()
