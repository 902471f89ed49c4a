"""In-band DTMF detector: sox-generated digits at several levels and SNRs, talk-off on speech and music."""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from appliance.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.media.goertzel import COLS, KEYS, ROWS, GoertzelDetector, _Bin, goertzel_power

import numpy as np  # the test extra; sox and espeak-ng come from scripts/test

RATE = 8000
ALL = "".join(KEYS)
SPEECH = "Thank you for calling, please hold while we connect you to the next available agent"


def freqs(digit: str) -> tuple[float, float]:
    for r, row in enumerate(KEYS):
        if digit in row:
            return ROWS[r], COLS[row.index(digit)]
    raise ValueError(digit)


def sox(path: Path, *effects: str, rate: int = RATE) -> np.ndarray:
    """Run sox with a null input and return the 16-bit samples it wrote."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-b", "16", "-c", "1", str(path), *effects],
                   check=True, capture_output=True)
    return read_wav(path)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)


def tone(tmp: Path, digit: str, level_db: float, seconds: float = 0.1, rate: int = RATE) -> np.ndarray:
    """A DTMF digit from sox, peak-normalised to level_db dBFS."""
    fr, fc = freqs(digit)
    return sox(tmp / f"dtmf_{ALL.index(digit)}.wav", "synth", str(seconds), "sine", str(fr),
               "synth", str(seconds), "sine", "mix", str(fc), "norm", str(level_db), rate=rate)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds))


def add_noise(x: np.ndarray, snr_db: float, signal_power: float, seed: int) -> np.ndarray:
    """White noise at snr_db below signal_power (the power of the tones, not of the gaps)."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, len(x))
    noise *= np.sqrt(signal_power / 10 ** (snr_db / 10))
    return x + noise


def pcm(x: np.ndarray) -> bytes:
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def detect(x: np.ndarray | bytes, chunk: int | None = None, rate: int = RATE) -> str:
    data = x if isinstance(x, bytes) else pcm(x)
    det = GoertzelDetector(rate)
    if chunk is None:
        return "".join(det.feed(data))
    return "".join(d for i in range(0, len(data), chunk) for d in det.feed(data[i:i + chunk]))


def synth(parts: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """Sum of sines (frequency, amplitude) in numpy, for tests sox cannot parametrise exactly."""
    t = np.arange(int(RATE * seconds)) / RATE
    return sum(a * np.sin(2 * np.pi * f * t + i) for i, (f, a) in enumerate(parts))


@pytest.mark.parametrize("level", [-10, -20, -30])
def test_all_digits_clean(tmp_path: Path, level: int) -> None:
    for digit in ALL:
        x = np.concatenate([silence(0.05), tone(tmp_path, digit, level), silence(0.05)])
        assert detect(x) == digit, (digit, level)


@pytest.mark.parametrize("level,snr", [(-10, 10), (-20, 15), (-20, 10), (-30, 10)])
def test_all_digits_in_white_noise(tmp_path: Path, level: int, snr: int) -> None:
    for i, digit in enumerate(ALL):
        t = tone(tmp_path, digit, level)
        x = np.concatenate([silence(0.05), t, silence(0.05)])
        x = add_noise(x, snr, float(np.mean(t ** 2)), seed=i)
        assert detect(x) == digit, (digit, level, snr)


def sequence(tmp: Path, digits: str, level: int = -15, gap: float = 0.06) -> tuple[np.ndarray, float]:
    parts = [silence(0.1)]
    for d in digits:
        parts += [tone(tmp, d, level), silence(gap)]
    x = np.concatenate(parts)
    return x, float(np.mean(tone(tmp, digits[0], level) ** 2))


@pytest.mark.parametrize("chunk", [None, 320, 160, 1, 333])
def test_sequence_with_gaps_any_chunking(tmp_path: Path, chunk: int | None) -> None:
    x, power = sequence(tmp_path, "159#")
    x = add_noise(x, 12, power, seed=7)
    assert detect(x, chunk) == "159#"


def test_repeated_digit_needs_pause(tmp_path: Path) -> None:
    five = tone(tmp_path, "5", -15)
    assert detect(np.concatenate([five, silence(0.05), five])) == "55"
    assert detect(np.concatenate([five, five, five])) == "5"  # one long press


def test_change_of_digit_without_pause(tmp_path: Path) -> None:
    assert detect(np.concatenate([tone(tmp_path, "1", -15), tone(tmp_path, "2", -15)])) == "12"


def test_minimum_duration(tmp_path: Path) -> None:
    for offset in range(0, 102, 17):  # every alignment against the 102-sample blocks
        lead = silence(offset / RATE)
        assert detect(np.concatenate([lead, tone(tmp_path, "8", -15, 0.040), silence(0.05)])) == "8", offset
        assert detect(np.concatenate([lead, tone(tmp_path, "8", -15, 0.020), silence(0.05)])) == "", offset


def test_too_quiet(tmp_path: Path) -> None:
    assert detect(tone(tmp_path, "4", -55)) == ""


@pytest.mark.parametrize("row_db,col_db,expected", [
    (0, 0, "6"), (0, 7, "6"), (3, 0, "6"),  # within twist limits
    (0, 10, ""),  # high group 10 dB above low: beyond normal twist (8 dB)
    (6, 0, ""),  # low group 6 dB above high: beyond reverse twist (4 dB)
])
def test_twist(row_db: float, col_db: float, expected: str) -> None:
    a = 3000.0
    x = synth([(770, a * 10 ** (row_db / 20)), (1477, a * 10 ** (col_db / 20))], 0.1)
    assert detect(x) == expected


@pytest.mark.parametrize("dev,expected", [(0.015, "9"), (-0.015, "9"), (0.035, ""), (-0.035, "")])
def test_frequency_tolerance(tmp_path: Path, dev: float, expected: str) -> None:
    x = sox(tmp_path / "dev.wav", "synth", "0.1", "sine", str(852 * (1 + dev)),
            "synth", "0.1", "sine", "mix", str(1477 * (1 + dev)), "norm", "-12")
    assert detect(x) == expected


def test_single_tone_and_third_tone_rejected() -> None:
    assert detect(synth([(697, 8000)], 0.2)) == ""
    assert detect(synth([(697, 6000), (1209, 6000)], 0.2)) == "1"
    assert detect(synth([(697, 6000), (770, 6000), (1209, 6000)], 0.2)) == ""  # two rows
    assert detect(synth([(697, 6000), (1209, 6000), (1477, 4000)], 0.2)) == ""  # two columns


@pytest.mark.parametrize("parts,plain", [
    ([(941, 6000), (1477, 6000), (2954, 3000)], "#"),  # column tone's 2nd harmonic at -6 dB
    ([(941, 6000), (1209, 6000), (1882, 3000)], "*"),  # row tone's 2nd harmonic at -6 dB
    ([(697, 6000), (1336, 6000), (1394, 3000)], "2"),  # 1394 Hz sits 58 Hz from the 1336 column
])
def test_second_harmonic_rejected(parts, plain: str) -> None:
    assert detect(synth(parts[:2], 0.2)) == plain
    assert detect(synth(parts, 0.2)) == ""


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    tmp = tmp_path_factory.mktemp("speech")
    parts = []
    for i, (voice, text) in enumerate([
        ("en", SPEECH),
        ("en-us+f3", "Press one for sales, two for support, star to repeat, pound to finish."),
        ("en+m3", "one two three four five six seven eight nine zero"),
    ]):
        raw, out = tmp / f"raw{i}.wav", tmp / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-b", "16", "-c", "1", str(out), "norm", "-3"],
                       check=True, capture_output=True)
        parts.append(read_wav(out))
    return np.concatenate(parts)


def test_no_talk_off_on_speech(speech: np.ndarray) -> None:
    assert len(speech) > RATE * 5
    assert detect(speech) == ""
    assert detect(ulaw_decode(ulaw_encode(pcm(speech)))) == ""
    assert detect(speech * 0.1) == ""


@pytest.mark.parametrize("effects", [
    ("synth", "3", "sine", "300-3000"),
    ("synth", "3", "sine", "3000-300", "norm", "-20"),
    ("synth", "3", "sine", "261.63", "synth", "3", "sine", "mix", "329.63",
     "synth", "3", "sine", "mix", "392", "synth", "3", "sine", "mix", "523.25", "norm", "-6"),
    ("synth", "3", "sine", "600-1800", "synth", "3", "sine", "mix", "1200-3600", "norm", "-6"),
    ("synth", "3", "square", "440", "synth", "3", "sawtooth", "mix", "660", "norm", "-6"),
    ("synth", "3", "pinknoise", "norm", "-10"),
])
def test_no_talk_off_on_music(tmp_path: Path, effects: tuple[str, ...]) -> None:
    x = sox(tmp_path / "music.wav", *effects)
    assert detect(x) == ""
    assert detect(ulaw_decode(ulaw_encode(pcm(x)))) == ""


@pytest.mark.parametrize("enc,dec", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
@pytest.mark.parametrize("level", [-10, -30])
def test_g711_round_trip(tmp_path: Path, enc, dec, level: int) -> None:
    x, power = sequence(tmp_path, "159#0*D", level)
    x = add_noise(x, 15, power, seed=3)
    assert detect(dec(enc(pcm(x))), chunk=160) == "159#0*D"


def test_digits_inside_speech(tmp_path: Path, speech: np.ndarray) -> None:
    """A caller pressing keys while a voice plays (the usual IVR case) at equal peak level."""
    x = speech[: RATE * 2].copy() * 0.3
    seven = tone(tmp_path, "7", -12)
    x[4000:4000 + len(seven)] += seven
    x[12000:12000 + len(seven)] += tone(tmp_path, "#", -12)
    assert detect(x) == "7#"


def test_16k_sample_rate(tmp_path: Path) -> None:
    x = tone(tmp_path, "C", -15, rate=16000)
    assert detect(np.concatenate([x, np.zeros(800), x]), rate=16000) == "CC"


def test_reset_forgets_state(tmp_path: Path) -> None:
    det = GoertzelDetector()
    data = pcm(tone(tmp_path, "3", -15))
    assert det.feed(data) == ["3"]
    assert det.feed(data) == []  # still the same press
    det.reset()
    assert det.feed(data) == ["3"]


def test_bin_power_equals_goertzel_recurrence() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-20000, 20000, 102).astype(np.int16)
    for f in ROWS + COLS + (1394.0, 3266.0):
        ref = goertzel_power(x.tolist(), f) * 2 / 102
        assert _Bin(f, 102, RATE).power(x.astype("=i2").tobytes()) == pytest.approx(ref, rel=1e-3)


def test_rejects_low_sample_rate() -> None:
    with pytest.raises(ValueError):
        GoertzelDetector(4000)


def test_tones_buried_in_noise_rejected(tmp_path: Path) -> None:
    """The two tones must carry most of the energy: noise louder than them is not a digit."""
    t = np.concatenate([silence(0.02), tone(tmp_path, "0", -10, 0.3)])
    assert detect(add_noise(t, 10, float(np.mean(t ** 2)), seed=5)) == "0"
    for seed in range(10):  # the tones still stand out per bin: only the share check can tell
        assert detect(add_noise(t, -1, float(np.mean(t ** 2)), seed=seed)) == "", seed
