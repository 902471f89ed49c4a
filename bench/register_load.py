"""Sustained REGISTER load with digest auth: achieved rate, failures, retransmissions, box CPU and RSS.

Usage: python bench/register_load.py [RATE ...] [--users 500] [--seconds 20] [--runs 3] [--settle 33]
       (default rates 500 1000 1500)

For each target rate: a fresh box with USERS provisioned extensions (core 0); every extension
registers once (warm-up, 250/s, so the first-time SQLite writes are out of the way); then RUNS
times SIPp (core 1) registers them in a loop (injection CSV, SEQUENTIAL) at the target rate
for SECONDS, each registration being REGISTER -> 401 -> REGISTER with credentials -> 200.
A registration that does not finish within SIPp's retransmission limits counts as failed.

Per run: achieved = successful registrations / SIPp elapsed time (SIPp keeps sending at the
target rate whatever the box does, so a box that falls behind shows as a lower achieved rate,
retransmissions and failures; SIPp is stopped SECONDS + 6 s after its start, and what is
still unfinished then counts as failed); requests/s = 2 x achieved; box CPU % of one core over the run
(/proc/PID/stat utime+stime); registration time (first REGISTER sent -> 200 received) p50/p99
from SIPp's -trace_rtt. RSS: before the first run and after the last run; for the last rate
also SETTLE seconds later, once timer J (32 s) has let go of every transaction of the burst.
'runq wait %': how long the box was runnable but off the CPU (other work on core 0).
The table shows medians over the runs. Goal: >= 1000/s with 0 failures and 0 retransmissions
(Asterisk: 800/s at 63 % of its core); RSS must not balloon after a burst.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import (HOST, SCENARIOS, CpuMeter, finish_sipp, extensions, header, median, percentile,
                    register, require, start_box, start_profile, start_sipp, table, users_csv)


def one_rate(rate: int, users: dict[str, str], seconds: float, runs: int, settle: float, workdir: Path,
             profile: str | None = None) -> dict:
    box = start_box(workdir, users)
    try:
        warm = register(box, workdir, users, rate=250)
        if warm.failed or warm.successful != len(users):
            print(f"  warm-up: {warm.successful} ok, {warm.failed} failed\n{warm.errors[-1000:]}")
        time.sleep(1.0)
        rss_before = box.rss()
        csv_path = users_csv(workdir / "users.csv", users)
        results = []
        for i in range(runs):
            count = int(rate * seconds)
            proc, began = start_sipp(workdir / f"r{rate}", f"{HOST}:{box.sip_port}", SCENARIOS / "register.xml",
                                     "-inf", str(csv_path), "-r", str(rate), "-m", str(count),
                                     "-l", str(rate * 20), "-key", "expires", "3600", "-t", "u1",
                                     "-trace_rtt", "-rtt_freq", "200",
                                     "-timeout", str(int(seconds + 6)))
            meter = CpuMeter(box.pid)
            spy = start_profile(box.pid, seconds, profile, f"register_{rate}_{i}") if profile else None
            run = finish_sipp(proc, began, workdir / f"r{rate}", timeout=seconds + 60)
            cpu = meter.stop()
            if spy is not None:
                spy.wait(30)
            rss_after = box.rss()
            achieved = run.successful / run.elapsed if run.elapsed else 0.0
            unfinished = max(0, run.stat("TotalCallCreated") - run.successful - run.failed)
            row = {"achieved": achieved, "failed": run.failed + unfinished, "retrans": run.retransmissions,
                   "cpu": cpu["cpu_pct"], "other": cpu["other_pct"], "runq": cpu["runq_pct"], "rss_after": rss_after,
                   "p50": percentile(run.rtt_ms, 50), "p99": percentile(run.rtt_ms, 99),
                   "ok": run.successful, "elapsed": run.elapsed}
            results.append(row)
            print(f"  rate {rate}/s run {i + 1}: {run.successful} ok in {run.elapsed:.1f} s = {achieved:.0f}/s, "
                  f"{run.failed} failed + {unfinished} unfinished, {run.retransmissions} retrans, "
                  f"box CPU {cpu['cpu_pct']:.0f} % (runq wait {cpu['runq_pct']:.1f} %), "
                  f"RSS {rss_after:.0f} MB, reg time p50 {row['p50']:.0f} / p99 {row['p99']:.0f} ms", flush=True)
            time.sleep(1.0)
        rss_settled = float("nan")
        if settle > 0:
            time.sleep(settle)
            rss_settled = box.rss()
            print(f"  rate {rate}/s: RSS {rss_settled:.0f} MB {settle:.0f} s after the last run", flush=True)
    finally:
        box.stop()
    summary = {k: median([r[k] for r in results]) for k in results[0]}
    summary.update(rate=rate, rss_before=rss_before, rss_last=results[-1]["rss_after"], rss_settled=rss_settled,
                   failed_max=max(r["failed"] for r in results), retrans_max=max(r["retrans"] for r in results))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rates", nargs="*", type=int, default=[500, 1000, 1500])
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=33.0, help="seconds to wait before the settled RSS")
    ap.add_argument("--profile", metavar="DIR", help="also record py-spy profiles of the box into DIR")
    args = ap.parse_args()
    require("sipp")
    header(f"REGISTER load: {args.users} extensions, digest auth, {args.seconds:g} s per run, "
           f"{args.runs} runs per rate")
    users = extensions(args.users)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-register-") as tmp:
        for i, rate in enumerate(args.rates):
            settle = args.settle if i == len(args.rates) - 1 else 0.0
            s = one_rate(rate, users, args.seconds, args.runs, settle, Path(tmp), args.profile)
            rows.append([s["rate"], s["achieved"], 2 * s["achieved"], int(s["failed"]), int(s["retrans"]),
                         s["cpu"], s["p50"], s["p99"], s["rss_before"], s["rss_last"], s["rss_settled"],
                         s["runq"], s["other"]])
    print()
    print(f"medians of {args.runs} runs (failed includes registrations unfinished when SIPp stopped, "
          f"{args.seconds + 6:g} s after its start; RSS after = after the last run; RSS +{args.settle:.0f}s "
          f"only for the last rate)")
    print(table(["target/s", "achieved/s", "req/s", "failed", "retrans", "box CPU %", "reg p50 ms",
                 "reg p99 ms", "RSS before MB", "RSS after MB", f"RSS +{args.settle:.0f}s MB",
                 "runq wait %", "other core0 %"], rows))


if __name__ == "__main__":
    main()
