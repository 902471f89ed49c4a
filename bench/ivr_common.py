"""Shared plumbing of the IVR benchmarks: prompt audio, a box whose trunk delivers to the IVR, call records.

The box gets a fresh data folder with: switchboard.toml ([box] settings), the default spoken prompts
already rendered (so espeak-ng never runs inside the measured box), the owner's greeting and menu
WAVs set with `switchboard prompt set`, and a provisioning file with a trunk on 127.0.0.1:TRUNK_PORT
whose calls go to ivr:main (key 1 -> ivr:second).
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from pathlib import Path

from common import HOST, RTP_RANGE, Box, box_command, free_port, spawn

DID = "4930555000"  # the number the trunk delivers (any number goes to the trunk's `inbound`)
DTMF_1 = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
RATE = 8000
_PROMPT_CACHE = Path(tempfile.gettempdir()) / "switchboard-bench-prompts"


def use_venv_commands() -> None:
    """Put this interpreter's bin folder first on PATH, so `switchboard` is the venv's own."""
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def pin_self(core: int) -> None:
    """Run this (measuring) process on one core, when the machine has it."""
    if core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {core})


# --- audio ---------------------------------------------------------------------------
def speech_like(seconds: float, seed: int = 1, level: float = 0.25) -> bytes:
    """Synthetic voiced speech: a gliding 90-200 Hz buzz with harmonics, ~4 syllables/s, pauses, some noise."""
    rng = random.Random(seed)
    total = int(seconds * RATE)
    out = array("h", bytes(2 * total))
    phase = 0.0
    n = 0
    while n < total:
        length = int(RATE * rng.uniform(0.12, 0.3))  # one syllable, or a pause
        voiced = rng.random() > 0.2
        f0a, f0b = rng.uniform(90, 200), rng.uniform(90, 200)
        harmonics = [(k, rng.uniform(0.2, 1.0) / k) for k in range(1, 12)]
        for i in range(min(length, total - n)):
            env = math.sin(math.pi * i / length) if voiced else 0.0
            f0 = f0a + (f0b - f0a) * i / length
            phase += 2 * math.pi * f0 / RATE
            x = sum(a * math.sin(k * phase) for k, a in harmonics if k * f0 < 3800) * env * 0.4
            x += rng.gauss(0, 0.02)
            out[n + i] = max(-32767, min(32767, int(x * level * 32767)))
        n += length
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def noise(seconds: float, seed: int = 2, level: float = 0.1) -> bytes:
    """White Gaussian noise, 16-bit LE, rms `level` of full scale."""
    rng = random.Random(seed)
    out = array("h", (max(-32767, min(32767, int(rng.gauss(0, level) * 32767)))
                      for _ in range(int(seconds * RATE))))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def espeak_speech(seconds: float) -> bytes | None:
    """Real speech from espeak-ng, 8 kHz 16-bit LE, repeated to `seconds`; None without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        return None
    from appliance.media.prompt_texts import TEXTS
    from appliance.media.prompts import load_wav

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), "--", " ".join(TEXTS.values())],
                       check=True, capture_output=True, timeout=60)
        pcm = load_wav(wav)
    want = int(seconds * RATE) * 2
    return (pcm * (want // len(pcm) + 1))[:want]


def write_wav(path: Path, pcm: bytes) -> Path:
    """Write 8 kHz mono 16-bit LE PCM as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


# --- the box -------------------------------------------------------------------------
def seed_prompts(data_dir: Path) -> None:
    """Copy the default prompts, rendered once per machine, into a fresh data folder."""
    from appliance.media.prompts import PromptLibrary

    generated = _PROMPT_CACHE / "generated"
    if not generated.is_dir() or not any(generated.iterdir()):
        PromptLibrary(_PROMPT_CACHE).preload()
    target = data_dir / "prompts" / "generated"
    target.mkdir(parents=True, exist_ok=True)
    for wav in generated.glob("*.wav"):
        shutil.copyfile(wav, target / wav.name)


def ivr_provision(trunk_port: int, timeout: int = 30) -> str:
    """A trunk on 127.0.0.1:trunk_port delivering to ivr:main; key 1 goes to ivr:second."""
    return f"""
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-bench-201"

[[trunks]]
name = "itsp"
host = "{HOST}"
port = {trunk_port}
inbound = "ivr:main"

[[ivr]]
name = "main"
greeting = "greeting"
menu = "menu"
timeout = {timeout}
max_retries = 0
fallback = "hangup"

[ivr.options]
"1" = "ivr:second"

[[ivr]]
name = "second"
greeting = ""
menu = "menu"
timeout = {timeout}
max_retries = 0
fallback = "hangup"
"""


def prepare_data_dir(workdir: Path, trunk_port: int, greeting: bytes, menu: bytes,
                     settings: dict[str, object] | None = None) -> Path:
    """A fresh data folder: settings, rendered default prompts, the owner's greeting and menu, provisioning."""
    data_dir = Path(tempfile.mkdtemp(prefix="box-", dir=workdir))
    box = {"trunk_keepalive": 3600, **(settings or {})}  # no OPTIONS pings to the peer during a run
    lines = ["[box]"] + [f"{k} = {json.dumps(v)}" for k, v in box.items()]
    (data_dir / "switchboard.toml").write_text("\n".join(lines) + "\n")
    seed_prompts(data_dir)
    for name, pcm in (("greeting", greeting), ("menu", menu)):
        wav = write_wav(data_dir / f"{name}-source.wav", pcm)
        subprocess.run(["switchboard", "prompt", "set", name, str(wav), "--data-dir", str(data_dir)],
                       check=True, capture_output=True, timeout=60)
    (data_dir / "provision.toml").write_text(ivr_provision(trunk_port))
    return data_dir


def start_ivr_box(data_dir: Path, rtp: tuple[int, int] = RTP_RANGE, realtime: bool = False,
                  timeout: float = 60.0) -> Box:
    """Start `switchboard run` on a prepared data folder (core 0) and wait for its banner and prompts."""
    sip_port = free_port()
    log_path = data_dir / "box.log"
    started = time.monotonic()
    cmd = box_command(data_dir, data_dir / "provision.toml", sip_port, rtp, free_port(socket.SOCK_STREAM),
                      realtime)
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    deadline = started + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("Switchboard ready"):
            spawn(["cat"], priority=False, stdin=proc.stdout, stdout=subprocess.DEVNULL)
            time.sleep(1.0)  # let the prompt preload (all seeded: only file reads) finish
            return Box(proc, data_dir, sip_port, rtp, line.strip(), started, log_path)
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit(f"box did not start:\n{log_path.read_text()[-3000:]}")


def call_records(data_dir: Path, limit: int = 10000) -> list[dict]:
    """The box's call records (`switchboard calls --json`), newest first."""
    done = subprocess.run(["switchboard", "calls", "--json", "--limit", str(limit), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        sys.exit(f"switchboard calls failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def keys(record: dict) -> list[str]:
    """The keys the IVR path of a call record shows the caller pressing."""
    path = record.get("ivr_path") or []
    if isinstance(path, str):
        path = json.loads(path)
    return [step["key"] for step in path if "key" in step]


def pressed(record: dict, key: str) -> bool:
    """Whether the caller's IVR path has this key press."""
    return key in keys(record)


# --- pcaps ---------------------------------------------------------------------------
def pcap_rtp(path: Path) -> list[tuple[float, bytes]]:
    """(seconds from the first packet, RTP bytes) of every UDP packet in an Ethernet/IPv4 pcap."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    scale = 1e-9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e-6
    link = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 0: 4, 276: 20}.get(link, 14)
    out: list[tuple[float, bytes]] = []
    off, t0 = 24, None
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ihl = (pkt[l2] & 0x0F) * 4
        t = sec + frac * scale
        t0 = t if t0 is None else t0
        out.append((t - t0, pkt[l2 + ihl + 8:]))
    return out
