"""IVR calls at a steady rate: answer, a 3 s prompt, one RFC 4733 digit, hang up; digits heard and CPU per call.

Usage: python bench/ivr_load.py [--rate 10] [--calls 200] [--runs 3] [--rt] [--quick]

Each run: a fresh box (core 0) whose trunk delivers to ivr:main, with a 3 s greeting and a 1 s
menu (WAVs set with `switchboard prompt set`); key 1 leads to ivr:second (its menu plays). SIPp
(core 1, bench/sipp/ivr_call.xml) is the trunk: --calls calls at --rate calls/s, each INVITE ->
200 -> ACK, a 3 s pause (the greeting), SIPp's dtmf_2833_1.pcap (the digit "1" as RFC 4733
events, payload type 101), 1 s, BYE.

Figures: calls SIPp completed and failed, retransmissions; digits heard = calls whose IVR path
(`switchboard calls --json`, ivr_path) has key "1"; box CPU time (utime+stime from /proc, from
SIPp's start to its end) and that divided by the number of calls; INVITE -> 200 times
(SIPp -trace_rtt, 1 ms units); RSS before and after.
The anchor is Asterisk 20 on this machine with the same load (Answer, Playback, Read): 200 of
200 digits at about 13 ms of CPU per call (quoted, not measured here: Asterisk is not installed).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (HOST, PEER_CORE, SCENARIOS, CpuMeter, finish_sipp, free_media_port, free_port, header,
                    median, percentile, require, start_profile, start_sipp, table)
from ivr_common import (DID, call_records, pin_self, prepare_data_dir, pressed, speech_like, start_ivr_box,
                        use_venv_commands)

ASTERISK_MS_PER_CALL = 13.0


def one_run(args: argparse.Namespace, work: Path, greeting: bytes, menu: bytes, index: int) -> dict:
    """A fresh box, one SIPp run of --calls calls, the figures."""
    trunk_port = free_port()
    data_dir = prepare_data_dir(work, trunk_port, greeting, menu)
    box = start_ivr_box(data_dir, realtime=args.rt)
    try:
        rss_before = box.rss()
        sipp_dir = work / f"sipp{index}"
        proc, began = start_sipp(sipp_dir, f"{HOST}:{box.sip_port}", SCENARIOS / "ivr_call.xml",
                                 "-p", str(trunk_port), "-s", DID, "-r", str(args.rate), "-m", str(args.calls),
                                 "-l", str(args.calls), "-mp", str(free_media_port()), "-trace_rtt",
                                 "-rtt_freq", "1", "-timeout", str(int(args.calls / args.rate + 60)),
                                 "-timeout_error")
        meter = CpuMeter(box.pid)
        spy = start_profile(box.pid, args.calls / args.rate + 4, args.profile, f"ivr_load_{index}") \
            if args.profile else None
        run = finish_sipp(proc, began, sipp_dir, timeout=args.calls / args.rate + 90)
        cpu = meter.stop()
        rss_after = box.rss()
        if spy is not None:
            spy.wait(30)
    finally:
        box.stop()
    records = call_records(data_dir)
    heard = sum(pressed(r, "1") for r in records)
    result = {"ok": run.successful, "failed": run.failed, "retrans": run.retransmissions, "heard": heard,
              "records": len(records), "cpu_s": cpu["cpu_s"], "cpu_pct": cpu["cpu_pct"],
              "ms_per_call": 1000.0 * cpu["cpu_s"] / args.calls, "kernel": cpu["kernel_share"],
              "wall": cpu["wall"], "answer_p50": percentile(run.rtt_ms, 50), "answer_p99": percentile(run.rtt_ms, 99),
              "answer_max": max(run.rtt_ms, default=float("nan")), "rss_before": rss_before,
              "rss_after": rss_after, "runq": cpu["runq_pct"], "other": cpu["other_pct"]}
    print(f"  run {index + 1}: {run.successful} ok, {run.failed} failed, {result['retrans']} retrans, "
          f"digits heard {heard}/{args.calls}, box CPU {cpu['cpu_s']:.2f} s over {cpu['wall']:.1f} s "
          f"= {result['ms_per_call']:.2f} ms/call ({cpu['cpu_pct']:.1f} %), answer p50/p99 "
          f"{result['answer_p50']:.0f}/{result['answer_p99']:.0f} ms, runq {cpu['runq_pct']:.2f} %, "
          f"other core0 {cpu['other_pct']:.1f} %", flush=True)
    if run.failed or run.errors.strip():
        print("    SIPp errors: " + run.errors.strip()[-600:].replace("\n", "\n    "))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rt", action="store_true", help="run the box SCHED_FIFO (chrt -f 10)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the box during the run into DIR")
    ap.add_argument("--quick", action="store_true", help="smoke check: 20 calls, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.calls, args.runs = 20, 1
    require("sipp")
    use_venv_commands()
    pin_self(PEER_CORE)
    header(f"IVR load: {args.calls} calls at {args.rate:g}/s (answer, 3 s greeting, RFC 4733 '1' from "
           f"dtmf_2833_1.pcap, 1 s, BYE), {args.runs} runs" + (", box SCHED_FIFO" if args.rt else ""))
    greeting, menu = speech_like(3.0), speech_like(1.0, seed=3)
    with tempfile.TemporaryDirectory(prefix="bench-ivr-load-") as tmp:
        runs = [one_run(args, Path(tmp), greeting, menu, i) for i in range(args.runs)]
    m = {k: median([float(r[k]) for r in runs]) for k in runs[0]}
    heard = [int(r["heard"]) for r in runs]
    print()
    print(f"medians of {args.runs} runs (CPU per call = box utime+stime from SIPp's start to its end / {args.calls}"
          f" calls; digits: calls whose ivr_path has key 1, worst run in brackets)")
    print(table(["box", "calls ok", "failed", "retrans", "digits heard", "CPU ms/call", "box CPU %", "kernel %",
                 "answer p50 ms", "answer p99 ms", "answer max ms", "RSS before -> after MB", "runq wait %",
                 "other core0 %"],
                [["Switchboard", int(m["ok"]), int(m["failed"]), int(m["retrans"]),
                  f"{int(median(heard))}/{args.calls} (min {min(heard)})", m["ms_per_call"], m["cpu_pct"],
                  m["kernel"], m["answer_p50"], m["answer_p99"], m["answer_max"],
                  f"{m['rss_before']:.1f} -> {m['rss_after']:.1f}", m["runq"], m["other"]],
                 ["Asterisk 20 (anchor, quoted)", 200, "-", "-", "200/200", ASTERISK_MS_PER_CALL, "-", "-", "-", "-",
                  "-", "-", "-", "-"]]))


if __name__ == "__main__":
    main()
