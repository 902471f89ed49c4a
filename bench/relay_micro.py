"""Micro-benchmark of the RTP relay: N bridged calls, 50 pps each way, on 127.0.0.1.

Usage: python bench/relay_micro.py [N ...] [--seconds S] [--aligned]   (default N = 50 100 200, S = 10)

Each N runs in a fresh relay process pinned to core 0 (MediaEngine on one asyncio loop)
and a fresh traffic process pinned to core 1 that plays both phones of every call.
CPU % is of one core over the traffic window; "kernel %" is the system-time share of it
(on loopback the relay's sendto also pays for delivery into the receiving socket).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import selectors
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.media.ports import PortAllocator  # noqa: E402
from appliance.media.relay import MediaEngine  # noqa: E402

HOST = "127.0.0.1"
PPS = 50
PAYLOAD = 160  # 20 ms of G.711
PORT_LOW, PORT_HIGH = 30000, 39999
RELAY_CORE, TRAFFIC_CORE = 0, 1
DRAIN_S = 0.5


def pin(core: int) -> bool:
    """Pin this process to one core if the machine has it."""
    if not hasattr(os, "sched_setaffinity") or core not in os.sched_getaffinity(0):
        return False
    os.sched_setaffinity(0, {core})
    return True


def rss_mb() -> float:
    """Current resident set size in MB (peak RSS if /proc is unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def relay_main(n: int, conn: Connection) -> None:
    """Relay process: N relays on one loop; measures its own CPU during the traffic window."""
    pin(RELAY_CORE)
    asyncio.run(_relay(n, conn))


async def _relay(n: int, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, PortAllocator(PORT_LOW, PORT_HIGH, HOST))
    relays = [engine.create_relay() for _ in range(n)]
    conn.send([(r.a.port, r.b.port) for r in relays])
    phones = conn.recv()  # [(port_a, port_b)] of the traffic process's phones
    for r, (pa, pb) in zip(relays, phones):
        r.set_remote("a", HOST, pa)
        r.set_remote("b", HOST, pb)

    messages: asyncio.Queue = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: messages.put_nowait(conn.recv()))
    conn.send("ready")

    def relayed() -> int:
        return sum(r.a.packets_out + r.b.packets_out for r in relays)

    assert await messages.get() == "start"
    cpu0, wall0, out0 = time.process_time(), time.monotonic(), relayed()
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    assert await messages.get() == "stop"
    cpu1, wall1, out1 = time.process_time(), time.monotonic(), relayed()
    sys1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    await asyncio.sleep(DRAIN_S)
    loop.remove_reader(conn.fileno())
    conn.send({
        "relayed": relayed(),
        "relayed_window": out1 - out0,
        "cpu": cpu1 - cpu0,
        "sys": sys1 - sys0,
        "wall": wall1 - wall0,
        "rss": rss_mb(),
        "dropped": sum(r.a.dropped_source + r.b.dropped_source + r.a.dropped_no_remote
                       + r.b.dropped_no_remote + r.a.send_errors + r.b.send_errors for r in relays),
    })
    engine.close_all()


def traffic_main(conn: Connection, seconds: float, aligned: bool) -> None:
    """Traffic process: both phones of every call, each sending PPS RTP packets/s to its leg."""
    pin(TRAFFIC_CORE)
    legs = conn.recv()
    phones: list[tuple[socket.socket, int]] = []  # (socket, box port it sends to)
    for pa, pb in legs:
        for box_port in (pa, pb):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            phones.append((s, box_port))
    conn.send([(phones[2 * i][0].getsockname()[1], phones[2 * i + 1][0].getsockname()[1])
               for i in range(len(legs))])
    assert conn.recv() == "ready"

    sel = selectors.DefaultSelector()
    for s, _ in phones:
        sel.register(s, selectors.EVENT_READ)
    buf = bytearray(2048)
    header = struct.Struct("!BBHII")
    packet = bytearray(header.size + PAYLOAD)
    sent = received = send_errors = 0

    def drain(timeout: float) -> None:
        nonlocal received
        for key, _ in sel.select(timeout):
            sock = key.fileobj
            while True:
                try:
                    sock.recv_into(buf)
                except BlockingIOError:
                    break
                received += 1

    conn.send("start")
    # Packet k goes from phone k % P at start + k * step: by default phones are spread
    # evenly over the 20 ms frame like unsynchronised real phones; --aligned bunches
    # every phone's packet at the frame start, which lets the relay batch far more.
    count = len(phones)
    interval = 1.0 / PPS
    step = 0.0 if aligned else interval / count
    start = time.monotonic()
    end = start + seconds
    k = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        elapsed = now - start
        due = (int(elapsed / interval) + 1) * count if aligned else int(elapsed / step) + 1
        while k < due:
            s, box_port = phones[k % count]
            if k % count == 0:
                frame = k // count
                header.pack_into(packet, 0, 0x80, 0, frame & 0xFFFF, frame * PAYLOAD, 0)
            try:
                s.sendto(packet, (HOST, box_port))
                sent += 1
            except OSError:
                send_errors += 1
            k += 1
        next_due = start + (k // count) * interval if aligned else start + k * step
        drain(max(0.0, next_due - time.monotonic()))
    window = time.monotonic() - start
    conn.send("stop")
    drain_end = time.monotonic() + DRAIN_S
    while (left := drain_end - time.monotonic()) > 0:
        drain(left)
    conn.send({"sent": sent, "received": received, "send_errors": send_errors,
               "rate": sent / window / max(1, len(phones))})
    for s, _ in phones:
        s.close()


def run_one(n: int, seconds: float, aligned: bool = False) -> dict:
    """Run one N in fresh processes; return merged stats."""
    ctx = mp.get_context("fork")
    relay_end, relay_conn = ctx.Pipe()
    traffic_end, traffic_conn = ctx.Pipe()
    relay = ctx.Process(target=relay_main, args=(n, relay_end), daemon=True)
    traffic = ctx.Process(target=traffic_main, args=(traffic_end, seconds, aligned), daemon=True)
    relay.start()
    traffic.start()
    deadline = time.monotonic() + seconds + 30

    def recv(conn: Connection):
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("benchmark process did not answer")
        return conn.recv()

    try:
        traffic_conn.send(recv(relay_conn))  # box ports -> phones
        relay_conn.send(recv(traffic_conn))  # phone ports -> SDP
        traffic_conn.send(recv(relay_conn))  # "ready"
        relay_conn.send(recv(traffic_conn))  # "start"
        relay_conn.send(recv(traffic_conn))  # "stop"
        t = recv(traffic_conn)
        r = recv(relay_conn)
    finally:
        for p in (relay, traffic):
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join()
    return {"n": n, **t, **r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[50, 100, 200])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--aligned", action="store_true",
                    help="all phones send at the same instant each 20 ms (best case for batching)")
    args = ap.parse_args()
    if os.cpu_count() and os.cpu_count() < 2:
        print("warning: fewer than 2 cores, relay and traffic share one", file=sys.stderr)
    print(f"relay core {RELAY_CORE}, traffic core {TRAFFIC_CORE}, {PPS} pps each way per call, "
          f"{args.seconds:g} s per run, {HOST}, "
          f"{'aligned' if args.aligned else 'staggered'} senders")
    print(f"{'N':>5} {'sent':>9} {'relayed':>9} {'loss %':>7} {'CPU %':>7} {'µs/pkt':>7} "
          f"{'kernel %':>8} {'RSS MB':>7} {'pps/leg':>7}")
    for n in args.n:
        s = run_one(n, args.seconds, args.aligned)
        loss = 100.0 * (s["sent"] - s["received"]) / s["sent"] if s["sent"] else 0.0
        cpu_pct = 100.0 * s["cpu"] / s["wall"]
        us = 1e6 * s["cpu"] / s["relayed_window"] if s["relayed_window"] else float("nan")
        kernel = 100.0 * s["sys"] / s["cpu"] if s["cpu"] else 0.0
        print(f"{n:>5} {s['sent']:>9} {s['relayed']:>9} {loss:>7.2f} {cpu_pct:>7.1f} {us:>7.2f} "
              f"{kernel:>8.0f} {s['rss']:>7.1f} {s['rate']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
