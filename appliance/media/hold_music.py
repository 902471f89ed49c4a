"""The default music on hold: a soft synthesised arpeggio over I-vi-IV-V in C, 16 s, seamless when looped."""
from __future__ import annotations

import math
import warnings
from array import array
from functools import cache, lru_cache

with warnings.catch_warnings():  # stdlib below 3.13 (deprecated), audioop-lts from 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["RATE", "SECONDS", "LEVEL_DBFS", "MAX_PARTIAL_HZ", "default_hold_music"]

RATE = 8000  # the same as prompts.RATE (not imported: prompts imports this module)
SECONDS = 16  # 800 whole 20 ms frames, so a looped prompt has no padded silence at the wrap
LEVEL_DBFS = -18.0  # RMS relative to full scale
# Every partial stays below the lowest DTMF column tone (1209 Hz): with no energy there, no
# mix of notes can look like a key press to the in-band detector, whatever the row band holds.
MAX_PARTIAL_HZ = 1100.0

_CHORD_SECONDS = 4.0
_STEP = 0.5  # seconds between arpeggio notes
# (bass, chord tones low to high) as MIDI note numbers: C, Am, F, G.
_CHORDS = (
    (48, (60, 64, 67, 72)),
    (45, (57, 60, 64, 69)),
    (41, (53, 57, 60, 65)),
    (43, (55, 59, 62, 67)),
)
_PATTERN = (0, 1, 2, 3, 2, 1, 2, 1)  # indexes into the chord tones, one per step
_WIDTH = 4  # notes are mixed as 32-bit integers by audioop (C speed, no clipping)
_UNIT = float(1 << 20)  # a note's full amplitude in the mix: headroom for many overlapping notes

Voice = tuple[tuple[tuple[int, float], ...], float, float, float, float]
"""(partials as (multiple, amplitude), attack s, decay time constant s, length s, release s)."""
_BELL: Voice = (((1, 1.0), (2, 0.12)), 0.02, 0.45, 1.6, 0.25)
_BASS: Voice = (((1, 1.0), (2, 0.5), (3, 0.2)), 0.08, 2.5, 4.4, 0.6)
_PAD: Voice = (((1, 1.0),), 0.8, 30.0, 4.6, 0.8)


def _hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


@cache
def _render(note: int, voice: Voice) -> bytes:
    """One note at full amplitude as 32-bit PCM."""
    partials, attack, decay, length, release = voice
    f = _hz(note)
    if any(k * f >= MAX_PARTIAL_HZ for k, _ in partials):
        raise ValueError(f"note {note} has a partial above {MAX_PARTIAL_HZ:g} Hz")
    count = round(length * RATE)
    k = -1.0 / (decay * RATE)
    env = [_UNIT * math.exp(k * n) for n in range(count)]
    # Raised-cosine attack and release: the envelope starts and ends at zero with zero slope,
    # so notes never click when they begin, end or overlap.
    a, r = round(attack * RATE), round(release * RATE)
    for n in range(a):
        env[n] *= 0.5 - 0.5 * math.cos(math.pi * n / a)
    for n in range(r):
        env[count - 1 - n] *= 0.5 - 0.5 * math.cos(math.pi * n / r)
    wave = [0.0] * count
    for mult, amp in partials:
        w = 2.0 * math.pi * mult * f / RATE
        wave = [s + amp * math.sin(w * n) for n, s in enumerate(wave)]
    return array("i", [round(e * s) for e, s in zip(env, wave)]).tobytes()


def _mix(out: bytearray, start: float, note: int, gain: float, voice: Voice) -> None:
    """Add one note to out, wrapping past the end so the loop point is seamless."""
    pcm = audioop.mul(_render(note, voice), _WIDTH, gain)
    at = round(start * RATE) * _WIDTH % len(out)
    while pcm:
        part, pcm = pcm[: len(out) - at], pcm[len(out) - at:]
        out[at:at + len(part)] = audioop.add(out[at:at + len(part)], part, _WIDTH)
        at = 0


@lru_cache(maxsize=1)
def default_hold_music() -> bytes:
    """16-bit mono 8 kHz PCM of the default hold music (deterministic; loop it)."""
    out = bytearray(_WIDTH * SECONDS * RATE)
    for i, (bass, tones) in enumerate(_CHORDS):
        at = i * _CHORD_SECONDS
        _mix(out, at, bass, 0.55, _BASS)
        for note in tones[:3]:
            _mix(out, at - 0.3, note, 0.12, _PAD)  # swells in just before the chord change
        for j, index in enumerate(_PATTERN):
            _mix(out, at + j * _STEP, tones[index], 0.45 if j == 0 else 0.3, _BELL)
    target = (1 << 31) * 10.0 ** (LEVEL_DBFS / 20.0)
    return audioop.lin2lin(audioop.mul(bytes(out), _WIDTH, target / audioop.rms(out, _WIDTH)), _WIDTH, 2)
