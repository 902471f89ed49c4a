"""`switchboard prompt set NAME FILE.wav`, run as a real subprocess."""
from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def stereo_44k(path: Path, seconds: float = 0.5) -> Path:
    samples = [int(8000 * math.sin(2 * math.pi * 440 * i / 44100)) for i in range(int(44100 * seconds))]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"".join(struct.pack("<hh", s, s) for s in samples))
    return path


def test_prompt_set_stores_converted_wav(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = run("prompt", "set", "greeting", str(stereo_44k(tmp_path / "x.wav")), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "greeting" in done.stdout
    with wave.open(str(data / "prompts" / "greeting.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert abs(w.getnframes() - 4000) <= 2


def test_prompt_set_replaces_existing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("prompt", "set", "menu", str(stereo_44k(tmp_path / "a.wav", 0.5)), "--data-dir", str(data)).returncode == 0
    assert run("prompt", "set", "menu", str(stereo_44k(tmp_path / "b.wav", 1.0)), "--data-dir", str(data)).returncode == 0
    with wave.open(str(data / "prompts" / "menu.wav")) as w:
        assert abs(w.getnframes() - 8000) <= 2


def test_prompt_set_unknown_name(tmp_path: Path) -> None:
    done = run("prompt", "set", "greting", str(stereo_44k(tmp_path / "x.wav")), "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2
    assert 'unknown prompt "greting": did you mean greeting?' in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d" / "prompts" / "greting.wav").exists()


def test_prompt_set_invalid_or_missing_wav(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all")
    for path, message in ((bad, "not a PCM WAV"), (tmp_path / "missing.wav", "cannot read")):
        done = run("prompt", "set", "greeting", str(path), "--data-dir", str(tmp_path / "d"))
        assert done.returncode == 2
        assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "d" / "prompts" / "greeting.wav").exists()


def test_prompt_without_subcommand_prints_usage(tmp_path: Path) -> None:
    done = run("prompt")
    assert done.returncode == 2 and "set" in done.stdout
