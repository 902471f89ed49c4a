"""The IVR as a caller hears and drives it: real audio, real phones, real DTMF tones.

- a baresip phone dials the menu's number and records what it hears: the recording must be the
  greeting the owner set (cross-correlation against the prompt's 8 kHz PCM), not just noise;
- the same phone presses a key (RFC 4733 from baresip's `sndcode`) and lands on the option's
  extension (a registered SIPp uas);
- a caller whose SDP has no telephone-event sends a sox-made DTMF tone buried in white noise as
  G.711 RTP: the box hears it in-band and transfers; the same caller speaking (espeak-ng) must
  not trigger any option.
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from audio_match import audible, ncc_peak
from ivr_peers import Agents
from office_text import extensions
from peers import (LOCALHOST, RunningBox, SipPhone, free_port, new_id, sdp_body,
                   start_baresip, wait_registered)

# baresip, SIPp, sox and espeak-ng are installed by scripts/test; a missing one fails the tests.
pytestmark = [pytest.mark.peers, pytest.mark.realtime]  # audio checked against time: run alone

SECRETS = {"201": "s3cret-201", "202": "s3cret-202"}
RATE = 8000
ITSP_CALLER = "4930123456"


def provision(itsp_port: int) -> str:
    """201 and 202, a trunk delivering to ivr:main, menu 500 with short spoken prompts.

    2 (used by baresip's RFC 4733 key) and 6 (the in-band tone) ring 202; 1 rings 201, so a
    misheard key lands somewhere else. No choice within 2 s after the menu: "Bye." and hang up.
    """
    return f"""
{extensions(SECRETS, "201", "202")}
[[trunks]]
name = "itsp"
host = "{LOCALHOST}"
port = {itsp_port}
inbound = "ivr:main"

[[ivr]]
name = "main"
number = "500"
timeout = 2
max_retries = 0
fallback = "hangup"

[ivr.options]
"1" = "extension:201"
"2" = {{ to = "extension:202", label = "billing" }}
"6" = {{ to = "extension:202", label = "support" }}

[prompts]
greeting = "Hello."
menu = "Choose."
invalid = "Wrong key."
no_input = "Nothing heard."
goodbye = "Bye."
unavailable = "Nobody there."
"""


# --- audio helpers ----------------------------------------------------------------------------

def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True, timeout=30)


def read_pcm(path: Path) -> np.ndarray:
    """A 16-bit mono 8 kHz WAV as float samples."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def write_pcm(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())
    return path


def chirp_wav(path: Path, low: int, high: int, seconds: float = 1.2) -> Path:
    """A half-scale linear sweep from low to high Hz (8 kHz mono 16-bit), with sox."""
    sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "synth", str(seconds), "sine",
        f"{low}-{high}", "vol", "0.5")
    return path


def speech_wav(path: Path, text: str, voice: str = "en") -> Path:
    """espeak-ng speaking text, converted to 8 kHz mono 16-bit with sox."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True, capture_output=True, timeout=30)
    sox(str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path))
    return path


# --- SIP/RTP peer for the trunk side ------------------------------------------------------------

class TrunkCaller:
    """A Python SIP peer on the trunk's address: INVITE with PCMU only, then real paced RTP."""

    def __init__(self, box: RunningBox, itsp_port: int) -> None:
        self.box = box
        self.phone = SipPhone(box, port=itsp_port, user=ITSP_CALLER)
        self.media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.media.bind((LOCALHOST, 0))
        self.call_id, self.tag = new_id(), new_id()
        self.ruri = f"sip:4930555000@{LOCALHOST}:{box.sip_port}"
        self.dialog: list[tuple[str, str]] = []
        self.answer_sdp = ""
        self.box_media: tuple[str, int] | None = None
        self.received_rtp = 0
        self.seq, self.timestamp, self.ssrc = 4711, 160_000, int.from_bytes(os.urandom(4), "big")

    def close(self) -> None:
        self.phone.close()
        self.media.close()

    def invite(self) -> None:
        base = [("From", f"<sip:{ITSP_CALLER}@{LOCALHOST}>;tag={self.tag}"), ("To", f"<sip:4930555000@{LOCALHOST}>"),
                ("Call-ID", self.call_id), ("Contact", self.phone.contact())]
        # PCMU only: no telephone-event, so the box has to listen for tones in the audio.
        self.phone.send(self.phone.build("INVITE", self.ruri, base + [("CSeq", "1 INVITE"),
                                                                      ("Content-Type", "application/sdp")],
                                         sdp_body(self.media.getsockname()[1], formats="0")))
        ok = self.phone.response(self.call_id, "INVITE", timeout=10)
        assert ok.status == 200, ok
        self.answer_sdp = ok.sdp
        self.dialog = [("From", base[0][1]), ("To", ok.header("To") or ""), ("Call-ID", self.call_id)]
        self.phone.send(self.phone.build("ACK", self.ruri, self.dialog + [("CSeq", "1 ACK")]))
        host, port = "", 0
        for line in self.answer_sdp.splitlines():
            if line.startswith("c=IN IP4 "):
                host = line.split()[-1]
            elif line.startswith("m=audio "):
                port = int(line.split()[1])
        assert host and port, self.answer_sdp
        self.box_media = (host, port)

    def stream(self, pcm: np.ndarray, until=None) -> bool:  # type: ignore[no-untyped-def]
        """Send pcm as 20 ms G.711 µ-law packets at real-time pace; stop early when until() is true.

        Returns True if stopped by until(). What the box sends back is drained (and counted).
        """
        assert self.box_media is not None
        ulaw = to_ulaw(pcm)
        start = time.monotonic()
        for index in range(0, len(ulaw) // 160):
            payload = ulaw[index * 160:(index + 1) * 160]
            marker = 0x80 if index == 0 else 0  # a talkspurt starts; payload type 0 (PCMU)
            header = struct.pack("!BBHII", 0x80, marker, self.seq & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
            self.media.sendto(header + payload, self.box_media)
            self.seq += 1
            self.timestamp += 160
            self._drain()
            if until is not None and index % 5 == 4 and until():
                return True
            delay = start + (index + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return False

    def _drain(self) -> None:
        self.media.setblocking(False)
        try:
            while True:
                self.media.recv(2048)
                self.received_rtp += 1
        except BlockingIOError:
            pass
        finally:
            self.media.setblocking(True)

    def box_hung_up(self) -> bool:
        bye = self.phone.poll(lambda m: not m.is_response and m.method == "BYE" and m.call_id == self.call_id)
        if bye is None:
            return False
        self.phone.send(SipPhone.reply(bye, 200, "OK"))
        return True

    def hang_up(self) -> None:
        self.phone.send(self.phone.build("BYE", self.ruri, self.dialog + [("CSeq", "2 BYE")]))
        assert self.phone.response(self.call_id, "BYE").status == 200


def to_ulaw(pcm: np.ndarray) -> bytes:
    """G.711 µ-law bytes for float samples, encoded by sox (not by the box's own codec)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = write_pcm(Path(tmp) / "in.wav", pcm)
        out = Path(tmp) / "out.ul"
        sox(str(source), "-t", "ul", "-r", str(RATE), "-c", "1", str(out))
        return out.read_bytes()


# --- fixtures -------------------------------------------------------------------------------------

class Office:
    """A box whose menu 500 / trunk lead to ivr:main, and the SIPp uas agents registered to it."""

    def __init__(self, box_factory, tmp_path: Path, greeting: Path | None = None) -> None:  # type: ignore[no-untyped-def]
        self.itsp_port = free_port()
        self.workdir = tmp_path / "peers"
        self.workdir.mkdir(exist_ok=True)
        data_dir = tmp_path / "box"
        if greeting is not None:
            # The owner's recording, set the documented way before the box starts.
            done = subprocess.run([sys.executable, "-m", "appliance.cli", "prompt", "set", "greeting", str(greeting),
                                   "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
        self.box: RunningBox = box_factory(provision(self.itsp_port))
        assert self.box.data_dir == data_dir
        self.agents = Agents(self.workdir)

    def agent(self, number: str) -> None:
        """Register `number` from a SIPp uas that answers and waits for BYE."""
        self.agents.start(self.box, number, SECRETS[number])

    def agent_answered(self, number: str) -> bool:
        return self.agents.answered(number)

    def stop_agents(self) -> None:
        self.agents.stop()


@pytest.fixture
def office(box_factory, tmp_path):  # type: ignore[no-untyped-def]
    made: list[Office] = []

    def make(**options) -> Office:  # type: ignore[no-untyped-def]
        made.append(Office(box_factory, tmp_path, **options))
        return made[-1]

    yield make
    for one in made:
        one.stop_agents()


def presses(record: dict) -> list[tuple[str, str]]:
    return [(step["key"], step.get("label", "")) for step in record["ivr_path"]
            if "action" in step and "key" in step]


def events(record: dict) -> list[str]:
    return [step["event"] for step in record["ivr_path"] if "event" in step]


def wait_until(condition, box: RunningBox, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until condition() is true; fail after timeout seconds, showing the calls so far."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s; calls: {box.calls()}\n{box.log()[-2000:]}")
        time.sleep(0.1)


# --- 1. the caller hears the owner's greeting ---------------------------------------------------

def silence_wav(path: Path, seconds: float = 30.0) -> Path:
    """What baresip sends as its microphone when it only listens."""
    sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds))
    return path


def spoken(box: RunningBox, name: str) -> Path:
    """The espeak-ng rendering of a prompt whose words [prompts] overrides, as the box cached it.

    The box renders prompts in the background after it starts: ask once it has played them.
    """
    from appliance.media.prompts import PromptLibrary

    texts = {"menu": "Choose.", "greeting": "Hello.", "goodbye": "Bye."}
    path = PromptLibrary(box.data_dir / "prompts", texts={name: texts[name]}).generated_path(name)
    assert path.is_file(), path
    return path


def test_baresip_hears_the_greeting_the_owner_set(office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    greeting = chirp_wav(tmp_path / "greeting-up.wav", 300, 3000)
    never_played = chirp_wav(tmp_path / "sweep-down.wav", 3000, 300)
    ivr = office(greeting=greeting)
    stored = read_pcm(ivr.box.data_dir / "prompts" / "greeting.wav")   # what the box plays
    assert np.array_equal(stored, read_pcm(greeting))

    ann = start_baresip(ivr.box, "201", SECRETS["201"], tmp_path / "ann", silence_wav(tmp_path / "quiet.wav"))
    try:
        wait_registered(ivr.box, {"201"})
        assert ann.dial("500")["ok"], ann.log()[-2000:]
        ann.wait_event("CALL_ESTABLISHED")
        # Greeting, menu, 2 s without a key, "Bye.", and the box hangs up.
        ann.wait_event("CALL_CLOSED", timeout=20)
    finally:
        ann.stop()

    [record] = ivr.box.wait_for_calls(1)
    assert (record["direction"], record["to_number"], record["answered_by"]) == ("internal", "500", None), record
    assert record["extra"]["box_answered"] == "ivr:main"
    assert (events(record), record["hangup_by"]) == (["entered", "no input", "fallback"], "box"), record
    heard = read_pcm(ann.heard())
    # espeak-ng's "Choose." and "Bye.", as the box rendered them from [prompts].
    menu, goodbye = (audible(read_pcm(spoken(ivr.box, name))) for name in ("menu", "goodbye"))
    # The box sends RTP only while it plays, and baresip records only what it receives.
    assert heard.size >= stored.size + menu.size + goodbye.size - 800, f"{heard.size / RATE:.2f} s recorded"
    score, at = ncc_peak(heard, stored)
    wrong, _ = ncc_peak(heard, read_pcm(never_played))
    menu_score, menu_at = ncc_peak(heard, menu)
    bye_score, bye_at = ncc_peak(heard, goodbye)
    print(f"greeting {score:.3f} at {at / RATE:.3f} s, menu {menu_score:.3f} at {menu_at / RATE:.3f} s, "
          f"goodbye {bye_score:.3f} at {bye_at / RATE:.3f} s, wrong {wrong:.3f}")
    assert score > 0.8, (score, ann.heard())
    assert wrong < 0.3 and score - wrong > 0.5, (score, wrong)
    # Then the menu and the goodbye, in that order, in the same stream.
    assert menu_score > 0.8 and bye_score > 0.8, (menu_score, bye_score)
    assert at + stored.size - 160 <= menu_at < bye_at, (at, menu_at, bye_at)


# --- 2. the caller presses a key on a real phone ----------------------------------------------

def test_baresip_presses_a_key_and_lands_where_the_menu_says(office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ivr = office()
    ivr.agent("202")
    ann = start_baresip(ivr.box, "201", SECRETS["201"], tmp_path / "ann", silence_wav(tmp_path / "quiet.wav"))
    try:
        wait_registered(ivr.box, {"201", "202"})
        assert ann.dial("500")["ok"], ann.log()[-2000:]
        ann.wait_event("CALL_ESTABLISHED")
        ivr.box.wait_for_calls(1, ended=False)
        wait_until(lambda: "IVR main answered" in ivr.box.log(), ivr.box)  # the box is listening
        # menu.so's "sndcode": baresip 1.0.0 sends the key as RFC 4733 telephone-events.
        sent = ann.command("sndcode", "2")
        assert sent["ok"], sent
        wait_until(lambda: ivr.box.calls()[0]["answered_by"] == "202", ivr.box)
        assert ann.hangup()["ok"]
        ann.wait_event("CALL_CLOSED")
    finally:
        ann.stop()
    assert ivr.agent_answered("202")
    [record] = ivr.box.wait_for_calls(1)
    assert (record["direction"], record["from_number"], record["to_number"]) == ("internal", "201", "500"), record
    assert (record["answered_by"], record["disposition"], record["hangup_by"]) == ("202", "answered", "201"), record
    assert presses(record) == [("2", "billing")], record["ivr_path"]
    assert record["extra"]["media"]["digits"] == 1, record["extra"]


# --- 3. DTMF tones in the audio (no telephone-event negotiated) -------------------------------

DTMF = {"6": (770, 1477)}
SNR_DB = 20.0


def dtmf_wav(path: Path, key: str, seconds: float = 0.12) -> Path:
    """The key's two tones at equal level (about -15 dBFS each), made with sox.

    (Not `sine LOW sine mix HIGH`: sox's "mix" halves the second tone, a 6 dB reverse twist that
    a detector rightly rejects.)
    """
    low, high = DTMF[key]
    sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "synth", str(seconds), "sine", str(low),
        "sine", str(high), "remix", "-", "vol", "0.35")
    return path


def white_noise(tmp_path: Path, seconds: float, rms: float) -> np.ndarray:
    """sox's white noise scaled to an RMS level."""
    path = tmp_path / f"noise-{seconds}.wav"
    sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "synth", str(seconds), "whitenoise", "vol", "0.3")
    noise = read_pcm(path)
    return noise * (rms / np.sqrt(np.mean(noise ** 2)))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples ** 2)))


def offered_formats(sdp: str) -> list[str]:
    [media] = [line for line in sdp.splitlines() if line.startswith("m=audio ")]
    return media.split()[3:]


def test_inband_dtmf_in_noise_is_heard_and_transfers(office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ivr = office()
    ivr.agent("202")
    tone = read_pcm(dtmf_wav(tmp_path / "key-6.wav", "6"))
    noise_level = rms(tone) / 10 ** (SNR_DB / 20)
    before, after = int(1.0 * RATE), int(1.5 * RATE)
    signal = np.concatenate([np.zeros(before), tone, np.zeros(after)])
    signal += white_noise(tmp_path, signal.size / RATE + 0.1, noise_level)[:signal.size]
    snr = 20 * np.log10(rms(tone) / rms(signal[:before]))
    assert abs(snr - SNR_DB) < 1.0, snr

    caller = TrunkCaller(ivr.box, ivr.itsp_port)
    try:
        caller.invite()
        assert offered_formats(caller.answer_sdp) == ["0"], caller.answer_sdp  # no telephone-event
        caller.stream(signal)
        wait_until(lambda: ivr.box.calls()[0]["answered_by"] == "202", ivr.box)
        caller.hang_up()
    finally:
        caller.close()
    assert caller.received_rtp > 0, "the box sent no audio (greeting, menu)"
    assert ivr.agent_answered("202")
    [record] = ivr.box.wait_for_calls(1)
    assert (record["direction"], record["from_number"]) == ("inbound", ITSP_CALLER), record
    assert (record["answered_by"], record["disposition"], record["hangup_by"]) == ("202", "answered", ITSP_CALLER), record
    assert presses(record) == [("6", "support")], record["ivr_path"]
    assert record["extra"]["media"]["digits"] == 1, record["extra"]


def test_speech_without_tones_triggers_no_option(office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ivr = office()
    text = ("Hello, this is about invoice six two one nine. Could someone from support or billing call me "
            "back this afternoon? My number is one two three four five six. Thank you so much, bye.")
    speech = np.concatenate([read_pcm(speech_wav(tmp_path / f"speech-{voice}.wav", text, voice))
                             for voice in ("en", "en+f3")])
    speech *= 12000 / np.abs(speech).max()
    caller = TrunkCaller(ivr.box, ivr.itsp_port)
    try:
        caller.invite()
        assert offered_formats(caller.answer_sdp) == ["0"], caller.answer_sdp
        # Talk through greeting, menu and the 2 s wait until the box gives up and hangs up.
        assert caller.stream(speech, until=caller.box_hung_up), "the box never hung up"
    finally:
        caller.close()
    assert caller.received_rtp > 0
    [record] = ivr.box.wait_for_calls(1)
    assert presses(record) == [], record["ivr_path"]
    assert events(record) == ["entered", "no input", "fallback"], record["ivr_path"]
    assert record["extra"]["media"]["digits"] == 0, record["extra"]
    assert (record["answered_by"], record["hangup_by"], record["disposition"]) == (None, "box", "handled"), record
