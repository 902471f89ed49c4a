"""CPU cost of in-band DTMF detection per channel: the Goertzel detector alone and the whole in-band path.

Usage: python bench/goertzel_cost.py [--runs 9] [--seconds 30] [--quick]

Runs in this process, pinned to core 0 (the box's core), on 20 ms frames (160 samples, 16-bit)
of several signals, each --seconds long:
  - silence (digital zero), and noise at -20 dBFS rms (white, Gaussian);
  - speech: espeak-ng reading the prompt texts (if installed), and synthetic voiced speech;
  - DTMF: the digits 0-9 in turn, 100 ms on / 100 ms off, each tone at -12 dBFS (tones.dtmf_tone);
  - a continuous DTMF "5" (every block passes the early checks: the detector's most expensive case).
Per signal, the CPU time (CLOCK_THREAD_CPUTIME_ID, so time the thread was preempted does not
count) of:
  - detector:  GoertzelDetector.feed(pcm frame);
  - in-band path: what MediaChannel does per received frame with in-band detection on: the µ-law
    payload through JitterBuffer.push, then JitterBuffer.pop, G.711 decode, GoertzelDetector.feed
    (the RTP parse, the event loop and the 20 ms listen timer around it are not included: see
    bench/ivr_pacing.py --inband for the whole box);
  - decode + jitter buffer alone (the path without the detector).
µs per 20 ms frame (median of --runs), % of one core per channel (= µs / 20,000 µs), channels one
core could serve (= 20,000 / µs), and the digits found (DTMF: should be 5 per second of signal;
other signals: false detections, "talk-off").
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from common import BOX_CORE, header, median, table
from ivr_common import espeak_speech, noise, pin_self, speech_like

from appliance.media.g711 import ulaw_decode, ulaw_encode
from appliance.media.goertzel import GoertzelDetector
from appliance.media.jitter import JitterBuffer
from appliance.media.tones import dtmf_tone, tone_pcm

FRAME_BYTES = 320  # 160 samples of 16-bit PCM
FRAME_US = 20_000.0

Measure = Callable[[list[bytes], list[bytes]], tuple[float, int]]
"""(frames, payloads) -> (CPU ns, digits found)."""


def signals(seconds: float) -> dict[str, bytes]:
    """Name -> 8 kHz 16-bit LE PCM of the given length."""
    length = int(seconds * 8000) * 2
    digits = b"".join(dtmf_tone(d, 0.1, 0.1) for d in "0123456789")
    out = {"silence": bytes(length), "noise -20 dBFS": noise(seconds),
           "speech (synthetic)": speech_like(seconds, seed=5)}
    spoken = espeak_speech(seconds)
    if spoken is not None:
        out["speech (espeak-ng)"] = spoken
    out["DTMF 100 ms on/off"] = (digits * (length // len(digits) + 1))[:length]
    out["DTMF continuous"] = tone_pcm((770.0, 1336.0), seconds)[:length]
    return out


def framed(pcm: bytes) -> list[bytes]:
    """Whole 20 ms frames of a PCM signal."""
    return [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def detector_only(frames: list[bytes], payloads: list[bytes]) -> tuple[float, int]:
    """CPU ns spent in feed() over all frames, and the digits found."""
    det = GoertzelDetector()
    feed = det.feed
    found = 0
    t0 = time.thread_time_ns()
    for frame in frames:
        found += len(feed(frame))
    return time.thread_time_ns() - t0, found


def inband_path(frames: list[bytes], payloads: list[bytes]) -> tuple[float, int]:
    """CPU ns of push + pop + decode + feed per received µ-law frame, and the digits found."""
    det, jb = GoertzelDetector(), JitterBuffer()
    feed, push, pop = det.feed, jb.push, jb.pop
    found = 0
    t0 = time.thread_time_ns()
    for i, payload in enumerate(payloads):
        push(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, payload, i * 0.02)
        out = pop()
        if out is not None:
            found += len(feed(ulaw_decode(out)))
    return time.thread_time_ns() - t0, found


def without_detector(frames: list[bytes], payloads: list[bytes]) -> tuple[float, int]:
    """CPU ns of push + pop + decode alone."""
    jb = JitterBuffer()
    push, pop = jb.push, jb.pop
    t0 = time.thread_time_ns()
    for i, payload in enumerate(payloads):
        push(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, payload, i * 0.02)
        out = pop()
        if out is not None:
            ulaw_decode(out)
    return time.thread_time_ns() - t0, 0



def measure(fns: list[Measure], frames: list[bytes], payloads: list[bytes],
            runs: int) -> list[tuple[float, float, float, int]]:
    """Per function: median, min and max µs per frame over runs, and the digits found (functions take turns)."""
    for fn in fns:  # warm-up
        fn(frames[:200], payloads[:200])
    per_frame: list[list[float]] = [[] for _ in fns]
    found = [0] * len(fns)
    for _ in range(runs):
        for k, fn in enumerate(fns):
            ns, found[k] = fn(frames, payloads)
            per_frame[k].append(ns / 1000.0 / len(frames))
    return [(median(us), min(us), max(us), n) for us, n in zip(per_frame, found)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each signal")
    ap.add_argument("--quick", action="store_true", help="smoke check: 5 s signals, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 5.0
    pin_self(BOX_CORE)
    try:
        os.nice(-10 if os.geteuid() == 0 else 0)
    except OSError:
        pass
    header(f"Goertzel cost: 20 ms frames, {args.seconds:g} s per signal, median of {args.runs} runs, "
           f"thread CPU time, core {BOX_CORE}")
    rows = []
    for name, pcm in signals(args.seconds).items():
        frames = framed(pcm)
        payloads = [ulaw_encode(f) for f in frames]
        (det_us, lo, hi, det_found), (path_us, _, _, path_found), (base_us, _, _, _) = measure(
            [detector_only, inband_path, without_detector], frames, payloads, args.runs)
        rows.append([name, len(frames), det_us, f"{lo:.1f}-{hi:.1f}", 100.0 * det_us / FRAME_US,
                     int(FRAME_US / det_us), path_us, 100.0 * path_us / FRAME_US, int(FRAME_US / path_us), base_us,
                     f"{det_found} / {path_found}"])
        print(f"  {name}: detector {det_us:.1f} µs/frame, in-band path {path_us:.1f} µs/frame", flush=True)
    print()
    print(table(["signal", "frames", "detector µs/frame", "runs min-max", "detector % core/channel",
                 "detector channels/core", "in-band path µs/frame", "path % core/channel", "path channels/core",
                 "decode+jitter µs/frame", "digits found (detector / path)"], rows))


if __name__ == "__main__":
    main()
