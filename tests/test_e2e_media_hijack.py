"""Media hijacking end to end (issue 13, finding 3): an outsider spraying RTP at the box hears nothing and
takes over nothing.

A real box in-process on 127.0.0.1; Ann calls Bob with raw SIP phones whose media sockets send two
different tones. An attacker on 127.0.0.2 sprays RTP and RTCP at every port of the box's media range,
before and during the call. Each phone must hear only the other (cross-correlated), and the attacker
nothing at all.
"""
from __future__ import annotations

import math
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from audio_match import ncc_peak
from conftest import PROVISION
from live_box import LiveBox
from peers import LOCALHOST, SipPhone, invite_with_auth, new_id, sdp_audio, sdp_body

from appliance.media.g711 import ulaw_decode as decode_ulaw
from appliance.media.g711 import ulaw_encode as encode_ulaw

pytestmark = pytest.mark.realtime  # audio checked against time: scripts/test runs it alone

ATTACKER = "127.0.0.2"
FRAMES = 60  # 20 ms frames each phone sends: 1.2 s of audio


def tone(freq: float, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    """A tone with a little noise (so correlation has something to lock onto), 16-bit samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * 160) / 8000
    return (8000 * np.sin(2 * math.pi * freq * t) + rng.normal(0, 800, t.size)).astype(np.int16)


def rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + payload


class Sprayer(threading.Thread):
    """The attacker: RTP and RTCP to every port of the range, over and over, for a bounded time."""

    def __init__(self, low: int, high: int, seconds: float = 8.0) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ATTACKER, 0))
        self.sock.setblocking(False)
        self.ports = range(low, high + 2)
        self.deadline = time.monotonic() + seconds
        self.stop_now = threading.Event()
        self.heard: list[bytes] = []
        self.sent = 0
        self.noise = encode_ulaw(tone(3100, 1, seed=9).tobytes())

    def run(self) -> None:
        seq = 0
        while not self.stop_now.is_set() and time.monotonic() < self.deadline:
            for port in self.ports:
                packet = rtp(seq, 0xBADBAD, self.noise) if port % 2 == 0 else b"\x81\xc8\x00\x06" + bytes(24)
                try:
                    self.sock.sendto(packet, (LOCALHOST, port))
                    self.sent += 1
                except OSError:
                    pass
            seq += 1
            self._drain()
            time.sleep(0.005)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.heard.append(self.sock.recv(2048))
            except (BlockingIOError, OSError):
                return


@pytest.fixture
def box(tmp_path: Path):  # type: ignore[no-untyped-def]
    live = LiveBox(tmp_path / "box", PROVISION)
    yield live
    live.stop()


def _media_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST, 0))
    sock.settimeout(0.5)
    return sock


def _collect(sock: socket.socket, into: list[tuple[bytes, tuple]], until: float) -> None:
    sock.settimeout(0.02)
    while time.monotonic() < until:
        try:
            into.append(sock.recvfrom(2048))
        except socket.timeout:
            continue


def test_a_spraying_attacker_neither_hears_nor_hijacks_a_call(box) -> None:  # type: ignore[no-untyped-def]
    settings = box.box.settings
    attacker = Sprayer(settings.rtp_port_min, settings.rtp_port_max)
    attacker.start()
    ann_rtp, bob_rtp = _media_socket(), _media_socket()
    ann_voice, bob_voice = tone(440, seed=1), tone(1000, seed=2)
    heard: dict[str, list[tuple[bytes, tuple]]] = {"ann": [], "bob": []}
    try:
        with SipPhone(box, user="201") as ann, SipPhone(box, user="202") as bob:  # type: ignore[arg-type]
            assert bob.register("202", "s3cret-202", 600).status == 200
            dialog, call_id = invite_with_auth(ann, box, "202", "s3cret-201", formats="0 101")
            invite = bob.request_in("INVITE")
            _, box_b, _, _ = sdp_audio(invite.sdp)
            tag = new_id()
            bob.send(bob.reply(invite, 200, "OK", tag, [("Contact", bob.contact())],
                               sdp_body(bob_rtp.getsockname()[1], formats="0 101")))
            ok = ann.response(call_id, "INVITE")
            assert ok.status == 200, ok
            _, box_a, _, _ = sdp_audio(ok.sdp)
            contact = ok.header("Contact").strip("<>").split(">")[0]
            ann.send(ann.build("ACK", contact, [dialog[0], ("To", ok.header("To")), dialog[2], ("CSeq", "2 ACK")]))
            bob.request_in("ACK", invite.call_id)
            time.sleep(0.3)  # the attacker gets a head start on the fresh relay ports, as in the report

            listeners = [threading.Thread(target=_collect, args=(sock, heard[name], time.monotonic() + 2.5))
                         for name, sock in (("ann", ann_rtp), ("bob", bob_rtp))]
            for thread in listeners:
                thread.start()
            for i in range(FRAMES):
                ann_rtp.sendto(rtp(i, 0xA, encode_ulaw(ann_voice[i * 160:(i + 1) * 160].tobytes())),
                               (LOCALHOST, box_a))
                bob_rtp.sendto(rtp(i, 0xB, encode_ulaw(bob_voice[i * 160:(i + 1) * 160].tobytes())),
                               (LOCALHOST, box_b))
                time.sleep(0.005)
            for thread in listeners:
                thread.join()
            bob.send(bob.build("BYE", invite.header("Contact").strip("<>").split(">")[0],
                               [("From", f"{invite.header('To')};tag={tag}"), ("To", invite.header("From")),
                                ("Call-ID", invite.call_id), ("CSeq", "10 BYE")]))
    finally:
        attacker.stop_now.set()
        attacker.join(10)
        ann_rtp.close(), bob_rtp.close()

    assert attacker.sent > 1000
    assert attacker.heard == [], f"the attacker heard {len(attacker.heard)} packets"
    for name, voice, other in (("ann", bob_voice, ann_voice), ("bob", ann_voice, bob_voice)):
        packets = heard[name]
        ssrcs = {struct.unpack("!I", data[8:12])[0] for data, _ in packets}
        assert ssrcs == ({0xB} if name == "ann" else {0xA}), (name, ssrcs)
        assert len(packets) >= FRAMES * 0.95, (name, len(packets))
        audio = np.frombuffer(b"".join(decode_ulaw(d[12:]) for d, _ in sorted(packets, key=lambda p: struct.unpack("!H", p[0][2:4])[0])),
                              dtype=np.int16).astype(np.float64)
        assert ncc_peak(audio, voice[:4000].astype(np.float64))[0] > 0.9, name
        assert ncc_peak(audio, other[:4000].astype(np.float64))[0] < 0.3, name
