"""Prompt loading, conversion, framing and the prompt library."""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from appliance.media import prompt_texts
from appliance.media.prompts import (
    FRAME_SAMPLES, RATE, Prompt, PromptError, PromptLibrary, espeak, frames, load_wav, save_wav,
)


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 10000.0) -> list[int]:
    """Samples of a sine tone."""
    return [int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(rate * seconds))]


def write_wav(path: Path, samples: list[int], rate: int, channels: int = 1, width: int = 2) -> Path:
    """Write samples (duplicated per channel) at the given width; 8-bit is unsigned as in WAV."""
    if width == 2:
        data = b"".join(struct.pack("<h", s) * channels for s in samples)
    elif width == 1:
        data = b"".join(bytes([(s >> 8) + 128]) * channels for s in samples)
    else:
        raise ValueError(width)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def samples_of(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def dominant_frequency(pcm: bytes, candidates: list[float]) -> float:
    """The candidate frequency with the most energy (plain DFT bins at 8 kHz)."""
    xs = samples_of(pcm)

    def power(f: float) -> float:
        re = sum(x * math.cos(2 * math.pi * f * i / RATE) for i, x in enumerate(xs))
        im = sum(x * math.sin(2 * math.pi * f * i / RATE) for i, x in enumerate(xs))
        return re * re + im * im

    return max(candidates, key=power)


@pytest.mark.parametrize("rate,channels,width", [
    (8000, 1, 2), (16000, 1, 2), (44100, 2, 2), (22050, 1, 1), (48000, 2, 1), (11025, 1, 2),
])
def test_load_wav_converts_to_8k_mono_16bit(tmp_path: Path, rate: int, channels: int, width: int) -> None:
    path = write_wav(tmp_path / "in.wav", tone(rate, 0.5, 600.0), rate, channels, width)
    pcm = load_wav(path)
    assert abs(len(pcm) // 2 - 4000) <= 2  # 0.5 s at 8 kHz, whatever the source rate
    xs = samples_of(pcm)
    peak = max(abs(x) for x in xs)
    assert 8000 < peak < 11000  # level kept through mono mix and width change
    assert dominant_frequency(pcm[:1600], [300.0, 600.0, 1000.0, 2000.0]) == 600.0


def test_load_wav_8bit_is_unsigned(tmp_path: Path) -> None:
    # 8-bit silence is 128 on disk; it must come out as 0, not as a DC offset.
    path = write_wav(tmp_path / "s.wav", [0] * 800, 8000, 1, 1)
    assert set(samples_of(load_wav(path))) == {0}


def test_load_wav_stereo_mixes_channels(tmp_path: Path) -> None:
    path = tmp_path / "st.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<hh", 1000, 3000) * 100)
    assert set(samples_of(load_wav(path))) == {2000}


@pytest.mark.parametrize("content,message", [
    (b"", "not a PCM WAV"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a PCM WAV"),
    (b"this is a text file, not audio" * 10, "not a PCM WAV"),
])
def test_load_wav_rejects_garbage(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(PromptError, match=message):
        load_wav(path)


def test_load_wav_rejects_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="cannot read"):
        load_wav(tmp_path / "nope.wav")
    with pytest.raises(PromptError, match="no audio"):
        load_wav(write_wav(tmp_path / "empty.wav", [], 8000))


def test_frames_split_and_pad() -> None:
    pcm = bytes(range(256)) * 2 + b"\x01\x02" * 10  # 512 + 20 bytes = 266 samples
    out = frames(pcm)
    assert [len(f) for f in out] == [320, 320]
    assert out[0] == pcm[:320]
    assert out[1] == pcm[320:] + bytes(320 - len(pcm[320:]))
    assert frames(b"") == []
    assert frames(bytes(320)) == [bytes(320)]
    assert [len(f) for f in frames(bytes(400), samples=80)] == [160, 160, 160]
    with pytest.raises(ValueError):
        frames(b"\x00")


def fake_generator(calls: list) -> object:
    """A generator that writes a 22.05 kHz tone instead of speech and records its calls."""
    def generate(text: str, voice: str, out: Path) -> None:
        calls.append((text, voice))
        write_wav(out, tone(22050, 0.3), 22050)
    return generate


def test_library_generates_once_and_caches_on_disk(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path / "prompts", voice="en-gb", generator=fake_generator(calls), defaults=None)
    p = lib.get("greeting")
    assert calls == [(prompt_texts.TEXTS["greeting"], "en-gb")]
    assert isinstance(p, Prompt) and p.name == "greeting" and not p.loop
    assert abs(p.duration - 0.3) < 0.01
    assert all(len(f) == FRAME_SAMPLES * 2 for f in p.frames)
    assert b"".join(p.frames)[: len(p.pcm)] == p.pcm
    assert lib.get("greeting") is p  # memory cache
    cached = lib.generated_path("greeting")
    with wave.open(str(cached)) as w:  # cached already converted
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    # A new library (next boot) uses the disk cache, no regeneration.
    again = PromptLibrary(tmp_path / "prompts", voice="en-gb", generator=fake_generator(calls), defaults=None)
    assert again.get("greeting").pcm == p.pcm
    assert len(calls) == 1
    # Another voice is another rendering.
    other = PromptLibrary(tmp_path / "prompts", voice="de", generator=fake_generator(calls), defaults=None)
    other.get("greeting")
    assert len(calls) == 2


def test_library_prefers_owner_then_shipped(tmp_path: Path) -> None:
    calls: list = []
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    write_wav(shipped / "menu.wav", tone(16000, 0.2), 16000)
    own = tmp_path / "prompts"
    own.mkdir()
    write_wav(own / "goodbye.wav", tone(8000, 0.1), 8000)
    lib = PromptLibrary(own, generator=fake_generator(calls), defaults=shipped)
    assert abs(lib.get("menu").duration - 0.2) < 0.01
    assert abs(lib.get("goodbye").duration - 0.1) < 0.01
    assert calls == []


def test_library_set_replaces_and_validates(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path / "prompts", generator=fake_generator(calls), defaults=None)
    before = lib.get("greeting")
    new = lib.set("greeting", write_wav(tmp_path / "mine.wav", tone(44100, 1.0), 44100, 2))
    assert abs(new.duration - 1.0) < 0.01
    assert lib.get("greeting") is new and new.pcm != before.pcm
    with wave.open(str(tmp_path / "prompts" / "greeting.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, len(new.pcm) // 2)
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    with pytest.raises(PromptError, match="not a PCM WAV"):
        lib.set("menu", bad)
    assert not (tmp_path / "prompts" / "menu.wav").exists()
    with pytest.raises(PromptError, match="unknown prompt"):
        lib.set("greting", tmp_path / "mine.wav")
    assert not list((tmp_path / "prompts").glob(".*tmp"))  # no temp files left behind


def test_library_hold_music_loops_and_has_no_spoken_default(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path, generator=fake_generator([]), defaults=None)
    with pytest.raises(PromptError, match="prompt set hold_music"):
        lib.get("hold_music")
    assert lib.set("hold_music", write_wav(tmp_path / "m.wav", tone(8000, 0.1), 8000)).loop
    assert lib.get("hold_music").loop
    assert lib.get("greeting").looped().loop and not lib.get("greeting").loop
    with pytest.raises(PromptError, match="unknown prompt"):
        lib.get("nonsense")


def test_library_texts_override_the_defaults(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, voice="en", generator=fake_generator(calls), defaults=None,
                        texts={"greeting": "Welcome to Acme."})
    assert lib.texts["greeting"] == "Welcome to Acme."
    assert lib.texts["menu"] == prompt_texts.TEXTS["menu"]
    lib.get("greeting")
    lib.get("menu")
    assert calls == [("Welcome to Acme.", "en"), (prompt_texts.TEXTS["menu"], "en")]
    plain = PromptLibrary(tmp_path, voice="en", generator=fake_generator(calls), defaults=None)
    assert plain.generated_path("menu") == lib.generated_path("menu")
    # New words are a new rendering; the old one stays cached for the old words.
    assert plain.generated_path("greeting") != lib.generated_path("greeting")
    plain.get("greeting")
    assert calls[-1] == (prompt_texts.TEXTS["greeting"], "en")
    edited = PromptLibrary(tmp_path, voice="en", generator=fake_generator(calls), defaults=None,
                           texts={"greeting": "Welcome to Acme Ltd."})
    edited.get("greeting")
    assert calls[-1] == ("Welcome to Acme Ltd.", "en") and len(calls) == 4
    PromptLibrary(tmp_path, voice="en", generator=fake_generator(calls), defaults=None,
                  texts={"greeting": "Welcome to Acme."}).get("greeting")
    assert len(calls) == 4  # served from the disk cache


def test_library_new_words_beat_the_shipped_recording_but_not_the_owners(tmp_path: Path) -> None:
    calls: list = []
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("greeting", "menu", "goodbye"):
        write_wav(shipped / f"{name}.wav", tone(8000, 0.2), 8000)
    own = tmp_path / "prompts"
    own.mkdir()
    write_wav(own / "goodbye.wav", tone(8000, 0.1), 8000)
    texts = {"greeting": "Welcome to Acme.", "menu": prompt_texts.TEXTS["menu"], "goodbye": "Bye now."}
    lib = PromptLibrary(own, generator=fake_generator(calls), defaults=shipped, texts=texts)
    assert abs(lib.get("greeting").duration - 0.3) < 0.01  # generated from the new words
    assert abs(lib.get("menu").duration - 0.2) < 0.01  # same words as shipped: the recording stays
    assert abs(lib.get("goodbye").duration - 0.1) < 0.01  # the owner's recording always wins
    assert calls == [("Welcome to Acme.", "en")]


def test_library_texts_must_name_spoken_prompts(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no spoken default to replace for greting"):
        PromptLibrary(tmp_path, texts={"greting": "Hi"})
    with pytest.raises(PromptError, match="hold_music"):
        PromptLibrary(tmp_path, texts={"hold_music": "la la la"})


def test_every_default_text_exists() -> None:
    wanted = {"greeting", "menu", "invalid", "no_input", "unavailable", "goodbye", "closed", "queue_position",
              "expected_wait", "callback_offer", "callback_confirmed"}
    assert set(prompt_texts.TEXTS) == wanted
    assert all(t.strip() for t in prompt_texts.TEXTS.values())


def test_missing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    lib = PromptLibrary(tmp_path / "p", defaults=None)
    with pytest.raises(PromptError, match="espeak-ng is not installed"):
        lib.get("greeting")


def test_espeak_bad_voice_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="espeak-ng failed for voice 'nosuchvoice'"):
        espeak("hello", "nosuchvoice", tmp_path / "x.wav")


def test_real_espeak_generates_speech(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path / "prompts", defaults=None)
    lib.preload({"goodbye", "greeting"})
    p = lib.get("goodbye")
    assert 0.5 < p.duration < 5
    assert max(abs(x) for x in samples_of(p.pcm)) > 1000  # not silence
    assert lib.generated_path("greeting").is_file()


def test_save_wav_roundtrip(tmp_path: Path) -> None:
    pcm = struct.pack("<4h", 1, -1, 32767, -32768)
    save_wav(tmp_path / "d" / "x.wav", pcm)
    assert load_wav(tmp_path / "d" / "x.wav") == pcm
