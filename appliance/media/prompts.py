"""Voice prompts: WAV loading and conversion to 8 kHz mono PCM, 20 ms frames, and the prompt library."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import wave
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

with warnings.catch_warnings():
    # Deprecated in 3.11/3.12 (removed in 3.13, where audioop-lts provides it): nothing to act on.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from appliance.media import prompt_texts
from appliance.media.hold_music import default_hold_music

__all__ = [
    "RATE", "WIDTH", "FRAME_SAMPLES", "MAX_SECONDS", "DEFAULTS_DIR", "MAX_SPOKEN_CHARS", "SPOKEN_MEMORY",
    "PromptError", "Prompt", "PromptLibrary", "Generator",
    "load_wav", "save_wav", "frames", "espeak", "join", "digits_for_speech",
]

RATE = 8000  # what the phone leg carries (G.711)
WIDTH = 2  # bytes per sample of the converted PCM
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
MAX_SECONDS = 900  # a prompt longer than this is a mistake, and would sit in RAM on a Pi
# Prebuilt prompts shipped with the package (a recorded voice); absent in a source checkout.
DEFAULTS_DIR = Path(__file__).with_name("default_prompts")
ESPEAK_TIMEOUT = 30.0
MAX_SPOKEN_CHARS = 200  # speak() is for numbers and short phrases, not paragraphs
SPOKEN_MEMORY = 64  # speak() renderings kept in memory (a few seconds of PCM each)
_SAID = {"+": "plus", "*": "star", "#": "hash"}
_SEPARATORS = frozenset(" -.()/")

Generator = Callable[[str, str, Path], None]
"""(text, voice, out_path): write a WAV file speaking text."""


class PromptError(ValueError):
    """A prompt that cannot be found, read, converted or generated."""


@dataclass(frozen=True)
class Prompt:
    """A prompt ready to play: 8 kHz mono 16-bit PCM and its 20 ms frames."""

    name: str
    pcm: bytes
    frames: tuple[bytes, ...]
    loop: bool = False

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / (RATE * WIDTH)

    def looped(self, loop: bool = True) -> Prompt:
        """The same audio with the loop flag set (frames are shared, not copied)."""
        return replace(self, loop=loop)


def load_wav(path: Path | str) -> bytes:
    """Read a PCM WAV (any rate, mono or stereo, 8-32 bit) and return 8 kHz mono 16-bit PCM."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, count = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if channels not in (1, 2):
                raise PromptError(f"{path}: {channels} channels; expected mono or stereo")
            if width not in (1, 2, 3, 4):
                raise PromptError(f"{path}: unsupported sample width of {width} bytes")
            if rate <= 0:
                raise PromptError(f"{path}: invalid sample rate {rate}")
            if count > MAX_SECONDS * rate:
                raise PromptError(f"{path}: longer than {MAX_SECONDS // 60} minutes")
            data = w.readframes(count)
    except PromptError:
        raise
    except (wave.Error, EOFError) as e:
        raise PromptError(f"{path}: not a PCM WAV file ({e})") from None
    except OSError as e:
        raise PromptError(f"{path}: cannot read: {e.strerror or e}") from None
    data = data[: len(data) - len(data) % (width * channels)]  # a truncated file ends mid-sample
    if not data:
        raise PromptError(f"{path}: contains no audio")
    if width == 1:
        data = audioop.bias(data, 1, -128)  # 8-bit WAV is unsigned, audioop expects signed
    if channels == 2:
        data = audioop.tomono(data, width, 0.5, 0.5)
    if width != WIDTH:
        data = audioop.lin2lin(data, width, WIDTH)
    if rate != RATE:
        # Linear interpolation without an anti-aliasing filter: fine for speech, dulls music slightly.
        data, _ = audioop.ratecv(data, WIDTH, 1, rate, RATE, None)
    return data


def save_wav(path: Path, pcm: bytes) -> None:
    """Write 8 kHz mono 16-bit PCM as a WAV, atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(WIDTH)
            w.setframerate(RATE)
            w.writeframes(pcm)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def frames(pcm: bytes, samples: int = FRAME_SAMPLES) -> list[bytes]:
    """Split 16-bit PCM into frames of `samples` samples, padding the last with silence."""
    if samples <= 0:
        raise ValueError("samples must be positive")
    if len(pcm) % WIDTH:
        raise ValueError("PCM length is not a whole number of 16-bit samples")
    size = samples * WIDTH
    out = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    if out and len(out[-1]) < size:
        out[-1] = out[-1] + bytes(size - len(out[-1]))
    return out


def join(name: str, prompts: Sequence[Prompt]) -> Prompt:
    """One prompt playing prompts back to back (their PCM joined, then framed again)."""
    pcm = b"".join(p.pcm for p in prompts)
    return Prompt(name, pcm, tuple(frames(pcm)))


def digits_for_speech(number: str) -> str:
    """A phone number as text espeak-ng says digit by digit: "+44 7700" -> "plus 4 4 7 7 0 0"."""
    words = []
    for ch in number:
        if "0" <= ch <= "9":
            words.append(ch)
        elif ch in _SAID:
            words.append(_SAID[ch])
        elif ch not in _SEPARATORS:
            raise ValueError(f"not a phone number: {number!r}")
    if not any(w.isdigit() for w in words):
        raise ValueError(f"no digits to say in {number!r}")
    return " ".join(words)


def espeak(text: str, voice: str, out: Path) -> None:
    """Speak text into a WAV file with espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PromptError(
            "espeak-ng is not installed, so default prompts cannot be generated: "
            "install it (apt install espeak-ng) or record them with `switchboard prompt set NAME FILE.wav`"
        )
    try:
        done = subprocess.run([exe, "-v", voice, "-w", str(out), "--", text],
                              capture_output=True, text=True, timeout=ESPEAK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PromptError(f"espeak-ng took longer than {ESPEAK_TIMEOUT:g}s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise PromptError(f"espeak-ng failed for voice {voice!r}: {detail}")


class PromptLibrary:
    """Finds, converts and caches prompts: the owner's recording, else shipped, else espeak-ng (or default music)."""

    def __init__(self, directory: Path, voice: str = "en", generator: Generator = espeak,
                 defaults: Path | None = DEFAULTS_DIR, texts: Mapping[str, str] | None = None) -> None:
        unknown = [name for name in texts or () if not prompt_texts.is_prompt_name(name) or name in prompt_texts.LOOPED]
        if unknown:
            raise PromptError(f"not a prompt that can be spoken: {', '.join(sorted(unknown))}")
        self.directory = Path(directory)
        self.voice = voice
        self.texts: dict[str, str] = {**prompt_texts.TEXTS, **(texts or {})}
        self._reworded = frozenset(n for n, text in self.texts.items() if text != prompt_texts.TEXTS.get(n))
        self._generator = generator
        self._defaults = defaults
        self._cache: dict[str, Prompt] = {}
        self._spoken: OrderedDict[str, Prompt] = OrderedDict()  # text -> rendering, least recent first
        self._spoken_lock = threading.Lock()  # speak() runs on worker threads, spoken_cached() on the loop

    def cached(self, name: str) -> bool:
        """Whether get(name) returns at once (already converted in memory)."""
        return name in self._cache

    def get(self, name: str) -> Prompt:
        """The prompt called name, converted once and then served from memory."""
        prompt = self._cache.get(name)
        if prompt is None:
            pcm = self._load(_known(name))
            prompt = Prompt(name, pcm, tuple(frames(pcm)), loop=name in prompt_texts.LOOPED)
            self._cache[name] = prompt
        return prompt

    def spoken_cached(self, text: str) -> bool:
        """Whether speak(text) returns at once (already rendered in memory)."""
        with self._spoken_lock:
            return text in self._spoken

    def speak(self, text: str) -> Prompt:
        """Short dynamic text (a number, a whisper) spoken in the library's voice; cached on disk and in memory."""
        with self._spoken_lock:
            prompt = self._spoken.get(text)
            if prompt is not None:
                self._spoken.move_to_end(text)
                return prompt
        _check_spoken(text)
        path = self.spoken_path(text)
        if not path.is_file():
            self._render(text, path)
        pcm = load_wav(path)
        prompt = Prompt("spoken", pcm, tuple(frames(pcm)))
        with self._spoken_lock:
            self._spoken[text] = prompt
            self._spoken.move_to_end(text)
            while len(self._spoken) > SPOKEN_MEMORY:
                self._spoken.popitem(last=False)
        return prompt

    def spoken_path(self, text: str) -> Path:
        """Where speak(text) is cached on disk, keyed by voice and text."""
        digest = hashlib.sha256(f"{self.voice}\0{text}".encode()).hexdigest()[:16]
        return self.directory / "generated" / "spoken" / f"{digest}.wav"

    def set(self, name: str, wav_path: Path | str) -> Prompt:
        """Validate a WAV, store it converted as the owner's version of name and use it from now on."""
        _known(name)
        typo = prompt_texts.near_miss(name)
        if typo is not None:
            raise PromptError(f'unknown prompt "{name}": did you mean {typo}? (your own prompts need a name '
                              "that is not a letter away from one of the box's)")
        pcm = load_wav(wav_path)
        save_wav(self.directory / f"{name}.wav", pcm)
        prompt = Prompt(name, pcm, tuple(frames(pcm)), loop=name in prompt_texts.LOOPED)
        self._cache[name] = prompt
        return prompt

    def preload(self, names: frozenset[str] | set[str] | None = None) -> None:
        """Load (generating if need be) every spoken prompt and the hold music now, not on a caller's first use."""
        # Spoken prompts first: a broken hold music recording must not leave them unprepared.
        for name in sorted(names) if names is not None else [*sorted(self.texts), *sorted(prompt_texts.LOOPED)]:
            self.get(name)

    def generated_path(self, name: str) -> Path:
        """Where the espeak-ng rendering of name is cached; keyed by voice and text so edits regenerate."""
        text = self.texts[name]
        digest = hashlib.sha256(f"{self.voice}\0{text}".encode()).hexdigest()[:12]
        return self.directory / "generated" / f"{name}-{digest}.wav"

    def _load(self, name: str) -> bytes:
        """The 8 kHz PCM for name: the owner's recording, else shipped, else the default music or espeak-ng."""
        own = self.directory / f"{name}.wav"
        if own.is_file():
            return load_wav(own)
        # A shipped recording speaks the default words, so new words from the owner win over it.
        shipped = None if self._defaults is None else self._defaults / f"{name}.wav"
        if shipped is not None and name not in self._reworded and shipped.is_file():
            return load_wav(shipped)
        if name == "hold_music":
            return default_hold_music()
        if name not in self.texts:
            raise PromptError(f'no "{name}" prompt: set one with `switchboard prompt set {name} FILE.wav`')
        cached = self.generated_path(name)
        if not cached.is_file():
            self._render(self.texts[name], cached)
        return load_wav(cached)

    def _render(self, text: str, cached: Path) -> None:
        """Speak text with the generator and cache it already converted to 8 kHz."""
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            raw = Path(tmp) / "tts.wav"
            self._generator(text, self.voice, raw)
            save_wav(cached, load_wav(raw))


def _check_spoken(text: str) -> None:
    """Raise ValueError unless text is short, plain, printable and not blank."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("nothing to speak")
    if len(text) > MAX_SPOKEN_CHARS:
        raise ValueError(f"text to speak is longer than {MAX_SPOKEN_CHARS} characters")
    if not text.isprintable():
        raise ValueError(f"text to speak has control characters: {text!r}")


def _known(name: str) -> str:
    """name, if it is a prompt the box knows about or a valid name for the owner's own."""
    if not prompt_texts.is_prompt_name(name):
        raise PromptError(f'"{name}" is not a prompt name: use one of the box\'s ({", ".join(sorted(prompt_texts.NAMES))})'
                          " or your own in lower-case letters, digits and _")
    return name
