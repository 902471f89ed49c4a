"""The modem line: how fast a GSM call is answered, the audio round trip through the box, CPU, and recovery.

Usage: python bench/modem_line.py [--runs 3] [--dialect sim7600|ec25|v253] [--talk 10] [--keep DIR]

Each run: a fresh box (core 0) with extension 201, an IVR "main" whose key 1 rings 201, and a
[[modems]] line "gsm" into that IVR, on the pty modem simulator (hw/sim, in this process, core 1).
Extension 201 is a SIPp uas (core 1) that answers at once and echoes RTP back (-rtp_echo).

Figures per run:
- **ring -> answered**: the simulator's RING to the driver's answer command (ATA, or AT+VLS=1 for
  V.253), both seen by the simulator: the box's IVR took the call and the gateway answered the line.
- **audio round trip**: with Ann's phone up, the simulator plays a 100 ms 1 kHz burst in silence;
  the delay to the burst's return (modem -> box -> Ann's phone -> box -> modem), by cross-correlation.
  It includes the driver's and the simulator's 20 ms framing on both ways.
- **box CPU %** of one core while the call is up and audio flows both ways (--talk seconds).
- **unplug -> record closed**: the pty vanishes mid-call; the time until the call record is ended.
- **replug -> ready**: the pty is back; the time until `switchboard status` says the line is ready
  (the driver retries with a growing pause, 1 s first).
Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (HOST, PEER_CORE, RTP_RANGE, SCENARIOS, CpuMeter, box_command, free_media_port, free_port,
                    header, median, pinned, spawn, table, users_csv)
from ivr_common import use_venv_commands
from peerkit.texts import modem_line

from hw.sim.simulator import ModemSimulator

SECRET = "bench-secret-201"
ANSWER = {"sim7600": "ATA", "ec25": "ATA", "v253": "AT+VLS=1"}


def provision(port: str, dialect: str) -> str:
    return f"""
[[extensions]]
number = "201"
name = "Ann"
secret = "{SECRET}"

[[ivr]]
name = "main"
timeout = 10
max_retries = 0
fallback = "hangup"
[ivr.options]
"1" = "extension:201"

[prompts]
greeting = "Hello."
menu = "One."

""" + modem_line(port, dialect, "ivr:main")


def wait(predicate, timeout: float, step: float = 0.002):  # type: ignore[no-untyped-def]
    """Poll until truthy; the value, or None at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def calls(db: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY started_at")]
    finally:
        conn.close()


def line_state(data_dir: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--json", "--data-dir", str(data_dir)],
                         capture_output=True, text=True)
    try:
        return json.loads(out.stdout)["lines"]["gsm"]["state"]
    except (ValueError, KeyError):
        return ""


def round_trip_ms(sim: ModemSimulator) -> float:
    """Play a 100 ms 1 kHz burst and find it in what comes back."""
    burst = (8000 * np.sin(2 * np.pi * 1000 * np.arange(800) / 8000)).astype("<i2").tobytes()
    sim.clear_received()
    time.sleep(0.5)  # a quiet lead-in
    sent_at = len(sim.received())
    sim.play(burst)
    time.sleep(1.5)
    back = np.frombuffer(sim.received(), dtype="<i2").astype(np.float64)[sent_at // 2:]
    ref = np.frombuffer(burst, dtype="<i2").astype(np.float64)
    if back.size < ref.size:
        return float("nan")
    corr = np.correlate(back, ref, mode="valid")
    return 1000.0 * int(np.argmax(np.abs(corr))) / 8000


def run_once(work: Path, dialect: str, talk: float) -> dict:
    sim = ModemSimulator(dialect, str(work / "modem0"))
    sim.start()
    (work / "box").mkdir()
    prov = work / "provision.toml"
    prov.write_text(provision(sim.path, dialect))
    (work / "box" / "switchboard.toml").write_text("[box]\ntrunk_keepalive = 3600\n")
    sip_port = free_port()
    log = open(work / "box.log", "w")
    box = spawn(box_command(work / "box", prov, sip_port, RTP_RANGE, free_port(socket.SOCK_STREAM)), stdout=subprocess.PIPE,
                stderr=log, text=True)
    figures: dict = {}
    uas = None
    try:
        while not box.stdout.readline().startswith("Switchboard ready"):  # type: ignore[union-attr]
            if box.poll() is not None:
                sys.exit((work / "box.log").read_text()[-3000:])
        spawn(["cat"], priority=False, stdin=box.stdout, stdout=subprocess.DEVNULL)
        wait(lambda: line_state(work / "box") == "ready", 30, 0.2)
        port = free_port()
        csv = users_csv(work / "reg.csv", {"201": SECRET})
        subprocess.run(pinned(PEER_CORE, ["sipp", "-nostdin", "-i", HOST, f"{HOST}:{sip_port}", "-sf",
                                          str(SCENARIOS / "register.xml"), "-inf", str(csv), "-m", "1", "-p",
                                          str(port), "-key", "expires", "3600", "-timeout", "15"]),
                       cwd=work, capture_output=True, check=True)
        uas = spawn(pinned(PEER_CORE, ["sipp", "-nostdin", "-i", HOST, "-sn", "uas", "-p", str(port), "-m", "1",
                                       "-mp", str(free_media_port()), "-rtp_echo"]), priority=False, cwd=work,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = len(sim.commands)
        rang = time.monotonic()
        sim.ring("+15555550100")
        wait(lambda: ANSWER[dialect] in sim.commands[before:], 15)
        figures["answer_ms"] = 1000 * (time.monotonic() - rang)
        wait(lambda: sim.audio_on, 10)
        time.sleep(1.0)
        sim.play_dtmf("1")
        wait(lambda: any(r["answered_by"] == "201" for r in calls(work / "box" / "switchboard.db")), 20, 0.05)
        time.sleep(0.5)
        figures["round_trip_ms"] = median([round_trip_ms(sim) for _ in range(3)])
        meter = CpuMeter(box.pid)
        sim.play_tone(440.0, talk)
        time.sleep(talk)
        figures["cpu_pct"] = meter.stop()["cpu_pct"]
        unplugged = time.monotonic()
        sim.unplug()
        wait(lambda: all(r["ended_at"] for r in calls(work / "box" / "switchboard.db")), 20, 0.01)
        figures["closed_ms"] = 1000 * (time.monotonic() - unplugged)
        wait(lambda: line_state(work / "box") == "down", 10, 0.1)
        replugged = time.monotonic()
        sim.replug()
        wait(lambda: line_state(work / "box") == "ready", 60, 0.05)
        figures["ready_s"] = time.monotonic() - replugged
    finally:
        if uas is not None and uas.poll() is None:
            uas.kill()
        box.terminate()
        box.wait(10)
        sim.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dialect", choices=tuple(ANSWER), default="sim7600")
    parser.add_argument("--talk", type=float, default=10.0)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    use_venv_commands()
    header(f"modem line ({args.dialect}), {args.runs} runs")
    rows = []
    for run in range(1, args.runs + 1):
        work = Path(tempfile.mkdtemp(prefix="modem-", dir=args.keep))
        rows.append(run_once(work, args.dialect, args.talk))
        print(f"  run {run}: {rows[-1]}", flush=True)
    keys = ("answer_ms", "round_trip_ms", "cpu_pct", "closed_ms", "ready_s")
    table_rows = [[i + 1, *[r.get(k, float("nan")) for k in keys]] for i, r in enumerate(rows)]
    table_rows.append(["median", *[median([r.get(k, float("nan")) for r in rows]) for k in keys]])
    print(table(["run", "ring->answered ms", "audio round trip ms", "box CPU % (call up)", "unplug->record closed ms",
                 "replug->ready s"], table_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
