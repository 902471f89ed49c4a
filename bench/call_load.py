"""Call setup under load: INVITE -> 200 through the B2BUA at a steady call rate, media relayed both ways.

Usage: python bench/call_load.py [--rate 20] [--seconds 30] [--hold 8] [--runs 3] [--callers 50]

Each run: a fresh box (core 0) with CALLERS caller extensions and one callee extension. The
callee is a SIPp uas (core 1, bench/sipp/uas_play.xml) registered first from the port it then
answers on; it answers at once and plays /usr/share/sip-tester/g711a.pcap back. The caller is
SIPp (core 1, bench/sipp/uac_call.xml): INVITE, 407 challenge, INVITE with credentials, 200,
ACK, plays g711a.pcap, BYE after HOLD seconds. RATE calls/s for SECONDS, so about
RATE x HOLD calls are up at once, each relaying 2 x 33 packets/s through the box.

Response time = SIPp's rtd "invite": from sending the INVITE with credentials to receiving
the 200 (SIPp's resolution is 1 ms). dumpcap (core 1) records the SIP port meanwhile, which
splits each setup into: box in (caller's INVITE -> box's INVITE to the callee), callee
(that INVITE -> callee's 200, i.e. SIPp's own time) and box out (callee's 200 -> box's 200
to the caller), at the capture's microsecond resolution.
SIPp's own figure is coarser than its 1 ms unit suggests (its clock advances per main-loop
round, which with hundreds of pcap-playing threads on its core is several ms): compare with
the capture's total. 'runq wait %': how long the box was runnable but off the CPU; --rt runs
the box SCHED_FIFO so that other work on core 0 cannot add a scheduler tick (4 ms) to a setup.
--rtp also captures the box's RTP range for RTP_WINDOW s at steady state and reports the
forwarding delay and loss of the media while calls come and go (as bench/concurrent_calls.py
does for a fixed set of calls): work that blocks the event loop (SQLite checkpoints, full
garbage collections) shows there.
Goal: p95 <= 8 ms (Asterisk: p50 4 / p95 8 / p99 12 ms).
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from common import (HOST, PEER_CORE, RTP_RANGE, SCENARIOS, CpuMeter, extensions, finish_sipp, free_media_port, free_port,
                    header, median, percentile, pinned, register, require, spawn, start_box, start_profile, start_sipp, table,
                    users_csv)

CALLEE = "19999"


def capture_sip(port: int, path: Path) -> subprocess.Popen:
    """dumpcap on lo for the box's SIP port (pcap format, core 1)."""
    proc = spawn(pinned(PEER_CORE, ["dumpcap", "-q", "-i", "lo", "-f", f"udp port {port}", "-B", "32",
                                    "-P", "-w", str(path)]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # dumpcap needs a moment before it sees packets
    return proc


def split_setup(path: Path, box_port: int, callee_port: int) -> dict[str, list[float]]:
    """Per-call setup time split into box-in, callee and box-out parts (ms), from a SIP capture."""
    fields = ["frame.time_epoch", "udp.srcport", "udp.dstport", "sip.Method", "sip.Status-Code",
              "sip.Call-ID", "sip.CSeq.seq", "sip.CSeq.method", "sip.from.user", "sip.Proxy-Authorization"]
    cmd = ["tshark", "-r", str(path), "-d", f"udp.port=={box_port},sip", "-Y", "sip", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    invites_in: list[tuple[float, str, str]] = []  # (t, caller call-id, user)
    invites_out: dict[str, list[tuple[float, str]]] = {}  # user -> [(t, callee call-id)]
    ok_in: dict[str, float] = {}  # callee call-id -> t of the callee's 200
    ok_out: dict[str, float] = {}  # caller call-id -> t of the box's 200
    for line in out.splitlines():
        p = line.split("\t")
        if len(p) < len(fields):
            continue
        t, src, dst, method, status, call_id, _, cseq_method, user, proxy_auth = p[:10]
        t = float(t)
        src, dst = int(src or 0), int(dst or 0)
        if method == "INVITE" and dst == box_port and proxy_auth:
            invites_in.append((t, call_id, user))
        elif method == "INVITE" and src == box_port and dst == callee_port:
            invites_out.setdefault(user, []).append((t, call_id))
        elif status == "200" and cseq_method == "INVITE" and src == callee_port and dst == box_port:
            ok_in.setdefault(call_id, t)
        elif status == "200" and cseq_method == "INVITE" and src == box_port:
            ok_out.setdefault(call_id, t)
    parts: dict[str, list[float]] = {"box_in": [], "callee": [], "box_out": [], "total": []}
    for t1, caller_cid, user in invites_in:
        outs = [o for o in invites_out.get(user, []) if o[0] >= t1]
        if not outs or caller_cid not in ok_out:
            continue
        t2, callee_cid = min(outs)
        t3, t4 = ok_in.get(callee_cid), ok_out[caller_cid]
        if t3 is None or not t1 <= t2 <= t3 <= t4:
            continue
        parts["box_in"].append(1000 * (t2 - t1))
        parts["callee"].append(1000 * (t3 - t2))
        parts["box_out"].append(1000 * (t4 - t3))
        parts["total"].append(1000 * (t4 - t1))
    return parts


def one_run(args: argparse.Namespace, workdir: Path, index: int) -> dict:
    callers = extensions(args.callers)
    users = {**callers, CALLEE: "bench-callee"}
    box = start_box(workdir, users, realtime=args.rt)
    remote = f"{HOST}:{box.sip_port}"
    count = int(args.rate * args.seconds)
    try:
        uas_port, uas_media = free_port(), free_media_port()
        reg = register(box, workdir, {CALLEE: users[CALLEE]}, port=uas_port)
        if reg.successful != 1:
            raise SystemExit(f"callee registration failed:\n{reg.errors}")
        uas_dir, uac_dir = workdir / f"uas{index}", workdir / f"uac{index}"
        uas, uas_began = start_sipp(uas_dir, None, SCENARIOS / "uas_play.xml", "-p", str(uas_port),
                                    "-mp", str(uas_media), "-m", str(count), "-t", "u1",
                                    "-timeout", str(int(args.seconds + args.hold + 60)))
        time.sleep(0.5)
        uac_media = free_media_port()  # the uas holds its ports by now
        cap_path = workdir / f"sip{index}.pcap"
        cap = capture_sip(box.sip_port, cap_path) if args.split else None
        rss_before = box.rss()
        csv_path = users_csv(workdir / "callers.csv", callers)
        uac, began = start_sipp(uac_dir, remote, SCENARIOS / "uac_call.xml", "-inf", str(csv_path),
                                "-s", CALLEE, "-r", str(args.rate), "-m", str(count), "-l", str(count),
                                "-d", str(int(args.hold * 1000)), "-mp", str(uac_media), "-t", "u1",
                                "-trace_rtt", "-rtt_freq", "20",
                                "-timeout", str(int(args.seconds + args.hold + 40)))
        meter = CpuMeter(box.pid)
        rtp_cap = None
        if args.rtp:
            # Media under call churn: capture the box's RTP range once the calls are at steady state.
            time.sleep(min(args.hold + 2.0, max(0.0, args.seconds - args.rtp_window)))
            rtp_path = workdir / f"rtp{index}.pcap"
            rtp_cap = spawn(pinned(PEER_CORE, ["dumpcap", "-q", "-i", "lo", "-f",
                                               f"udp portrange {RTP_RANGE[0]}-{RTP_RANGE[1]}", "-s", "96",
                                               "-B", "64", "-P", "-a", f"duration:{int(args.rtp_window)}",
                                               "-w", str(rtp_path)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spy = start_profile(box.pid, args.seconds, args.profile, f"calls_{index}") if args.profile else None
        # Peak: sample RSS while the calls are up.
        peak_rss = rss_before
        while uac.poll() is None and time.monotonic() - began < args.seconds + args.hold + 50:
            time.sleep(1.0)
            peak_rss = max(peak_rss, box.rss())
        run = finish_sipp(uac, began, uac_dir, timeout=args.seconds + args.hold + 60)
        cpu = meter.stop()
        if spy is not None:
            spy.wait(30)
        callee = finish_sipp(uas, uas_began, uas_dir, timeout=20)
        if rtp_cap is not None:
            rtp_cap.wait(30)
        if cap is not None:
            time.sleep(0.5)
            cap.terminate()
            cap.wait(10)
    finally:
        box.stop()
    parts = split_setup(cap_path, box.sip_port, uas_port) if args.split else {}
    media = {}
    if args.rtp:
        from concurrent_calls import analyse, read_capture
        media = analyse(*read_capture(workdir / f"rtp{index}.pcap", *RTP_RANGE))
        (workdir / f"rtp{index}.pcap").unlink(missing_ok=True)
    rtt = run.rtt_ms
    result = {"ok": run.successful, "failed": run.failed, "retrans": run.retransmissions,
              "callee_failed": callee.failed, "p50": percentile(rtt, 50), "p95": percentile(rtt, 95),
              "p99": percentile(rtt, 99), "max": max(rtt) if rtt else float("nan"), "cpu": cpu["cpu_pct"],
              "other": cpu["other_pct"], "runq": cpu["runq_pct"], "rss_before": rss_before, "rss_peak": peak_rss}
    for name, values in parts.items():
        result[f"{name}_p50"] = percentile(values, 50)
        result[f"{name}_p95"] = percentile(values, 95)
        result[f"{name}_p99"] = percentile(values, 99)
        result[f"{name}_max"] = max(values) if values else float("nan")
    result["split_n"] = len(parts.get("total", []))
    for key in ("ingress", "lost", "delay_p50", "delay_p99", "delay_max", "pdv_p99"):
        if media:
            result[f"rtp_{key}"] = media[key]
    print(f"  run {index + 1}: {run.successful}/{count} calls ok, {run.failed} failed "
          f"(callee: {callee.successful} ok, {callee.failed} failed), {run.retransmissions} retrans; "
          f"INVITE->200 p50 {result['p50']:.0f} / p95 {result['p95']:.0f} / p99 {result['p99']:.0f} / "
          f"max {result['max']:.0f} ms; box CPU {cpu['cpu_pct']:.0f} % (runq wait {cpu['runq_pct']:.1f} %), RSS {rss_before:.0f} -> peak "
          f"{peak_rss:.0f} MB", flush=True)
    if parts:
        print(f"         split over {result['split_n']} calls (p50/p95/p99 ms): box in "
              f"{result['box_in_p50']:.2f}/{result['box_in_p95']:.2f}/{result['box_in_p99']:.2f}, callee "
              f"{result['callee_p50']:.2f}/{result['callee_p95']:.2f}/{result['callee_p99']:.2f}, box out "
              f"{result['box_out_p50']:.2f}/{result['box_out_p95']:.2f}/{result['box_out_p99']:.2f}, total "
              f"{result['total_p50']:.2f}/{result['total_p95']:.2f}/{result['total_p99']:.2f} (max "
              f"{result['total_max']:.1f})", flush=True)
    if media:
        print(f"         RTP during {args.rtp_window:g} s of churn: {media['ingress']} packets in, {media['lost']} lost; "
              f"delay p50 {media['delay_p50']:.3f} / p99 {media['delay_p99']:.3f} / max {media['delay_max']:.2f} ms, "
              f"PDV p99 {media['pdv_p99']:.3f} ms", flush=True)
    if run.failed and run.errors:
        print("    caller errors (tail):\n" + run.errors[-800:])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20.0, help="calls per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long new calls keep coming")
    ap.add_argument("--hold", type=float, default=8.0, help="call length in seconds")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--callers", type=int, default=50, help="caller extensions (used in turn)")
    ap.add_argument("--rt", action="store_true",
                    help="run the box SCHED_FIFO, so other work on core 0 cannot delay it by a scheduler tick")
    ap.add_argument("--profile", metavar="DIR", help="also record py-spy profiles of the box into DIR")
    ap.add_argument("--rtp", action="store_true",
                    help="also capture the box's RTP range for RTP_WINDOW s at steady state: delay and loss of the "
                         "media while calls come and go (the capture makes the box's sends dearer: CPU is higher)")
    ap.add_argument("--rtp-window", type=float, default=10.0)
    ap.add_argument("--no-split", dest="split", action="store_false",
                    help="skip the SIP capture that splits setup time between box and callee")
    args = ap.parse_args()
    require("sipp", *(["dumpcap", "tshark"] if args.split else []), *(["dumpcap"] if args.rtp else []))
    header(f"Call load: {args.rate:g} calls/s for {args.seconds:g} s, {args.hold:g} s calls "
           f"(~{args.rate * args.hold:.0f} up at once), g711a.pcap both ways, {args.runs} runs"
           + (", box SCHED_FIFO" if args.rt else ""))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        for i in range(args.runs):
            results.append(one_run(args, Path(tmp), i))
            time.sleep(1.0)
    m = {k: median([r[k] for r in results]) for k in results[0]}
    print()
    print(f"medians of {args.runs} runs; INVITE->200 as SIPp's caller measures it (1 ms resolution)")
    print(table(["calls/s", "up at once", "calls ok", "failed", "retrans", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "box CPU %", "RSS before MB", "RSS peak MB", "runq wait %", "other core0 %"],
                [[args.rate, round(args.rate * args.hold), int(m["ok"]), int(m["failed"]), int(m["retrans"]),
                  m["p50"], m["p95"], m["p99"], m["max"], m["cpu"], m["rss_before"], m["rss_peak"], m["runq"], m["other"]]]))
    if args.rtp:
        print()
        print(f"RTP through the box during {args.rtp_window:g} s of the churn (medians of the runs)")
        print(table(["pkts in", "lost", "delay p50 ms", "delay p99 ms", "delay max ms", "PDV p99 ms"],
                    [[int(m["rtp_ingress"]), int(m["rtp_lost"]), m["rtp_delay_p50"], m["rtp_delay_p99"],
                      m["rtp_delay_max"], m["rtp_pdv_p99"]]]))
    if args.split:
        print()
        print("setup time split from the SIP capture (ms, medians of the runs' percentiles)")
        print(table(["part", "p50", "p95", "p99", "max"],
                    [[label, m[f"{key}_p50"], m[f"{key}_p95"], m[f"{key}_p99"], m[f"{key}_max"]]
                     for key, label in (("box_in", "box: caller INVITE -> INVITE to callee"),
                                        ("callee", "callee SIPp: INVITE -> 200"),
                                        ("box_out", "box: callee 200 -> 200 to caller"),
                                        ("total", "total on the wire"))]))


if __name__ == "__main__":
    main()
