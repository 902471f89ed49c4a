"""baresip (Debian's 1.0.0) as two real phones: register, call through the box, audio both ways.

Each phone plays its own tone as its microphone (201: 440 Hz, 202: 1000 Hz) and records what it
hears; each must hear the OTHER phone's tone, relayed by the box's RTP ports.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import PROVISION
from peers import analyse_tone, baresip_module_dir, have, start_baresip, tone_wav, wait_registered

# In CI the tools are installed by scripts/test: a missing one is a failure there, not a skip.
_missing = [tool for tool in ("baresip", "sox") if not have(tool)]
if not _missing and baresip_module_dir() is None:
    _missing.append("baresip modules")
pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(bool(_missing) and not os.environ.get("CI"), reason=f"not installed: {', '.join(_missing)}"),
]

# The box's default challenge is MD5 only because of this very phone: libre 1.1.0 (under baresip
# 1.0.0) aborts digest auth with ENOSYS as soon as ANY challenge names another algorithm.
ANN_TONE, BOB_TONE = 440.0, 1000.0
TALK_SECONDS = 3.0


def _box(box_factory, tmp_path: Path, settings: str | None):  # type: ignore[no-untyped-def]
    if settings is not None:
        (tmp_path / "box").mkdir(parents=True, exist_ok=True)
        (tmp_path / "box" / "switchboard.toml").write_text(settings)
    return box_factory(PROVISION, "--ring-timeout", "10")


def test_two_baresip_phones_talk_both_ways_through_the_box(box_factory, tmp_path):
    box = _box(box_factory, tmp_path, None)
    ann_tone = tone_wav(tmp_path / "ann-440.wav", ANN_TONE, 20)
    bob_tone = tone_wav(tmp_path / "bob-1000.wav", BOB_TONE, 20)
    ann = start_baresip(box, "201", "s3cret-201", tmp_path / "ann", ann_tone)
    bob = start_baresip(box, "202", "s3cret-202", tmp_path / "bob", bob_tone)
    try:
        rows = wait_registered(box, {"201", "202"})
        for number in ("201", "202"):
            [contact] = rows[number]["contacts"]
            assert "baresip" in contact["user_agent"], contact
            assert contact["source"].startswith("udp:127.0.0.1:"), contact

        assert ann.dial("202")["ok"], ann.log()[-2000:]
        ann.wait_event("CALL_ESTABLISHED")
        bob.wait_event("CALL_ESTABLISHED")
        time.sleep(TALK_SECONDS)
        assert ann.hangup()["ok"]
        closed = bob.wait_event("CALL_CLOSED")
        ann.wait_event("CALL_CLOSED")
        assert "reset by peer" in closed.get("param", ""), closed  # baresip 1.0.0 words a received BYE so
    finally:
        ann.stop()
        bob.stop()

    [record] = box.wait_for_calls(1)
    assert (record["from_number"], record["to_number"], record["answered_by"]) == ("201", "202", "202"), record
    assert (record["disposition"], record["hangup_by"]) == ("answered", "201"), record
    assert TALK_SECONDS - 0.5 <= record["duration"] <= TALK_SECONDS + 4, record

    # Media went through the box's relay, not phone to phone.
    low, high = box.rtp
    for phone in (ann, bob):
        sources = phone.rtp_sources()
        assert sources and all(low <= port <= high + 1 for _, port in sources), (phone.number, sources, box.rtp)

    for phone, own, other in ((ann, ANN_TONE, BOB_TONE), (bob, BOB_TONE, ANN_TONE)):
        sent = analyse_tone(phone.sent())
        assert abs(sent.dominant - own) < 10, (phone.number, "sent", sent.dominant)
        heard = analyse_tone(phone.heard())
        where = f"{phone.number} heard {phone.heard()}"
        assert heard.seconds >= TALK_SECONDS - 0.5, (where, heard.seconds)
        assert heard.rms > 2000, (where, "too quiet", heard.rms)        # a half-scale tone is ~11600
        assert abs(heard.dominant - other) < 10, (where, heard.dominant)
        assert heard.band_power(other) > 100 * heard.band_power(own), (where, "own tone echoed back")
        good = [w for w in heard.windows if abs(w[0] - other) < 10 and w[1] > 2000]
        assert len(good) >= 0.9 * len(heard.windows), (where, heard.windows)
