"""WavRecorder: mono/stereo layout, alignment by arrival time, crash safety, disk errors, G.711."""
from __future__ import annotations

import shutil
import struct
import wave
from pathlib import Path

import pytest

from appliance.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.media.recorder import WavRecorder

FRAME = 160  # samples in a 20 ms packet


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def packet(value: int, samples: int = FRAME) -> bytes:
    """A packet's worth of PCM with every sample equal to value (names the packet)."""
    return struct.pack("<h", value) * samples


def read(path: Path) -> tuple[wave._wave_params, list[tuple[int, ...]]]:
    """WAV parameters and its frames as per-frame sample tuples."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        raw = w.readframes(params.nframes)
    assert len(raw) == params.nframes * params.nchannels * 2
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    ch = params.nchannels
    return params, [tuple(samples[i:i + ch]) for i in range(0, len(samples), ch)]


def channel(frames: list[tuple[int, ...]], c: int) -> list[int]:
    return [f[c] for f in frames]


def run(rec: WavRecorder, clock: Clock, seconds: float, sides: dict[int, object], start_value: int = 1) -> None:
    """Advance 20 ms at a time; each side's predicate says whether it sends a packet at that tick."""
    ticks = round(seconds / 0.02)
    for i in range(ticks):
        for c, sends in sides.items():
            if sends(i):  # type: ignore[operator]
                rec.write(c, packet(start_value + i + 1000 * c))
        clock.t += 0.02


def test_mono_recording(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "a" / "b" / "mono.wav", channels=1, clock=clock)
    for i in range(50):
        rec.write(0, packet(i + 1))
        clock.t += 0.02
    assert rec.close() == 1.0
    params, frames = read(rec.path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (1, 2, 8000, 8000)
    assert channel(frames, 0) == [i + 1 for i in range(50) for _ in range(FRAME)]


def test_stereo_channels_are_interleaved_in_order(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "stereo.wav", clock=clock)
    run(rec, clock, 2.0, {0: lambda i: True, 1: lambda i: True})
    assert rec.close() == 2.0
    params, frames = read(rec.path)
    assert (params.nchannels, params.nframes) == (2, 16000)
    assert channel(frames, 0) == [i + 1 for i in range(100) for _ in range(FRAME)]
    assert channel(frames, 1) == [1000 + i + 1 for i in range(100) for _ in range(FRAME)]


def test_gap_in_one_channel_keeps_alignment(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "gap.wav", clock=clock)
    # Channel 1 says nothing from 1 s to 2 s (ticks 50..99); channel 0 talks throughout.
    run(rec, clock, 3.0, {0: lambda i: True, 1: lambda i: not 50 <= i < 100})
    assert rec.close() == 3.0
    _, frames = read(rec.path)
    right = channel(frames, 1)
    assert len(frames) == 24000
    assert right[:8000] == [1000 + i + 1 for i in range(50) for _ in range(FRAME)]
    assert right[8000:16000] == [0] * 8000
    assert right[16000:] == [1000 + i + 1 for i in range(100, 150) for _ in range(FRAME)]
    assert channel(frames, 0) == [i + 1 for i in range(150) for _ in range(FRAME)]


def test_channel_silent_throughout_is_padded(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "oneway.wav", clock=clock, flush_every=0.5)
    run(rec, clock, 4.0, {0: lambda i: True})
    assert rec.duration >= 4.0 - 0.5 - 0.25  # flushes did not wait for the silent side
    assert rec.close() == 4.0
    _, frames = read(rec.path)
    assert channel(frames, 1) == [0] * 32000
    assert channel(frames, 0) == [i + 1 for i in range(200) for _ in range(FRAME)]


def test_side_starting_late_lands_at_its_time(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "late_start.wav", clock=clock)
    run(rec, clock, 2.0, {0: lambda i: True, 1: lambda i: i >= 75})  # channel 1 starts at 1.5 s
    rec.close()
    _, frames = read(rec.path)
    right = channel(frames, 1)
    assert right[:12000] == [0] * 12000 and right[12000] == 1000 + 75 + 1


def test_small_jitter_joins_and_a_lost_packet_leaves_a_gap(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "jitter.wav", channels=1, clock=clock)
    rec.write(0, packet(1), at=100.0)
    rec.write(0, packet(2), at=100.025)  # 5 ms late: no silence inserted
    rec.write(0, packet(3), at=100.08)  # one packet (20 ms) lost: a 20 ms gap (plus the 5 ms)
    clock.t = 100.1
    rec.close()
    _, frames = read(rec.path)
    mono = channel(frames, 0)
    assert mono[:320] == [1] * FRAME + [2] * FRAME
    assert mono[320:640] == [0] * 320 and mono[640:800] == [3] * FRAME


def test_flush_holds_back_so_a_late_packet_still_lands_in_place(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "hold.wav", clock=clock)
    run(rec, clock, 1.02, {0: lambda i: True})  # the write at 1.0 s flushes; channel 1 has sent nothing
    rec.write(1, packet(42), at=100.9)  # 120 ms late
    rec.close()
    right = channel(read(rec.path)[1], 1)
    assert right[:7200] == [0] * 7200 and right[7200:7360] == [42] * FRAME


def test_late_audio_is_appended_never_reordered(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "late.wav", channels=1, clock=clock)
    rec.write(0, packet(1), at=100.0)
    rec.write(0, packet(2), at=100.04)  # leaves a 20 ms gap
    rec.write(0, packet(3), at=100.02)  # the packet for that gap, arriving after
    clock.t = 100.1
    rec.close()
    _, frames = read(rec.path)
    mono = channel(frames, 0)
    assert mono[:800] == [1] * FRAME + [0] * FRAME + [2] * FRAME + [3] * FRAME + [0] * FRAME


def test_file_is_valid_mid_recording(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "live.wav", clock=clock, flush_every=1.0)
    snapshot = tmp_path / "snapshot.wav"
    assert read(rec.path)[0].nframes == 0  # valid from the very start
    run(rec, clock, 3.5, {0: lambda i: True, 1: lambda i: i % 10 < 5})
    shutil.copy(rec.path, snapshot)  # what a crash now would leave
    params, frames = read(snapshot)
    assert params.nchannels == 2
    assert params.nframes >= (3.5 - 1.0 - 0.25) * 8000  # at most flush_every + 0.25 s lost
    assert channel(frames, 0) == [i + 1 for i in range(len(frames) // FRAME) for _ in range(FRAME)]
    assert rec.duration == params.nframes / 8000
    rec.close()
    assert read(rec.path)[0].nframes == 28000


def test_close_pads_to_close_time_and_is_idempotent(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "idem.wav", clock=clock)
    run(rec, clock, 1.0, {0: lambda i: True, 1: lambda i: True})
    clock.t += 60.0  # a minute of hold: no packets either way
    assert rec.close() == 61.0
    size = rec.path.stat().st_size
    assert size == 44 + 61 * 8000 * 4
    clock.t += 5
    assert rec.close() == 61.0
    rec.write(0, packet(9))
    rec.write_g711(1, b"\xff" * FRAME, "PCMU")
    rec.flush()
    assert rec.closed and rec.path.stat().st_size == size and rec.error is None


def test_memory_stays_bounded_against_a_flood(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "flood.wav", clock=clock)
    for _ in range(1000):  # 20 s of audio arriving in one instant
        rec.write(0, packet(5))
    assert rec.dropped_frames == (1000 - 100) * FRAME  # 2 s ahead of the clock is the limit
    assert max(len(b) for b in rec._pending) <= 2 * 8000 * 2
    rec.close()


def test_g711_payloads_are_decoded(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "g711.wav", clock=clock)
    speech = struct.pack("<160h", *[(i * 397) % 20000 - 10000 for i in range(FRAME)])
    mu, a = ulaw_encode(speech), alaw_encode(speech)
    rec.write_g711(0, mu, "PCMU")
    rec.write_g711(1, a, "pcma/8000")
    clock.t += 0.02
    rec.write_g711(0, mu, 0)
    rec.write_g711(1, a, 8)
    clock.t += 0.02
    rec.close()
    _, frames = read(rec.path)
    assert b"".join(struct.pack("<h", s) for s in channel(frames, 0)) == ulaw_decode(mu) * 2
    assert b"".join(struct.pack("<h", s) for s in channel(frames, 1)) == alaw_decode(a) * 2
    assert ulaw_decode(mu) != alaw_decode(a)  # the channels really went through different codecs


def test_unwritable_path_records_nothing_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = WavRecorder(blocker / "call.wav", clock=Clock())
    assert rec.error is not None and "not-a-dir" in rec.error and rec.closed
    rec.write(0, packet(1))
    rec.write_g711(1, b"\xff" * FRAME, "PCMU")
    assert rec.close() == 0.0


def test_disk_full_mid_call_stops_recording_not_the_call(tmp_path: Path) -> None:
    clock = Clock()
    rec = WavRecorder(tmp_path / "full.wav", clock=clock, flush_every=0.5)
    run(rec, clock, 1.0, {0: lambda i: True, 1: lambda i: True})
    good = rec.duration
    assert good > 0 and rec.error is None
    rec._file.close()  # type: ignore[union-attr]
    rec._file = open("/dev/full", "wb")  # every write from now on fails with ENOSPC
    run(rec, clock, 2.0, {0: lambda i: True, 1: lambda i: True})
    assert rec.error is not None and "No space left" in rec.error and rec.closed
    run(rec, clock, 1.0, {0: lambda i: True})  # later audio is ignored quietly
    assert rec.close() == good
    params, _ = read(rec.path)
    assert params.nframes == good * 8000


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WavRecorder(tmp_path / "x.wav", channels=3)
    rec = WavRecorder(tmp_path / "y.wav", channels=1, clock=Clock())
    with pytest.raises(ValueError):
        rec.write(1, packet(1))
    with pytest.raises(ValueError):
        rec.write_g711(0, b"\x00", "G729")
    rec.write(0, packet(7, 3) + b"\x01")  # odd trailing byte dropped, not shifted into the next write
    rec.write(0, packet(8, 3))
    rec.close()
    assert channel(read(rec.path)[1], 0)[:6] == [7, 7, 7, 8, 8, 8]
