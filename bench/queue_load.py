"""A call queue under load: callers arrive over two minutes at 5 SIPp agents; waits, abandons, box CPU, free -> ring.

Usage: python bench/queue_load.py [--runs 3] [--callers 30] [--window 120] [--talk 20-60] [--patience 90]
                                  [--seed 1] [--verbose] [--keep DIR] [--quick]

Each run: a fresh box (core 0, fresh data folder) with extensions 201-205 in queue "sales"
(longest-idle, wrapup 0, ring_timeout 15, position and expected wait announced every 30 s, max_wait
300, no callback key) and a trunk on 127.0.0.1:PORT delivering to queue:sales. The default prompts
and the spoken numbers 1..N are rendered once per machine and copied in, so espeak-ng never runs
inside the measured box.

Peers (core 1):
- agents: one SIPp uas per extension (bench/sipp/queue_agent.xml), registered first from its port
  with register.xml, then logged in with `switchboard agent login`. Each call rings 300 ms, is
  answered, the agent sends an INFO ("hello": the box relays it, so the caller knows an agent took
  the call), talks for a time drawn uniformly from --talk (per agent and call, from a seeded RNG,
  fed to SIPp through an injection file: every run has the same talk times), hangs up.
- callers: ONE SIPp uac on the trunk's port (bench/sipp/queue_caller.xml), --callers calls spread
  evenly over --window seconds (`-r 1 -rp GAP`), each with its own number (injection file). The box
  answers at once; the caller waits for the agent's INFO for at most --patience seconds, then hangs
  up: that is an abandoned call.

Figures, from the box's SQLite file (read-only, after the run) and /proc:
- wait per caller = (answered_at or left_at) - entered_at: p50, p90, max; answered; abandoned
  (outcome "abandoned") and abandon rate = abandoned / entries;
- box CPU = utime+stime over the run (callers' start to their end) as % of one core; VmRSS at the
  end and VmHWM (peak) in MB;
- agent free -> phone ringing, counted only where a caller was waiting, not being offered to anyone,
  at the moment the agent's call ended (the box then has to offer that caller to the agent who just
  became free). Box side: rang_at of the agent's next offer - ended_at of the agent's call, both the
  box's time.time(). SIPp side: from the agent SIPp's -trace_msg log, the time it SENT its BYE to
  the time it RECEIVED the next INVITE (wall-clock stamps, same clock as the box's). The same gaps
  are counted on both sides: the DB decides which BYEs count.
Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import (HOST, PEER_CORE, SCENARIOS, CpuMeter, finish_sipp, free_media_port, free_port, header, median,
                    percentile, register, require, start_sipp, table)
from ivr_common import _PROMPT_CACHE, pin_self, seed_prompts, start_ivr_box, use_venv_commands

AGENTS = {str(n): f"Qbench-{n}-x7Kp2w" for n in range(201, 206)}
DID = "4930555000"
RING_MS = 300  # how long an agent's phone rings before it answers (bench/sipp/queue_agent.xml)
GOAL_P95_MS = 100.0


# --- the box -------------------------------------------------------------------------
def provision(trunk_port: int) -> str:
    """Agents 201-205, queue sales, a trunk on the callers' port delivering to it."""
    extensions = "".join(f'[[extensions]]\nnumber = "{n}"\nname = "Agent {n}"\nsecret = "{s}"\n\n'
                         for n, s in AGENTS.items())
    members = ", ".join(f'"{n}"' for n in AGENTS)
    return extensions + f"""[[trunks]]
name = "itsp"
host = "{HOST}"
port = {trunk_port}
inbound = "queue:sales"

[[queue]]
name = "sales"
number = "600"
strategy = "longest-idle"
members = [{members}]
ring_timeout = 15
wrapup = 0
max_wait = 300
max_length = 100
announce_every = 30
announce_position = true
announce_wait = true
callback_key = ""
max_misses = 0
"""


def seed_spoken(data_dir: Path, upto: int) -> None:
    """Render the numbers 1..upto once per machine (as the box would, with espeak-ng) and copy them in."""
    from appliance.media.prompts import PromptLibrary

    library = PromptLibrary(_PROMPT_CACHE)
    target = data_dir / "prompts" / "generated" / "spoken"
    target.mkdir(parents=True, exist_ok=True)
    for number in range(1, upto + 1):
        path = library.spoken_path(str(number))
        if not path.is_file():
            library.speak(str(number))
        shutil.copyfile(path, target / path.name)


def prepare_data_dir(work: Path, trunk_port: int, spoken_upto: int) -> Path:
    """A fresh data folder: settings (no OPTIONS pings to the trunk), rendered prompts, provisioning."""
    data_dir = Path(tempfile.mkdtemp(prefix="box-", dir=work))
    (data_dir / "switchboard.toml").write_text("[box]\ntrunk_keepalive = 3600\n")
    seed_prompts(data_dir)
    seed_spoken(data_dir, spoken_upto)
    (data_dir / "provision.toml").write_text(provision(trunk_port))
    return data_dir


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(["switchboard", *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"switchboard {' '.join(args)} failed: {done.stderr[-2000:]}{done.stdout[-500:]}")
    return done.stdout


def status_kb(pid: int, key: str) -> float:
    """A line of /proc/PID/status (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- peers ---------------------------------------------------------------------------
def caller_scenario(work: Path, patience_s: float) -> Path:
    """bench/sipp/queue_caller.xml with the patience filled in."""
    text = (SCENARIOS / "queue_caller.xml").read_text().replace("PATIENCE_MS", str(int(patience_s * 1000)))
    path = work / "queue_caller.xml"
    path.write_text(text)
    return path


def talk_file(path: Path, rng: random.Random, calls: int, talk: tuple[float, float]) -> Path:
    """Injection file for one agent: field0 = talk time in ms of each call it takes, in order."""
    lines = ["SEQUENTIAL"] + [str(int(rng.uniform(*talk) * 1000)) for _ in range(calls)]
    path.write_text("\n".join(lines) + "\n")
    return path


def callers_file(path: Path, calls: int) -> Path:
    """Injection file for the callers: field0 = caller number."""
    path.write_text("\n".join(["SEQUENTIAL"] + [f"49301{i:05d}" for i in range(calls)]) + "\n")
    return path


_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$")


def sipp_messages(path: Path) -> list[tuple[float, str, str, str]]:
    """(epoch time, "sent"/"received", first line, Call-ID) of every message in a SIPp -trace_msg log.

    SIPp stamps each message with the local wall-clock time of its main-loop round."""
    out: list[tuple[float, str, str, str]] = []
    if not path.is_file():
        return out
    blocks = re.split(r"(?m)^(?=-{20,} \d{4}-)", path.read_text(errors="replace"))
    for block in blocks:
        lines = block.splitlines()
        if len(lines) < 3:
            continue
        m = _STAMP.match(lines[0])
        if not m:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()  # local time, like SIPp's
        direction = "sent" if " sent" in lines[1] else "received"
        body = [line for line in lines[2:] if line.strip()]
        first = body[0].strip() if body else ""
        call_id = next((line.split(":", 1)[1].strip() for line in body
                        if line.lower().startswith(("call-id:", "i:"))), "")
        out.append((stamp, direction, first, call_id))
    return out


# --- figures -------------------------------------------------------------------------
def read_db(data_dir: Path) -> tuple[list[dict], list[dict]]:
    """queue_entries and queue_offers rows (read-only)."""
    conn = sqlite3.connect(f"file:{data_dir / 'switchboard.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        entries = [dict(r) for r in conn.execute("SELECT * FROM queue_entries ORDER BY entered_at")]
        offers = [dict(r) for r in conn.execute("SELECT * FROM queue_offers ORDER BY rang_at, id")]
    finally:
        conn.close()
    return entries, offers


def waiting_unoffered(t: float, entries: list[dict], offers: list[dict]) -> bool:
    """Whether some caller was in the line at t and not being offered to an agent."""
    for e in entries:
        out = e["answered_at"] if e["answered_at"] is not None else e["left_at"]
        if e["entered_at"] < t < (out if out is not None else math.inf):
            if not any(o["entry_id"] == e["id"] and o["rang_at"] <= t < (o["ended_at"] or math.inf) for o in offers):
                return True
    return False


def free_to_ring(entries: list[dict], offers: list[dict], agent_logs: dict[str, list]) -> tuple[list, list, list]:
    """(box-side ms, SIPp-side ms, details) of the gaps between an agent's call ending while a caller waited
    unoffered and that agent's next ring."""
    box_ms: list[float] = []
    sipp_ms: list[float] = []
    details: list[dict] = []
    for agent in AGENTS:
        calls = sorted((e for e in entries if e["agent"] == agent and e["ended_at"] is not None),
                       key=lambda e: e["ended_at"])
        rings = sorted(o["rang_at"] for o in offers if o["agent"] == agent)
        msgs = agent_logs.get(agent, [])
        byes = [t for t, d, first, _ in msgs if d == "sent" and first.startswith("BYE ")]
        invites, seen = [], set()
        for t, d, first, cid in msgs:
            if d == "received" and first.startswith("INVITE ") and cid not in seen:
                seen.add(cid)
                invites.append(t)
        for e in calls:
            ended = e["ended_at"]
            nxt = next((r for r in rings if r >= ended), None)
            if nxt is None or not waiting_unoffered(ended, entries, offers):
                continue
            row = {"agent": agent, "ended_at": ended, "box_ms": 1000 * (nxt - ended), "sipp_ms": None}
            box_ms.append(row["box_ms"])
            # The agent's own BYE that ended this call (SIPp stamps it before the box sees it); none
            # if the caller hung up first.
            bye = max((t for t in byes if ended - 1.0 <= t <= ended + 0.05), default=None)
            if bye is not None:
                inv = next((t for t in invites if t > bye), None)
                if inv is not None:
                    row["sipp_ms"] = 1000 * (inv - bye)
                    sipp_ms.append(row["sipp_ms"])
            details.append(row)
    return box_ms, sipp_ms, details


def one_run(args: argparse.Namespace, work: Path, index: int) -> dict:
    """A fresh box, 5 agents, one caller SIPp run, the figures."""
    run_dir = work / f"run{index + 1}"
    run_dir.mkdir()
    trunk_port = free_port()
    data_dir = prepare_data_dir(run_dir, trunk_port, max(args.callers, 10) + 5)
    box = start_ivr_box(data_dir)
    agents: dict[str, tuple] = {}
    try:
        rng = random.Random(args.seed)
        for number, secret in AGENTS.items():
            adir = run_dir / f"agent{number}"
            adir.mkdir()
            port = free_port()
            reg = register(box, adir, {number: secret}, port=port)
            if reg.successful != 1:
                raise SystemExit(f"agent {number} did not register: {reg.errors or reg.stdout[-1500:]}")
            talks = talk_file(adir / "talk.csv", rng, args.callers + 5, args.talk)
            proc, began = start_sipp(adir, None, SCENARIOS / "queue_agent.xml", "-p", str(port),
                                     "-m", str(args.callers * 2), "-l", "10", "-mp", str(free_media_port()),
                                     "-inf", str(talks), "-trace_msg")
            agents[number] = (proc, began, adir)
        time.sleep(0.5)
        for number in AGENTS:  # login order = initial idle order (longest-idle)
            cli(data_dir, "agent", "login", number)
        time.sleep(0.5)
        gap_ms = int(args.window * 1000 / args.callers)
        cdir = run_dir / "callers"
        limit = args.window + args.patience + args.talk[1] + 90
        rss_before = box.rss()
        proc, began = start_sipp(cdir, f"{HOST}:{box.sip_port}", caller_scenario(run_dir, args.patience),
                                 "-p", str(trunk_port), "-s", DID, "-inf", str(callers_file(run_dir / "callers.csv",
                                                                                          args.callers)),
                                 "-m", str(args.callers), "-l", str(args.callers), "-r", "1", "-rp", str(gap_ms),
                                 "-mp", str(free_media_port()), "-timeout", str(int(limit)), "-timeout_error",
                                 "-trace_msg")
        meter = CpuMeter(box.pid)
        callers = finish_sipp(proc, began, cdir, timeout=limit + 30)
        cpu = meter.stop()
        rss_end, rss_peak = status_kb(box.pid, "VmRSS"), status_kb(box.pid, "VmHWM")
        time.sleep(1.0)  # the last BYE's 200 to the agent
        agent_runs = {n: finish_sipp(p, b, d, timeout=0.5) for n, (p, b, d) in agents.items()}
        agents.clear()
    finally:
        for proc, _, _ in agents.values():
            if proc.poll() is None:
                proc.kill()
        box.stop()
    entries, offers = read_db(data_dir)
    if args.keep:
        shutil.copytree(run_dir, Path(args.keep) / run_dir.name, dirs_exist_ok=True, ignore_dangling_symlinks=True)
    logs = {n: sipp_messages(next((run_dir / f"agent{n}").glob("queue_agent_*_messages.log"), Path("/nonexistent")))
            for n in AGENTS}
    box_ms, sipp_ms, details = free_to_ring(entries, offers, logs)
    waits = [(e["answered_at"] if e["answered_at"] is not None else e["left_at"]) - e["entered_at"]
             for e in entries if e["answered_at"] is not None or e["left_at"] is not None]
    answered = sum(1 for e in entries if e["answered_at"] is not None)
    abandoned = sum(1 for e in entries if e["outcome"] == "abandoned")
    caller_msgs = sipp_messages(next(cdir.glob("*_messages.log"), Path("/nonexistent")))
    gave_up = sum(1 for _, d, first, _ in caller_msgs if d == "sent" and first.startswith("BYE "))
    agent_failed = sum(r.failed for r in agent_runs.values())
    outcomes: dict[str, int] = {}
    for e in entries:
        outcomes[e["outcome"] or "none"] = outcomes.get(e["outcome"] or "none", 0) + 1
    result = {
        "callers": len(entries), "answered": answered, "abandoned": abandoned,
        "abandon_pct": 100.0 * abandoned / len(entries) if entries else float("nan"),
        "wait_p50": percentile(waits, 50), "wait_p90": percentile(waits, 90), "wait_max": max(waits, default=float("nan")),
        "cpu_pct": cpu["cpu_pct"], "cpu_s": cpu["cpu_s"], "wall": cpu["wall"], "rss_before": rss_before,
        "rss": rss_end, "peak": rss_peak, "runq": cpu["runq_pct"], "other": cpu["other_pct"],
        "box_p50": percentile(box_ms, 50), "box_p95": percentile(box_ms, 95), "box_max": max(box_ms, default=float("nan")),
        "box_n": len(box_ms),
        "sipp_p50": percentile(sipp_ms, 50), "sipp_p95": percentile(sipp_ms, 95),
        "sipp_max": max(sipp_ms, default=float("nan")), "sipp_n": len(sipp_ms),
    }
    print(f"  run {index + 1}: {len(entries)} callers ({json.dumps(outcomes)}), SIPp callers {callers.successful} ok / "
          f"{callers.failed} failed, {gave_up} gave up; agents {agent_failed} failed calls; waits p50/p90/max "
          f"{result['wait_p50']:.1f}/{result['wait_p90']:.1f}/{result['wait_max']:.1f} s; box CPU {cpu['cpu_s']:.2f} s "
          f"over {cpu['wall']:.0f} s = {cpu['cpu_pct']:.2f} %, RSS {rss_before:.1f} -> {rss_end:.1f} MB (peak "
          f"{rss_peak:.1f}); free->ring box p50/p95/max {result['box_p50']:.2f}/{result['box_p95']:.2f}/"
          f"{result['box_max']:.2f} ms (n={len(box_ms)}), SIPp {result['sipp_p50']:.1f}/{result['sipp_p95']:.1f}/"
          f"{result['sipp_max']:.1f} ms (n={len(sipp_ms)}); runq {cpu['runq_pct']:.2f} %, other core0 "
          f"{cpu['other_pct']:.1f} %", flush=True)
    if args.verbose:
        for row in details:
            print(f"    {row['agent']} free at {row['ended_at']:.3f}: box {row['box_ms']:.2f} ms, SIPp "
                  + (f"{row['sipp_ms']:.1f} ms" if row["sipp_ms"] is not None else "-"))
    # A caller's patience running out is logged as a receive timeout: expected, not an error.
    odd = [line for line in re.split(r"(?=\d{4}-\d\d-\d\d\t)", callers.errors)
           if line.strip() and "receive timeout" not in line and not line.startswith("The following events")]
    if callers.failed or odd:
        print("    SIPp caller errors: " + "".join(odd).strip()[-600:].replace("\n", "\n    "))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--callers", type=int, default=30)
    ap.add_argument("--window", type=float, default=120.0, help="seconds over which the callers arrive (evenly)")
    ap.add_argument("--talk", default="20-60", help="agents' talk time range in seconds (uniform)")
    ap.add_argument("--patience", type=float, default=90.0, help="seconds a caller waits for an agent, then hangs up")
    ap.add_argument("--seed", type=int, default=1, help="seed of the talk times (the same in every run)")
    ap.add_argument("--keep", metavar="DIR", help="copy each run's data folder and SIPp logs into DIR")
    ap.add_argument("--verbose", action="store_true", help="print every free -> ring gap")
    ap.add_argument("--quick", action="store_true",
                    help="smoke check: 10 callers over 20 s, talk 10-20 s, patience 15 s, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.callers, args.window, args.talk, args.patience, args.runs = 10, 20.0, "10-20", 15.0, 1
    low, high = (float(x) for x in args.talk.split("-"))
    args.talk = (low, high)
    require("sipp")
    use_venv_commands()
    pin_self(PEER_CORE)
    header(f"Queue load: {args.callers} callers over {args.window:g} s into queue sales (longest-idle, wrapup 0), "
           f"{len(AGENTS)} SIPp agents (ring {RING_MS} ms, talk {low:g}-{high:g} s), caller patience "
           f"{args.patience:g} s, {args.runs} runs")
    with tempfile.TemporaryDirectory(prefix="bench-queue-load-") as tmp:
        runs = [one_run(args, Path(tmp), i) for i in range(args.runs)]
    m = {k: median([float(r[k]) for r in runs]) for k in runs[0]}

    def row(label: str, r: dict) -> list[object]:
        return [label, int(r["callers"]), int(r["answered"]), int(r["abandoned"]), r["abandon_pct"], r["wait_p50"],
                r["wait_p90"], r["wait_max"], r["cpu_pct"], r["rss"], r["peak"], r["box_p50"], r["box_p95"],
                r["box_max"], int(r["box_n"]), r["sipp_p50"], r["sipp_p95"], r["sipp_max"], int(r["sipp_n"]),
                r["runq"], r["other"]]

    print()
    print(f"median of {args.runs} runs, then each run (waits in s: (answered_at or left_at) - entered_at; "
          f"free -> ring in ms, only where a caller waited unoffered when the agent's call ended; goal p95 <= "
          f"{GOAL_P95_MS:g} ms)")
    print(table(["run", "callers", "answered", "abandoned", "abandon %", "wait p50 s", "wait p90 s", "wait max s",
                 "box CPU %", "RSS MB", "peak MB", "box f->r p50 ms", "box p95", "box max", "box n",
                 "SIPp f->r p50 ms", "SIPp p95", "SIPp max", "SIPp n", "runq wait %", "other core0 %"],
                [row("median", m)] + [row(str(i + 1), r) for i, r in enumerate(runs)]))


if __name__ == "__main__":
    main()
