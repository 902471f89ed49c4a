"""Prompt loading, conversion, framing and the prompt library."""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from appliance.media import prompt_texts
from appliance.media.hold_music import default_hold_music
from appliance.media.prompts import (
    FRAME_SAMPLES, RATE, SPOKEN_MEMORY, Prompt, PromptError, PromptLibrary, digits_for_speech, espeak, frames,
    join, load_wav, save_wav,
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
    with pytest.raises(PromptError, match="not a prompt name"):
        lib.set("Greeting!", tmp_path / "mine.wav")
    assert not list((tmp_path / "prompts").glob(".*tmp"))  # no temp files left behind


def test_library_hold_music_defaults_to_the_built_in_music(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    music = lib.get("hold_music")
    assert music.loop and music.pcm == default_hold_music() and calls == []
    assert lib.cached("hold_music") and lib.get("hold_music") is music
    assert not (tmp_path / "hold_music.wav").exists()  # the default is not stored as the owner's
    assert lib.set("hold_music", write_wav(tmp_path / "m.wav", tone(8000, 0.1), 8000)).loop
    assert lib.get("hold_music").loop and abs(lib.get("hold_music").duration - 0.1) < 0.01
    # The owner's recording also wins in a new library (next boot).
    assert abs(PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
               .get("hold_music").duration - 0.1) < 0.01
    assert lib.get("greeting").looped().loop and not lib.get("greeting").loop
    with pytest.raises(PromptError, match='no "nonsense" prompt: set one with'):
        lib.get("nonsense")  # a name of the owner's own with neither words nor a recording


def test_library_shipped_hold_music_beats_the_built_in(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    write_wav(shipped / "hold_music.wav", tone(8000, 0.4), 8000)
    lib = PromptLibrary(tmp_path / "p", generator=fake_generator([]), defaults=shipped)
    assert abs(lib.get("hold_music").duration - 0.4) < 0.01


def test_library_broken_owner_hold_music_is_an_error_not_the_default(tmp_path: Path) -> None:
    (tmp_path / "hold_music.wav").write_text("not audio")
    lib = PromptLibrary(tmp_path, generator=fake_generator([]), defaults=None)
    with pytest.raises(PromptError, match="not a PCM WAV"):
        lib.get("hold_music")


def test_preload_prepares_hold_music_after_the_spoken_prompts(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    lib.preload()
    assert all(lib.cached(name) for name in prompt_texts.NAMES)
    assert len(calls) == len(prompt_texts.TEXTS)
    (tmp_path / "hold_music.wav").write_text("broken")
    fresh = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    with pytest.raises(PromptError, match="hold_music"):
        fresh.preload()
    assert all(fresh.cached(name) for name in prompt_texts.TEXTS)


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
    with pytest.raises(PromptError, match="not a prompt that can be spoken: Greeting!"):
        PromptLibrary(tmp_path, texts={"Greeting!": "Hi"})
    with pytest.raises(PromptError, match="hold_music"):
        PromptLibrary(tmp_path, texts={"hold_music": "la la la"})


def test_the_owners_own_prompt_is_spoken_from_its_words(tmp_path: Path) -> None:
    """Issue 14, item 14: a second menu with its own spoken words."""
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None,
                        texts={"support_menu": "For printers, press 1."})
    assert lib.get("support_menu").duration > 0
    assert calls == [("For printers, press 1.", "en")]


def test_every_default_text_exists() -> None:
    wanted = {"greeting", "menu", "invalid", "no_input", "unavailable", "goodbye", "closed", "queue_position",
              "expected_wait", "minutes", "callback_offer", "callback_number", "callback_confirm", "callback_enter",
              "callback_confirmed", "queue_full", "queue_timeout", "agent_logged_in", "agent_logged_out",
              "agent_paused", "agent_unpaused"}
    assert set(prompt_texts.TEXTS) == wanted
    assert prompt_texts.NAMES == wanted | {"hold_music"}
    assert all(t.strip() and t == t.strip() for t in prompt_texts.TEXTS.values())


def test_callback_offer_leaves_the_key_to_the_queue() -> None:
    offer = prompt_texts.TEXTS["callback_offer"]
    assert offer.endswith("press") and not any(ch.isdigit() for ch in offer)
    assert "call you back" in offer


@pytest.mark.parametrize("name", ["callback_number", "callback_confirm", "callback_enter", "queue_full",
                                  "queue_timeout", "minutes", "agent_logged_in", "agent_logged_out",
                                  "agent_paused", "agent_unpaused"])
def test_new_prompts_are_spoken_and_settable(tmp_path: Path, name: str) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path / "p", generator=fake_generator(calls), defaults=None)
    assert not lib.get(name).loop and calls == [(prompt_texts.TEXTS[name], "en")]
    own = lib.set(name, write_wav(tmp_path / "own.wav", tone(16000, 0.7), 16000))
    assert lib.get(name) is own and abs(own.duration - 0.7) < 0.01
    assert (tmp_path / "p" / f"{name}.wav").is_file()
    reworded = PromptLibrary(tmp_path / "q", generator=fake_generator(calls), defaults=None,
                             texts={name: "New words."})
    reworded.get(name)
    assert calls[-1] == ("New words.", "en")


def test_speak_renders_once_and_caches_on_disk_and_in_memory(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, voice="en-gb", generator=fake_generator(calls), defaults=None)
    assert not lib.spoken_cached("4")
    p = lib.speak("4")
    assert calls == [("4", "en-gb")]
    assert p.name == "spoken" and not p.loop and abs(p.duration - 0.3) < 0.01
    assert all(len(f) == FRAME_SAMPLES * 2 for f in p.frames) and b"".join(p.frames)[: len(p.pcm)] == p.pcm
    assert lib.spoken_cached("4") and lib.speak("4") is p and len(calls) == 1
    path = lib.spoken_path("4")
    assert path.parent == tmp_path / "generated" / "spoken" and len(path.stem) == 16
    with wave.open(str(path)) as w:  # cached already converted
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    # Next boot: from disk, not rendered again, and not in memory until asked for.
    again = PromptLibrary(tmp_path, voice="en-gb", generator=fake_generator(calls), defaults=None)
    assert not again.spoken_cached("4")
    assert again.speak("4").pcm == p.pcm and len(calls) == 1
    assert again.spoken_cached("4")


def test_speak_is_keyed_by_voice_and_text(tmp_path: Path) -> None:
    calls: list = []
    gb = PromptLibrary(tmp_path, voice="en-gb", generator=fake_generator(calls), defaults=None)
    de = PromptLibrary(tmp_path, voice="de", generator=fake_generator(calls), defaults=None)
    paths = {gb.spoken_path("4"), gb.spoken_path("5"), de.spoken_path("4")}
    assert len(paths) == 3
    gb.speak("4")
    gb.speak("5")
    de.speak("4")
    assert calls == [("4", "en-gb"), ("5", "en-gb"), ("4", "de")]
    assert all(path.is_file() for path in paths)
    # A prompt's own rendering and speaking its words are separate caches: no clash.
    assert gb.spoken_path(prompt_texts.TEXTS["minutes"]) != gb.generated_path("minutes")


def test_speak_memory_is_a_bounded_lru(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    first = lib.speak("0")
    for n in range(1, SPOKEN_MEMORY):
        lib.speak(str(n))
    assert lib.spoken_cached("0")
    assert lib.speak("0") is first  # used again: now the most recent
    lib.speak("one more")
    assert lib.spoken_cached("0") and not lib.spoken_cached("1")  # the least recently used went
    assert lib.speak("1").pcm == first.pcm and len(calls) == SPOKEN_MEMORY + 1  # back from disk
    assert not lib.spoken_cached("2")


@pytest.mark.parametrize("text,message", [
    ("", "nothing to speak"),
    ("   ", "nothing to speak"),
    ("1" * 201, "longer than 200"),
    ("one\ntwo", "control characters"),
    ("tab\there", "control characters"),
    ("bell\x07", "control characters"),
])
def test_speak_rejects_bad_text(tmp_path: Path, text: str, message: str) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    with pytest.raises(ValueError, match=message):
        lib.speak(text)
    assert calls == [] and not (tmp_path / "generated").exists()


def test_speak_accepts_200_characters_and_leading_dashes(tmp_path: Path) -> None:
    calls: list = []
    lib = PromptLibrary(tmp_path, generator=fake_generator(calls), defaults=None)
    lib.speak("2" * 200)
    lib.speak("--help")
    assert calls == [("2" * 200, "en"), ("--help", "en")]


def test_speak_generator_failure_caches_nothing(tmp_path: Path) -> None:
    def broken(text: str, voice: str, out: Path) -> None:
        raise PromptError("espeak-ng failed")
    lib = PromptLibrary(tmp_path, generator=broken, defaults=None)
    with pytest.raises(PromptError):
        lib.speak("4")
    assert not lib.spoken_cached("4") and not lib.spoken_path("4").exists()


def test_join_concatenates_and_reframes() -> None:
    a = struct.pack("<3h", 1, 2, 3)  # not a whole frame: join must not keep its padding
    b = struct.pack("<200h", *range(200))
    pa = Prompt("a", a, tuple(frames(a)))
    pb = Prompt("b", b, tuple(frames(b)), loop=True)
    joined = join("announcement", [pa, pb, pa])
    assert joined.name == "announcement" and not joined.loop
    assert joined.pcm == a + b + a
    assert list(joined.frames) == frames(a + b + a) and len(joined.frames) == 2
    assert join("empty", []).frames == ()


def test_join_builds_a_queue_announcement(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path, generator=fake_generator([]), defaults=None)
    parts = [lib.get("queue_position"), lib.speak("3"), lib.get("expected_wait"), lib.speak("4"), lib.get("minutes")]
    joined = join("announcement", parts)
    assert abs(joined.duration - sum(p.duration for p in parts)) < 1e-9


@pytest.mark.parametrize("number,spoken", [
    ("+44 7700", "plus 4 4 7 7 0 0"),
    ("0712345678", "0 7 1 2 3 4 5 6 7 8"),
    ("(0712) 34-56.78", "0 7 1 2 3 4 5 6 7 8"),
    ("*45#", "star 4 5 hash"),
    ("7", "7"),
])
def test_digits_for_speech(number: str, spoken: str) -> None:
    assert digits_for_speech(number) == spoken


@pytest.mark.parametrize("number", ["", "+", " - ", "anonymous", "0712x", "\u0663\u0664"])
def test_digits_for_speech_rejects_non_numbers(number: str) -> None:
    with pytest.raises(ValueError):
        digits_for_speech(number)


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


def test_real_espeak_speaks_digits(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path / "prompts", defaults=None)
    short, long = lib.speak("4"), lib.speak(digits_for_speech("+44 7700 900123"))
    assert 0.2 < short.duration < long.duration < 10
    assert max(abs(x) for x in samples_of(long.pcm)) > 1000  # not silence
    assert lib.spoken_path("4").is_file()


def test_save_wav_roundtrip(tmp_path: Path) -> None:
    pcm = struct.pack("<4h", 1, -1, 32767, -32768)
    save_wav(tmp_path / "d" / "x.wav", pcm)
    assert load_wav(tmp_path / "d" / "x.wav") == pcm
