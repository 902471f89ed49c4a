"""Call-progress and DTMF tones synthesised as 8 kHz PCM prompts (no files needed)."""
from __future__ import annotations

import math
import struct
from functools import lru_cache

from appliance.media.dtmf import DIGITS
from appliance.media.prompts import RATE, Prompt, frames

__all__ = ["RINGBACK_REGIONS", "ringback", "dtmf_tone", "tone_pcm"]

# (frequencies, on/off cadence in seconds) per region, from ITU-T E.180 and national practice.
RINGBACK_REGIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "eu": ((425.0,), (1.0, 4.0)),
    "us": ((440.0, 480.0), (2.0, 4.0)),
    "uk": ((400.0, 450.0), (0.4, 0.2, 0.4, 2.0)),
}
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = "123A456B789C*0#D"
_LEVEL = 0.25  # of full scale per tone: about -15 dBm0 each, well inside G.711's range


def tone_pcm(freqs: tuple[float, ...], seconds: float, level: float = _LEVEL) -> bytes:
    """Sum of sine tones as 16-bit little-endian PCM at 8 kHz."""
    count = round(seconds * RATE)
    amp = 32767 * level
    samples = (
        round(amp * sum(math.sin(2 * math.pi * f * n / RATE) for f in freqs)) for n in range(count)
    )
    return struct.pack(f"<{count}h", *samples)


def _silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * RATE))


@lru_cache(maxsize=None)
def ringback(region: str = "eu") -> Prompt:
    """One looping cadence of the region's ringback tone."""
    try:
        freqs, cadence = RINGBACK_REGIONS[region]
    except KeyError:
        raise ValueError(f"unknown ringback region {region!r} (known: {', '.join(RINGBACK_REGIONS)})") from None
    pcm = b"".join(tone_pcm(freqs, s) if i % 2 == 0 else _silence(s) for i, s in enumerate(cadence))
    return Prompt(f"ringback-{region}", pcm, tuple(frames(pcm)), loop=True)


@lru_cache(maxsize=32)
def dtmf_tone(digit: str, on: float = 0.1, off: float = 0.1) -> bytes:
    """A DTMF digit as audio (for lines without telephone-event): tone then pause."""
    key = digit.upper()
    if len(key) != 1 or key not in DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    index = _KEYPAD.index(key)
    return tone_pcm((_ROWS[index // 4], _COLS[index % 4]), on) + _silence(off)


@lru_cache(maxsize=None)
def busy_tone(cycles: int = 4) -> Prompt:
    """A few cycles of a busy tone (425 Hz, half a second on and off), played once."""
    pcm = b"".join(tone_pcm((425.0,), 0.5) + _silence(0.5) for _ in range(cycles))
    return Prompt(f"busy-{cycles}", pcm, tuple(frames(pcm)))
