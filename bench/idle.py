"""Idle footprint and start-up time: RSS after start, RSS after a REGISTER burst, exec -> SIP-ready.

Usage: python bench/idle.py [--starts 5] [--users 500] [--burst 5000] [--burst-rate 500] [--settle 33]

Start-up: the box (core 0) is started STARTS times with USERS provisioned extensions, each
time in a fresh data directory (so provisioning runs every time), and an OPTIONS probe is
sent to its SIP port every 2 ms from just before the exec; ready = the first 200 OK to
OPTIONS. Reported: exec -> ready, exec -> the "Switchboard ready" banner, and the box's own
"ready in N ms" (Box.start only: store, provisioning, sockets). Measured twice, each with
its own PYTHONPYCACHEPREFIX so that whatever __pycache__ folders the tree has do not count:
with a warm bytecode cache (filled by one start first), which is how an installed box runs,
and with none at all (an empty cache that is never written: every module, the standard
library's too, is compiled from source at every start), the worst case.

Idle RSS: 3 s after each start (median). Then on the last box: a REGISTER burst (BURST
registrations with digest auth at BURST_RATE/s over the USERS extensions, SIPp on core 1),
RSS right after it and SETTLE seconds later, once timer J (32 s) has let go of the burst's
transactions. Goals: idle RSS <= 60 MB, exec -> SIP-ready <= 2 s.
"""
from __future__ import annotations

import argparse
import os
import secrets
import select
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common import (HOST, SCENARIOS, Box, box_command, extensions, free_port, header, median, provision_text,
                    require, rss_mb, spawn, start_sipp, finish_sipp, table, users_csv)


def options(port: int, local_port: int) -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    return (f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local_port};branch={branch};rport\r\n"
            f"From: <sip:probe@{HOST}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@bench\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def start_and_probe(workdir: Path, users: dict[str, str], env: dict[str, str]) -> tuple[Box, dict]:
    """Exec the box and probe it with OPTIONS until it answers 200."""
    data_dir = Path(tempfile.mkdtemp(prefix="box-", dir=workdir))
    provision = data_dir / "provision.toml"
    provision.write_text(provision_text(users))
    sip_port = free_port()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, 0))
    local_port = probe.getsockname()[1]
    log = open(data_dir / "box.log", "w")
    cmd = box_command(data_dir, provision, sip_port, (14000, 15998), free_port(socket.SOCK_STREAM))
    t0 = time.monotonic()
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    ready = banner_at = None
    banner = ""
    deadline = t0 + 30
    os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
    pending = ""
    while time.monotonic() < deadline and (ready is None or banner_at is None):
        if ready is None:
            try:
                probe.sendto(options(sip_port, local_port), (HOST, sip_port))
            except OSError:
                pass
        readable, _, _ = select.select([probe, proc.stdout], [], [], 0.002)
        now = time.monotonic()
        if probe in readable:
            try:
                data = probe.recv(65535)
                if data.startswith(b"SIP/2.0 200") and ready is None:
                    ready = now
            except OSError:
                pass  # ICMP port unreachable before the box binds
        if proc.stdout in readable:
            chunk = proc.stdout.read() or ""  # type: ignore[union-attr]
            pending += chunk
            if "Switchboard ready" in pending and banner_at is None:
                banner_at = now
                banner = pending.split("Switchboard ready", 1)[1].split("\n", 1)[0]
        if proc.poll() is not None:
            raise SystemExit(f"box exited:\n{(data_dir / 'box.log').read_text()[-2000:]}")
    probe.close()
    os.set_blocking(proc.stdout.fileno(), True)  # type: ignore[union-attr]
    spawn(["cat"], priority=False, stdin=proc.stdout, stdout=subprocess.DEVNULL)
    own = float("nan")
    if " in " in banner and " ms" in banner:
        try:
            own = float(banner.split(" in ", 1)[1].split(" ms", 1)[0])
        except ValueError:
            pass
    box = Box(proc, data_dir, sip_port, (14000, 15998), "Switchboard ready" + banner, t0, data_dir / "box.log")
    return box, {"ready_ms": 1000 * (ready - t0) if ready else float("nan"),
                 "banner_ms": 1000 * (banner_at - t0) if banner_at else float("nan"), "own_ms": own}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--burst-rate", type=int, default=500)
    ap.add_argument("--settle", type=float, default=33.0)
    args = ap.parse_args()
    require("sipp")
    header(f"Idle and start-up: {args.users} provisioned extensions, {args.starts} starts per mode")
    users = extensions(args.users)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        work = Path(tmp)
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        cold = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(work / "empty-pycache")}
        # The burst runs on the last box started: a warm one, as an installed box runs.
        modes = [("no bytecode cache (compile all)", cold), ("warm bytecode cache", cached)]
        last_box = None
        for label, env in modes:
            if env is cached:  # fill the cache once
                box, _ = start_and_probe(work, users, env)
                box.stop()
            figures = []
            for i in range(args.starts):
                box, fig = start_and_probe(work, users, env)
                time.sleep(3.0)
                fig["rss"] = rss_mb(box.pid)
                figures.append(fig)
                print(f"  {label}, start {i + 1}: SIP-ready after {fig['ready_ms']:.0f} ms, banner after "
                      f"{fig['banner_ms']:.0f} ms (box says {fig['own_ms']:.0f} ms), idle RSS {fig['rss']:.1f} MB",
                      flush=True)
                if last_box is not None:
                    last_box.stop()
                last_box = box
            rows.append([label, median([f["ready_ms"] for f in figures]), max(f["ready_ms"] for f in figures),
                         median([f["banner_ms"] for f in figures]), median([f["own_ms"] for f in figures]),
                         median([f["rss"] for f in figures])])
        assert last_box is not None
        box = last_box
        rss_idle = box.rss()
        csv_path = users_csv(work / "users.csv", users)
        sipp, began = start_sipp(work / "burst", f"{HOST}:{box.sip_port}", SCENARIOS / "register.xml",
                                 "-inf", str(csv_path), "-r", str(args.burst_rate), "-m", str(args.burst),
                                 "-l", str(args.burst_rate * 20), "-key", "expires", "3600", "-t", "u1",
                                 "-timeout", str(int(args.burst / args.burst_rate + 60)))
        run = finish_sipp(sipp, began, work / "burst", timeout=args.burst / args.burst_rate + 90)
        rss_burst = box.rss()
        print(f"  burst: {run.successful} registrations ok, {run.failed} failed, {run.retransmissions} retrans "
              f"in {run.elapsed:.1f} s; RSS {rss_idle:.1f} -> {rss_burst:.1f} MB", flush=True)
        time.sleep(args.settle)
        rss_settled = box.rss()
        box.stop()
    print()
    print(f"start-up, medians of {args.starts} starts (ready = first 200 to OPTIONS, from exec)")
    print(table(["mode", "exec->SIP-ready ms", "worst ms", "exec->banner ms", "Box.start ms", "idle RSS MB"], rows))
    print()
    print(f"RSS around a REGISTER burst ({args.burst} registrations at {args.burst_rate}/s, digest auth)")
    print(table(["idle MB", "after burst MB", f"+{args.settle:.0f} s MB", "registrations ok", "failed", "retrans"],
                [[rss_idle, rss_burst, rss_settled, run.successful, run.failed, run.retransmissions]]))


if __name__ == "__main__":
    main()
