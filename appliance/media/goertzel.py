"""In-band DTMF detection (Goertzel bins on the 8 DTMF frequencies) for 16-bit PCM."""
from __future__ import annotations

import cmath
import math
import sys
import warnings
from array import array

with warnings.catch_warnings():  # stdlib below 3.13 (deprecated), audioop-lts from 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["GoertzelDetector", "goertzel_power", "ROWS", "COLS", "KEYS"]

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")

_BLOCK_8K = 102  # 12.75 ms at 8 kHz: ~78 Hz bins separate the 70 Hz-apart rows
_MIN_LEVEL_DBFS = -42.0  # each tone's peak amplitude, relative to full scale
_MIN_TONE_SHARE = 0.6  # the two tones' share of the block's total energy
_NORMAL_TWIST_DB = 8.0  # column (high) tone above the row tone
_REVERSE_TWIST_DB = 4.0  # row (low) tone above the column tone
_PEAK_MARGIN_DB = 6.0  # winning tone over every other tone of its group
_HARMONIC_DB = 12.0  # winning tone over its own second harmonic
_MAX_DEVIATION = 0.025  # Q.24: accept tones 1.5% off nominal, reject 3.5% off
_HALF_BALANCE_DB = 4.0  # a tone's level in the two halves of a block: it must fill the block
_TABLE_SCALE = 32767.0
_BIG_ENDIAN = sys.byteorder == "big"


def _ratio(db: float) -> float:
    """Power ratio for a level difference in dB."""
    return 10.0 ** (db / 10.0)


def goertzel_power(samples: list[int] | array, freq: float, sample_rate: int = 8000) -> float:
    """Classic Goertzel recurrence: |X(freq)|^2 over samples (the reference the bins match)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / sample_rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


class _Dot:
    """Dot product of a native 16-bit block with a fixed real table, in C."""

    __slots__ = ("table", "factor")

    def __init__(self, values: list[float]) -> None:
        ints = array("h", (round(_TABLE_SCALE * v) for v in values))
        self.table = ints.tobytes()
        # audioop.findfactor(x, t) is sum(x*t) / sum(t*t): a C dot product ~20x
        # cheaper than sum(map(mul, ...)), which keeps the detector in pure Python.
        self.factor = sum(v * v for v in ints) / _TABLE_SCALE

    def __call__(self, block: bytes) -> float:
        """sum(block[n] * values[n])."""
        return audioop.findfactor(block, self.table) * self.factor


class _Bin:
    """One frequency: the Goertzel/DFT value of a block and of its two halves."""

    __slots__ = ("cos", "sin", "cos1", "sin1", "cos2", "sin2")

    def __init__(self, freq: float, n: int, sample_rate: int) -> None:
        w = 2.0 * math.pi * freq / sample_rate
        # sqrt(2/N) scaling: a sine of amplitude A on the bin reads A^2*N/2, the same
        # figure as its contribution to the block's energy sum(x^2).
        k = math.sqrt(2.0 / n)
        c = [k * math.cos(w * i) for i in range(n)]
        s = [k * math.sin(w * i) for i in range(n)]
        h = n // 2
        self.cos, self.sin = _Dot(c), _Dot(s)
        self.cos1, self.sin1 = _Dot(c[:h]), _Dot(s[:h])
        self.cos2, self.sin2 = _Dot(c[h:]), _Dot(s[h:])

    def power(self, block: bytes) -> float:
        """Energy at this frequency (the Goertzel |X|^2, scaled)."""
        re = self.cos(block)
        im = self.sin(block)
        return re * re + im * im

    def phasor(self, block: bytes) -> complex:
        """Scaled DFT value sum(x[n] * e^(-jwn))."""
        return complex(self.cos(block), -self.sin(block))

    def halves(self, first: bytes, second: bytes) -> tuple[complex, complex]:
        """Phasors of the block's two halves; their sum is the whole block's."""
        return (complex(self.cos1(first), -self.sin1(first)),
                complex(self.cos2(second), -self.sin2(second)))


def _leak(src: float, dst: float, n: int, sample_rate: int) -> complex:
    """Fraction of a tone's phasor at src that shows up in the bin at dst over n samples."""
    d = 2.0 * math.pi * (src - dst) / sample_rate
    return sum(cmath.exp(1j * d * i) for i in range(n)) / n


class GoertzelDetector:
    """Reports DTMF digits found in a stream of 16-bit little-endian mono PCM.

    Works on 12.75 ms blocks the tones must fill; a digit is reported once two
    consecutive blocks agree on it (tones of 40 ms or more are always caught, of
    20 ms never), and the same digit again only after two blocks without it (a
    pause of 25 ms or more; Q.24 asks for 40 ms pauses to be honoured).
    """

    def __init__(self, sample_rate: int = 8000) -> None:
        if sample_rate < 8000:
            raise ValueError("sample rate must be at least 8000 Hz")
        self.sample_rate = sample_rate
        n = self.block = 2 * round(_BLOCK_8K * sample_rate / 16000)  # even: two halves
        self._half_bytes = n  # n/2 samples of 2 bytes
        self._rows = [_Bin(f, n, sample_rate) for f in ROWS]
        self._cols = [_Bin(f, n, sample_rate) for f in COLS]
        self._row_h = [_Bin(2 * f, n, sample_rate) for f in ROWS]
        self._col_h = [_Bin(2 * f, n, sample_rate) for f in COLS]
        # In a 12.75 ms block a row tone's second-harmonic bin (1394, 1540, 1704 Hz)
        # sits inside the main lobe of a column tone 58-71 Hz away: that leakage is
        # predicted from the two tones' phasors and removed before the harmonic check.
        # _leak_*[r][c] = (share of row r's phasor, share of column c's) in the bin.
        self._leak_rh = [[(_leak(fr, 2 * fr, n, sample_rate), _leak(fc, 2 * fr, n, sample_rate))
                          for fc in COLS] for fr in ROWS]
        self._leak_ch = [[(_leak(fr, 2 * fc, n, sample_rate), _leak(fc, 2 * fc, n, sample_rate))
                          for fc in COLS] for fr in ROWS]
        amp = 32768.0 * 10.0 ** (_MIN_LEVEL_DBFS / 20.0)
        self._min_power = amp * amp * n / 2.0
        self._normal = _ratio(_NORMAL_TWIST_DB)
        self._reverse = _ratio(_REVERSE_TWIST_DB)
        self._margin = _ratio(_PEAK_MARGIN_DB)
        self._harmonic = _ratio(_HARMONIC_DB)
        self._balance = _ratio(_HALF_BALANCE_DB)
        # Phase turn between the halves' phasors is 2*pi*(f - f0)*(n/2)/rate.
        turn = 2.0 * math.pi * _MAX_DEVIATION * (n // 2) / sample_rate
        self._max_turn_row = [turn * f for f in ROWS]
        self._max_turn_col = [turn * f for f in COLS]
        self._buf = bytearray()
        self._last_hit: str | None = None  # classification of the previous block
        self._current: str | None = None  # debounced state: digit being held, or None

    def reset(self) -> None:
        """Forget buffered audio and the digit state (new call or source)."""
        self._buf.clear()
        self._last_hit = self._current = None

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[str]:
        """Add audio of any length; returns the digits that began in it, in order."""
        buf = self._buf
        buf += pcm
        step = 2 * self.block
        usable = len(buf) - len(buf) % step
        if not usable:
            return []
        data = bytes(buf[:usable])
        del buf[:usable]
        if _BIG_ENDIAN:
            data = audioop.byteswap(data, 2)
        out: list[str] = []
        for off in range(0, usable, step):
            hit = self._classify(data[off:off + step])
            if hit == self._last_hit and hit != self._current:
                if hit is not None:
                    out.append(hit)
                self._current = hit
            self._last_hit = hit
        return out

    def _classify(self, x: bytes) -> str | None:
        """The digit whose tones fill this block (native 16-bit samples), or None."""
        # rms is truncated to an integer; +0.5 keeps the estimate unbiased.
        total = (audioop.rms(x, 2) + 0.5) ** 2 * self.block
        min_power = self._min_power
        if total < 2.0 * min_power:  # too quiet to hold two tones: skip the bins
            return None
        rows = [b.power(x) for b in self._rows]
        r = max(range(4), key=rows.__getitem__)
        rp = rows[r]
        if rp < min_power:
            return None
        cols = [b.power(x) for b in self._cols]
        c = max(range(4), key=cols.__getitem__)
        cp = cols[c]
        if cp < min_power or rp + cp < _MIN_TONE_SHARE * total:
            return None
        if cp > rp * self._normal or rp > cp * self._reverse:
            return None
        margin = self._margin
        for i in range(4):
            if (i != r and rows[i] * margin > rp) or (i != c and cols[i] * margin > cp):
                return None
        # Frequency check: a tone off its nominal frequency turns the bin's phase
        # between the block's halves (cheaper than more bins; only the winners pay).
        h = self._half_bytes
        x1, x2 = x[:h], x[h:]
        r1, r2 = self._rows[r].halves(x1, x2)
        c1, c2 = self._cols[c].halves(x1, x2)
        if (abs(cmath.phase(r2 * r1.conjugate())) > self._max_turn_row[r]
                or abs(cmath.phase(c2 * c1.conjugate())) > self._max_turn_col[c]):
            return None
        # A tone that starts or stops inside the block is louder in one half: only
        # blocks the tones fill count, which is what makes the duration rule hold.
        bal = self._balance
        for p1, p2 in ((abs(r1) ** 2, abs(r2) ** 2), (abs(c1) ** 2, abs(c2) ** 2)):
            if p1 > p2 * bal or p2 > p1 * bal:
                return None
        # Voices and music have harmonics; pure DTMF tones do not.
        xr, xc = r1 + r2, c1 + c2
        harmonic = self._harmonic
        lr, lc = self._leak_rh[r][c]
        if abs(self._row_h[r].phasor(x) - lr * xr - lc * xc) ** 2 * harmonic > rp:
            return None
        lr, lc = self._leak_ch[r][c]
        if abs(self._col_h[c].phasor(x) - lr * xr - lc * xc) ** 2 * harmonic > cp:
            return None
        return KEYS[r][c]
