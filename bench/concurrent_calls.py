"""Concurrent bridged calls with g711a.pcap both ways: box CPU per call, RSS, loss and the delay/jitter it adds.

Usage: python bench/concurrent_calls.py [N ...] [--window 10] [--runs 3] [--ramp 50]
       (default N = 50 100 200)

Each run: a fresh box (core 0); a SIPp uas (core 1, bench/sipp/uas_play.xml) registered as the
callee answers and plays back; a SIPp caller (core 1, bench/sipp/uac_call.xml) places N calls
at RAMP calls/s, each playing its own direction's audio. The audio is g711a.pcap (PCMA,
30 ms packets, about 33 packets/s) repeated to outlast the call, with the callee's copy
given another SSRC so the two directions are told apart; every call carries the same
packets, so a packet is identified by (box port, SSRC, sequence number).

Once all N calls are up (plus 3 s), the box's CPU % of one core is measured over CPU_WINDOW
seconds (/proc/PID/stat; CPU per call = CPU % / N), with nothing else watching: a packet
capture on lo makes every send of the box dearer (its CPU during the capture is shown too).
Then dumpcap (core 1) records lo for WINDOW seconds, filtered on the box's RTP range: every packet is seen twice, entering a box port
(ingress, time stamped when the phone sent it) and leaving the other leg's port (egress,
time stamped when the box sent it). From the capture:
  - forwarding delay = egress time - ingress time of the same packet (the latency the box
    adds); its p50/p99/max over every packet;
  - added jitter (PDV, RFC 5481) = delay p99 - delay min: how much later than the fastest
    packet the slow ones leave;
  - IPDV = |change of that delay between consecutive packets of a stream| (how much the box
    disturbs the 30 ms spacing), p99;
  - loss = ingress packets (but those of the first 50 ms and the last 0.2 s of the capture,
    whose other copy may fall outside it) with no egress;
  - sender pacing = |ingress gap - 30 ms|, p99: SIPp's own jitter, not the box's.
RSS (/proc/PID/status VmRSS) with the calls up. With --profile DIR, py-spy records the box
during the CPU window (summarise with bench/pyspy_summary.py).
'runq wait %' is how long the box was runnable but off the CPU during the capture
(/proc/PID/task/*/schedstat): on a shared machine other processes on core 0 can hold it
off until the next scheduler tick (4 ms at HZ=250), which shows as delay the box did not
cause; --rt runs the box SCHED_FIFO to take that out.
Goals: CPU per call <= 0.33 % of a core, loss 0, added jitter p99 <= 2 ms.
"""
from __future__ import annotations

import argparse
import math
import re
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import (G711A, HOST, PEER_CORE, RTP_RANGE, SCENARIOS, CpuMeter, extensions, finish_sipp,
                    free_media_port, free_port, header, median, percentile, pinned, register, require, spawn,
                    start_box, start_profile, start_sipp, table, users_csv)

CALLEE = "19999"
CALLEE_SSRC = 0x5B0C0DE5
PACKET_S = 0.030


# --- audio ---------------------------------------------------------------------------
def long_pcap(src: Path, dst: Path, seconds: float, ssrc: int | None = None) -> float:
    """Repeat a one-stream RTP pcap until it lasts `seconds`, continuing seq/timestamp; returns its length."""
    data = src.read_bytes()
    head, body = data[:24], data[24:]
    magic = struct.unpack("<I", head[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    records = []
    off = 0
    while off + 16 <= len(body):
        sec, usec, incl, orig = struct.unpack(endian + "IIII", body[off:off + 16])
        records.append((sec + usec / 1e6, body[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    t0 = records[0][0]
    span = records[-1][0] - t0 + PACKET_S
    ip = 14
    ihl = (records[0][1][ip] & 0x0F) * 4
    udp = ip + ihl
    rtp = udp + 8
    first_seq = struct.unpack("!H", records[0][1][rtp + 2:rtp + 4])[0]
    last_seq = struct.unpack("!H", records[-1][1][rtp + 2:rtp + 4])[0]
    seq_step = (last_seq - first_seq + 1) % 65536
    first_ts = struct.unpack("!I", records[0][1][rtp + 4:rtp + 8])[0]
    last_ts = struct.unpack("!I", records[-1][1][rtp + 4:rtp + 8])[0]
    ts_step = (last_ts - first_ts + 240) % 2**32
    repeats = max(1, math.ceil(seconds / span))
    out = bytearray(head)
    for k in range(repeats):
        for t, frame, orig in records:
            pkt = bytearray(frame)
            seq = (struct.unpack("!H", pkt[rtp + 2:rtp + 4])[0] + k * seq_step) % 65536
            ts = (struct.unpack("!I", pkt[rtp + 4:rtp + 8])[0] + k * ts_step) % 2**32
            struct.pack_into("!HI", pkt, rtp + 2, seq, ts)
            if ssrc is not None:
                struct.pack_into("!I", pkt, rtp + 8, ssrc)
            if k and pkt[rtp + 1] & 0x80:
                pkt[rtp + 1] &= 0x7F  # marker only at the very start
            struct.pack_into("!H", pkt, udp + 6, 0)  # no UDP checksum (payload changed)
            stamp = t - t0 + k * span
            out += struct.pack(endian + "IIII", int(stamp), int(round((stamp % 1) * 1e6)) % 1000000, len(pkt), orig)
            out += pkt
    dst.write_bytes(bytes(out))
    return repeats * span


def scenario_with_pcap(src: Path, dst: Path, pcap: Path) -> Path:
    """A copy of a scenario that plays another pcap (SIPp does not expand keywords there)."""
    dst.write_text(src.read_text().replace(str(G711A), str(pcap)))
    return dst


# --- capture analysis ----------------------------------------------------------------
def read_capture(path: Path, low: int, high: int) -> tuple[list, list]:
    """(ingress, egress) packets of a lo capture: (time, box port, ssrc, seq)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    link = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 0: 4, 276: 20}.get(link, 14)
    rec = struct.Struct(endian + "IIII")
    ingress, egress = [], []
    off = 24
    end = len(data)
    scale = 1e-9 if nano else 1e-6
    while off + 16 <= end:
        sec, frac, incl, _ = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        if len(pkt) < l2 + 20:
            continue
        ihl = (pkt[l2] & 0x0F) * 4
        udp = l2 + ihl
        if pkt[l2 + 9] != 17 or len(pkt) < udp + 20:
            continue
        sport, dport = struct.unpack_from("!HH", pkt, udp)
        rtp = udp + 8
        if pkt[rtp] & 0xC0 != 0x80:
            continue
        seq = struct.unpack_from("!H", pkt, rtp + 2)[0]
        ssrc = struct.unpack_from("!I", pkt, rtp + 8)[0]
        t = sec + frac * scale
        if low <= dport <= high:
            ingress.append((t, dport, ssrc, seq))
        elif low <= sport <= high:
            egress.append((t, sport, ssrc, seq))
    return ingress, egress


def analyse(ingress: list, egress: list) -> dict:
    """Pair each box port with its other leg (by votes), then delay, jitter and loss per packet."""
    by_packet: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
    for t, port, ssrc, seq in egress:
        by_packet[(ssrc, seq)].append((t, port))
    votes: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    sampled: dict[int, int] = defaultdict(int)
    for t, port, ssrc, seq in ingress:
        if sampled[port] >= 40:
            continue
        sampled[port] += 1
        best = None
        for t_out, out_port in by_packet.get((ssrc, seq), ()):
            if out_port != port and t_out >= t - 1e-4 and (best is None or t_out < best[0]):
                best = (t_out, out_port)
        if best is not None and best[0] - t < 0.5:
            votes[port][best[1]] += 1
    # Pair the legs greedily by votes in both directions, each port in at most one pair: two
    # calls that started within a packet time of each other can otherwise claim the same leg.
    scores: dict[tuple[int, int], int] = defaultdict(int)
    for x, v in votes.items():
        for y, count in v.items():
            scores[(min(x, y), max(x, y))] += count
    partner: dict[int, int] = {}
    for (x, y), _ in sorted(scores.items(), key=lambda kv: -kv[1]):
        if x not in partner and y not in partner:
            partner[x], partner[y] = y, x
    out_time = {(port, ssrc, seq): t for t, port, ssrc, seq in egress}
    # Packets at the very edges of the capture may have only one of their two copies in it
    # (libpcap flushes what arrived before its filter was set): leave the edges out.
    end = max((p[0] for p in ingress), default=0.0) - 0.2
    begin = min((p[0] for p in ingress), default=0.0) + 0.05
    delays: list[float] = []
    steps: list[float] = []
    pacing: list[float] = []
    lost = considered = mismatched = 0
    lost_at: list[str] = []
    start = min((p[0] for p in ingress), default=0.0)
    last: dict[tuple[int, int], tuple[int, float, float | None]] = {}  # stream -> (seq, t_in, delay)
    for t, port, ssrc, seq in sorted(ingress):
        if t > end or t < begin:
            continue
        considered += 1
        y = partner.get(port)
        t_out = out_time.get((y, ssrc, seq)) if y is not None else None
        delay = None
        if t_out is None:
            lost += 1
            if len(lost_at) < 5:
                lost_at.append(f"port {port} seq {seq} at +{t - start:.3f} s")
        elif t_out < t - 1e-4:
            mismatched += 1  # a leg paired with the wrong call: not counted as delay or loss
        else:
            delay = t_out - t
            delays.append(delay * 1000)
        prev = last.get((port, ssrc))
        if prev is not None and (seq - prev[0]) % 65536 == 1:
            pacing.append(abs((t - prev[1]) - PACKET_S) * 1000)
            if delay is not None and prev[2] is not None:
                steps.append(abs(delay - prev[2]) * 1000)
        last[(port, ssrc)] = (seq, t, delay)
    pairs_ok = sum(1 for x, y in partner.items() if partner.get(y) == x)
    return {"ingress": considered, "lost": lost, "mismatched": mismatched, "lost_at": lost_at,
            "loss_pct": 100.0 * lost / considered if considered else float("nan"),
            "delay_p50": percentile(delays, 50), "delay_p99": percentile(delays, 99),
            "delay_max": max(delays) if delays else float("nan"),
            "pdv_p99": percentile(delays, 99) - min(delays) if delays else float("nan"),
            "jitter_p99": percentile(steps, 99),
            "jitter_max": max(steps) if steps else float("nan"), "pacing_p99": percentile(pacing, 99),
            "streams": len({(p, s) for _, p, s, _ in ingress}), "ports": len(partner), "pairs_ok": pairs_ok}


# --- one run -------------------------------------------------------------------------
def one_run(n: int, args: argparse.Namespace, workdir: Path, index: int, pcaps: tuple[Path, Path],
            pcap_seconds: float) -> dict:
    callers = extensions(min(n, 100))
    users = {**callers, CALLEE: "bench-callee"}
    box = start_box(workdir, users, rtp=RTP_RANGE, realtime=args.rt)
    ramp = n / args.ramp
    hold = ramp + 3.0 + args.cpu_window + args.window + 3.0
    if hold > pcap_seconds - 0.5:
        raise SystemExit(f"audio ({pcap_seconds:.0f} s) shorter than the calls ({hold:.0f} s)")
    try:
        uas_port, uas_media = free_port(), free_media_port()
        reg = register(box, workdir, {CALLEE: users[CALLEE]}, port=uas_port)
        if reg.successful != 1:
            raise SystemExit(f"callee registration failed:\n{reg.errors}")
        uas_xml = scenario_with_pcap(SCENARIOS / "uas_play.xml", workdir / "uas_play.xml", pcaps[1])
        uac_xml = scenario_with_pcap(SCENARIOS / "uac_call.xml", workdir / "uac_call.xml", pcaps[0])
        uas_dir, uac_dir = workdir / f"uas{n}_{index}", workdir / f"uac{n}_{index}"
        uas, uas_began = start_sipp(uas_dir, None, uas_xml, "-p", str(uas_port), "-mp", str(uas_media),
                                    "-m", str(n), "-t", "u1", "-timeout", str(int(hold + 60)))
        time.sleep(0.5)
        uac_media = free_media_port()
        rss_idle = box.rss()
        uac, began = start_sipp(uac_dir, f"{HOST}:{box.sip_port}", uac_xml, "-inf",
                                str(users_csv(workdir / "callers.csv", callers)), "-s", CALLEE,
                                "-r", str(args.ramp), "-m", str(n), "-l", str(n), "-d", str(int(hold * 1000)),
                                "-mp", str(uac_media), "-t", "u1", "-timeout", str(int(hold + 40)))
        time.sleep(ramp + 3.0)
        # CPU first, without the capture: an AF_PACKET tap on lo makes every send dearer.
        meter = CpuMeter(box.pid)
        spy = start_profile(box.pid, args.cpu_window, args.profile, f"{n}_{index}") if args.profile else None
        time.sleep(args.cpu_window)
        cpu = meter.stop()
        if spy is not None:
            spy.wait(args.cpu_window + 30)
        cap_path = workdir / f"rtp{n}_{index}.pcap"
        cap = spawn(pinned(PEER_CORE, ["dumpcap", "-q", "-i", "lo", "-f", f"udp portrange {RTP_RANGE[0]}-{RTP_RANGE[1]}",
                                       "-s", "96", "-B", "64", "-P", "-a", f"duration:{int(args.window)}",
                                       "-w", str(cap_path)]),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        cap_meter = CpuMeter(box.pid)
        _, cap_err = cap.communicate(timeout=args.window + 30)
        cpu_cap = cap_meter.stop()
        rss_calls = box.rss()
        run = finish_sipp(uac, began, uac_dir, timeout=hold + 60)
        callee = finish_sipp(uas, uas_began, uas_dir, timeout=30)
    finally:
        box.stop()
    ingress, egress = read_capture(cap_path, *RTP_RANGE)
    stats = analyse(ingress, egress)
    dropped = 0
    for line in (cap_err or "").splitlines():
        found = re.search(r"(\d+)/(\d+) \(pcap:(\d+)/dumpcap:(\d+)/flushed:(\d+)/ps_ifdrop:(\d+)\)", line)
        if found:
            dropped += sum(int(g) for g in found.groups()[1:])
    result = {**{k: v for k, v in stats.items() if k != "lost_at"}, "cpu": cpu["cpu_pct"], "other": cpu["other_pct"], "per_call": cpu["cpu_pct"] / n,
              "cpu_cap": cpu_cap["cpu_pct"], "kernel": cpu["kernel_share"], "runq": cpu_cap["runq_pct"],
              "other_cap": cpu_cap["other_pct"],
              "rss_idle": rss_idle, "rss_calls": rss_calls, "calls_ok": run.successful, "failed": run.failed,
              "callee_failed": callee.failed, "cap_dropped": dropped}
    print(f"  N={n} run {index + 1}: {run.successful}/{n} calls ok ({run.failed} failed, callee {callee.failed}),"
          f" {stats['streams']} streams seen, {stats['pairs_ok']} ports paired; box CPU "
          f"{cpu['cpu_pct']:.1f} % ({result['per_call']:.3f} %/call, kernel {cpu['kernel_share']:.0f} % of it; "
          f"{cpu_cap['cpu_pct']:.1f} % while captured, runq wait {cpu_cap['runq_pct']:.1f} %, other core0 "
          f"{cpu_cap['other_pct']:.0f} %, steal {cpu_cap['steal_pct']:.1f} %), RSS {rss_idle:.0f} -> {rss_calls:.0f} MB; "
          f"{stats['ingress']} packets in, {stats['lost']} lost, {stats['mismatched']} unmatched; delay p50 {stats['delay_p50']:.3f} / p99 "
          f"{stats['delay_p99']:.3f} / max {stats['delay_max']:.2f} ms; PDV p99 {stats['pdv_p99']:.3f} ms, IPDV p99 "
          f"{stats['jitter_p99']:.3f} ms;"
          f" sender pacing p99 {stats['pacing_p99']:.2f} ms; capture drops {dropped}", flush=True)
    if stats["lost_at"]:
        print(f"    lost (first {len(stats['lost_at'])}): {'; '.join(stats['lost_at'])} "
              f"(capture of {args.window:g} s)", flush=True)
    if args.keep_captures:
        Path(args.keep_captures).mkdir(parents=True, exist_ok=True)
        cap_path.rename(Path(args.keep_captures) / cap_path.name)
    else:
        cap_path.unlink(missing_ok=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[50, 100, 200])
    ap.add_argument("--window", type=float, default=10.0, help="seconds measured once all calls are up")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ramp", type=float, default=50.0, help="calls per second while setting up")
    ap.add_argument("--cpu-window", type=float, default=5.0, help="seconds of CPU measurement before the capture")
    ap.add_argument("--rt", action="store_true",
                    help="run the box SCHED_FIFO, so other work on core 0 cannot delay it by a scheduler tick")
    ap.add_argument("--keep-captures", metavar="DIR", help="keep the RTP captures in DIR")
    ap.add_argument("--profile", metavar="DIR", help="also record py-spy profiles of the box (CPU window) into DIR")
    args = ap.parse_args()
    require("sipp", "dumpcap")
    if max(args.n) * 2 > (RTP_RANGE[1] - RTP_RANGE[0]) // 2:
        raise SystemExit("RTP range too small for that many calls")
    header(f"Concurrent calls: g711a.pcap both ways (30 ms, ~33 pps each way), {args.window:g} s window, "
           f"{args.runs} runs per N" + (", box SCHED_FIFO" if args.rt else ""))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp:
        work = Path(tmp)
        longest = max(args.n) / args.ramp + args.cpu_window + args.window + 7.0
        caller_pcap, callee_pcap = work / "caller.pcap", work / "callee.pcap"
        seconds = long_pcap(G711A, caller_pcap, longest)
        long_pcap(G711A, callee_pcap, longest, ssrc=CALLEE_SSRC)
        for n in args.n:
            results[n] = [one_run(n, args, work, i, (caller_pcap, callee_pcap), seconds) for i in range(args.runs)]
    print()
    print(f"medians of {args.runs} runs (loss: median of the runs; delay = box egress - ingress of the same packet; "
          f"CPU without capture; runq wait and other core0 during the capture)")
    rows = []
    for n, runs in results.items():
        m = {k: median([r[k] for r in runs]) for k in runs[0]}
        rows.append([n, int(m["calls_ok"]), m["cpu"], m["per_call"], m["rss_idle"], m["rss_calls"],
                     int(m["ingress"]), int(m["lost"]), m["loss_pct"], m["delay_p50"], m["delay_p99"], m["delay_max"],
                     m["pdv_p99"], m["jitter_p99"], m["pacing_p99"], m["runq"], m["other_cap"]])
    print(table(["calls", "up", "box CPU %", "CPU %/call", "RSS idle MB", "RSS calls MB", "pkts in", "lost",
                 "loss %", "delay p50 ms", "delay p99 ms", "delay max ms", "PDV p99 ms", "IPDV p99 ms",
                 "sender pacing p99 ms", "runq wait %", "other core0 %"], rows))


if __name__ == "__main__":
    main()
