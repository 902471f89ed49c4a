"""Sounds for the simulator: tones, DTMF, WAV files and simple level measures (16-bit 8 kHz mono)."""
from __future__ import annotations

import math
import wave
from array import array

RATE = 8000
DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def tone(freqs: tuple[float, ...] | list[float] | float, seconds: float, level: int = 8000) -> bytes:
    """A sum of sine waves, 16-bit little-endian at 8 kHz."""
    fs = [freqs] if isinstance(freqs, (int, float)) else list(freqs)
    n = int(seconds * RATE)
    amp = level / max(1, len(fs))
    return array("h", (int(sum(amp * math.sin(2 * math.pi * f * i / RATE) for f in fs))
                       for i in range(n))).tobytes()


def silence(seconds: float) -> bytes:
    """Silence of the given length."""
    return bytes(2 * int(seconds * RATE))


def dtmf(digits: str, on: float = 0.1, off: float = 0.1) -> bytes:
    """DTMF digits as tones with gaps."""
    out = bytearray()
    for d in digits.upper():
        out += tone(DTMF_FREQS[d], on) + silence(off)
    return bytes(out)


def read_wav(path: str) -> bytes:
    """A WAV file as 16-bit 8 kHz mono (channels mixed, rate converted linearly)."""
    with wave.open(path, "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        samples = [(b - 128) << 8 for b in raw]
    elif width == 2:
        samples = list(array("h", raw[: len(raw) & ~1]))
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV not supported (use 8 or 16-bit)")
    if channels > 1:
        samples = [sum(samples[i:i + channels]) // channels for i in range(0, len(samples), channels)]
    if rate != RATE and samples:
        step = rate / RATE
        count = int(len(samples) / step)
        out = []
        for i in range(count):
            pos = i * step
            j = int(pos)
            frac = pos - j
            nxt = samples[j + 1] if j + 1 < len(samples) else samples[j]
            out.append(int(samples[j] * (1 - frac) + nxt * frac))
        samples = out
    return array("h", samples).tobytes()


def write_wav(path: str, pcm: bytes) -> None:
    """Save 16-bit 8 kHz mono PCM as a WAV file."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def rms(pcm: bytes) -> float:
    """Root mean square level of 16-bit PCM (0 for empty)."""
    samples = array("h", pcm[: len(pcm) & ~1])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))
