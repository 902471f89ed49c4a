"""JitterBuffer: reordering, duplicates, loss, wrap-around, late packets and depth adaptation."""
from __future__ import annotations

import random

import pytest

from appliance.media.jitter import JitterBuffer


def p(n: int) -> bytes:
    """A payload that names its frame."""
    return n.to_bytes(4, "big")


def drain(jb: JitterBuffer, ticks: int) -> list[int | None]:
    """Pop `ticks` times, mapping payloads back to frame numbers."""
    out: list[int | None] = []
    for _ in range(ticks):
        x = jb.pop()
        out.append(None if x is None else int.from_bytes(x, "big"))
    return out


def feed(jb: JitterBuffer, order: list[int], base_seq: int = 0, extra: int = 8) -> list[int | None]:
    """One packet arrives per 20 ms tick in the given order, then the tick pops; then `extra` more pops."""
    out: list[int | None] = []
    for tick, n in enumerate(order):
        jb.push((base_seq + n) % 65536, n * 160, p(n), tick * 0.02)
        out += drain(jb, 1)
    return out + drain(jb, extra)


def played(out: list[int | None]) -> list[int | None]:
    """Output without the fill before the first frame and the underruns after the last."""
    while out and out[0] is None:
        out = out[1:]
    while out and out[-1] is None:
        out = out[:-1]
    return out


def fixed(ms: int = 60) -> JitterBuffer:
    """A buffer held at one depth, for testing ordering without adaptation."""
    return JitterBuffer(min_depth_ms=ms, max_depth_ms=ms)


def test_in_order_stream_plays_every_frame_at_minimum_depth() -> None:
    jb = JitterBuffer()
    out = feed(jb, list(range(20)))
    assert out[:20] == list(range(20))  # 20 ms depth: each frame plays on the tick it arrives
    assert (jb.lost, jb.late, jb.duplicates, jb.dropped, jb.depth_ms) == (0, 0, 0, 0, 20)


def test_depth_delays_playout_by_whole_frames() -> None:
    out = feed(fixed(60), list(range(10)))
    assert out[:2] == [None, None] and out[2:12] == list(range(10))


def test_reordering_within_window_is_undone() -> None:
    jb = fixed()
    assert played(feed(jb, [1, 0, 3, 2, 5, 4, 6, 9, 7, 8, 10, 11])) == list(range(12))
    assert jb.lost == 0 and jb.late == 0


def test_duplicates_are_dropped() -> None:
    jb = fixed()
    assert jb.push(0, 0, p(0), 0.0)
    assert jb.push(1, 160, p(1), 0.02)
    assert not jb.push(1, 160, p(1), 0.021)
    assert jb.push(2, 320, p(2), 0.04)
    assert played(drain(jb, 5)) == [0, 1, 2]
    assert jb.duplicates == 1
    jb = fixed()
    out = feed(jb, [0, 1, 1, 2, 3, 3, 3, 4])
    assert [n for n in out if n is not None] == [0, 1, 2, 3, 4]  # dups cost ticks: Nones are underruns
    assert jb.duplicates + jb.late == 3 and jb.lost == 0  # the last 3 comes after 3 played


def test_lost_frame_is_a_none_in_its_slot() -> None:
    jb = fixed()
    assert played(feed(jb, [0, 1, 2, 3, 5, 6, 7, 8])) == [0, 1, 2, 3, None, 5, 6, 7, 8]
    assert jb.lost == 1


def test_late_packet_after_its_slot_is_dropped() -> None:
    jb = fixed(20)
    assert feed(jb, [0, 1, 2, 4, 5], extra=0) == [0, 1, 2, None, 4]
    assert not jb.push(3, 3 * 160, p(3), 0.2)
    assert jb.late == 1 and jb.lost == 1
    assert drain(jb, 2) == [5, None]


def test_sequence_wrap_around() -> None:
    jb = fixed()
    order = [0, 1, 2, 3, 4, 6, 5, 7, 8, 9, 10, 11]  # frame 5 is seq 65535, 6 is seq 0
    assert played(feed(jb, order, base_seq=65530)) == list(range(12))
    assert jb.resyncs == 0 and jb.late == 0 and jb.lost == 0
    # Several wraps in a row keep working.
    jb = JitterBuffer()
    for n in range(200_000):
        jb.push(n % 65536, n * 160, p(n % 1000), n * 0.02)
        assert jb.pop() == p(n % 1000)
    assert jb.resyncs == 0


def test_packet_overtaken_before_playout_starts_is_kept() -> None:
    jb = fixed()
    jb.push(1, 160, p(1), 0.0)
    assert drain(jb, 1) == [None]
    jb.push(0, 0, p(0), 0.02)
    jb.push(2, 320, p(2), 0.04)
    assert played(drain(jb, 5)) == [0, 1, 2]
    # Much older than the depth allows: late, and the start is not moved back to it.
    jb = fixed()
    jb.push(50, 50 * 160, p(50), 0.0)
    assert not jb.push(10, 10 * 160, p(10), 0.0)
    assert played(drain(jb, 5)) == [50] and jb.late == 1


def test_big_jump_resyncs_to_the_new_stream() -> None:
    jb = JitterBuffer()
    feed(jb, [0, 1, 2])
    jb.push(40000, 999, p(77), 1.0)
    jb.push(40001, 999 + 160, p(78), 1.02)
    assert played(drain(jb, 4)) == [77, 78]
    assert jb.resyncs == 1


def test_jitter_estimate_follows_rfc3550() -> None:
    jb = JitterBuffer()
    # Transit alternates by 80 timestamp units (10 ms): every |D| is 80.
    expected = 0.0
    for n in range(50):
        jb.push(n, n * 160, p(n), n * 0.02 + (0.01 if n % 2 else 0.0))
        if n:
            expected += (80 - expected) / 16
    assert jb.jitter * 8000 == pytest.approx(expected)
    # Timestamps wrapping at 2**32 are one step, not a four-billion-sample jump.
    jb = JitterBuffer()
    for n in range(50):
        jb.push(n, (2**32 - 800 + n * 160) % 2**32, p(n), n * 0.02)
    assert jb.jitter == pytest.approx(0.0, abs=1e-4)


def simulate(jb: JitterBuffer, delays: list[float], phase: float = 0.007) -> list[tuple[float, int | None]]:
    """Frame n is sent at n*20 ms and arrives delays[n] later; a pop every 20 ms. Returns (pop time, frame)."""
    events = [(n * 0.02 + d, 0, n) for n, d in enumerate(delays)]
    ticks = int((len(delays) * 0.02 + max(delays)) / 0.02) + 10
    events += [(k * 0.02 + phase, 1, k) for k in range(ticks)]
    out: list[tuple[float, int | None]] = []
    for when, kind, n in sorted(events):
        if kind == 0:
            jb.push(n % 65536, (n * 160) % 2**32, p(n), when)
        else:
            x = jb.pop()
            out.append((when, None if x is None else int.from_bytes(x, "big")))
    return out


def playout_delays(out: list[tuple[float, int | None]], frames: range) -> list[float]:
    """Seconds from sending to playing, for the played frames in `frames`."""
    return [when - n * 0.02 for when, n in out if n is not None and n in frames]


def test_depth_adapts_to_observed_jitter() -> None:
    rng = random.Random(7)
    quiet = [0.030] * 300
    noisy = [0.030 + rng.uniform(0.0, 0.06) for _ in range(1500)]
    depths = []
    for delays in (quiet, noisy, quiet + [0.030] * 1200):
        jb = JitterBuffer()
        simulate(jb, delays)
        depths.append(jb.depth_ms)
    assert depths == [20, 80, 20]
    # The estimate is bounded by the configured range.
    jb = JitterBuffer()
    simulate(jb, [0.030 + rng.uniform(0.0, 0.3) for _ in range(500)])
    assert jb.depth_ms == 100


def test_jittery_stream_plays_without_loss_at_bounded_delay() -> None:
    rng = random.Random(11)
    delays = [0.030] * 500 + [0.030 + rng.uniform(0.0, 0.06) for _ in range(3000)]
    jb = JitterBuffer()
    out = simulate(jb, delays)
    calm = playout_delays(out, range(100, 500))
    assert max(calm) <= 0.030 + 0.020 + 0.001  # 20 ms depth: at most one tick after arrival
    noisy = playout_delays(out, range(1000, 3500))
    assert len(noisy) == 2500  # every frame played once jitter is learnt
    assert jb.late + jb.lost < 0.01 * len(delays)
    assert max(noisy) <= 0.030 + 0.060 + 0.100 + 0.020  # worst network delay + max depth + a tick


def test_delay_shrinks_by_dropping_frames_when_jitter_falls() -> None:
    rng = random.Random(3)
    delays = [0.030 + rng.uniform(0.0, 0.08) for _ in range(800)] + [0.030] * 3000
    jb = JitterBuffer()
    out = simulate(jb, delays)
    assert jb.depth_ms == 20 and jb.dropped > 0
    assert max(playout_delays(out, range(500, 800))) > 0.1  # high while the network was jittery
    late_calm = playout_delays(out, range(2800, 3800))
    # Back to the target give or take the one frame of hysteresis that stops it oscillating.
    assert len(late_calm) == 1000 and max(late_calm) <= 0.030 + 0.040 + 0.001
