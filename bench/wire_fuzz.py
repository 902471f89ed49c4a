"""Fuzz the running box over the wire: 40,000 mutated UDP datagrams and 3,000 TCP messages, then RSS.

    python bench/wire_fuzz.py [--datagrams 40000] [--tcp 3000] [--runs 3]

Prints, per run: tracebacks in the box's log (must be 0), whether it still answers OPTIONS, and its
RSS at idle, after the datagrams and after the TCP messages. 127.0.0.0/8 is ban-exempt here, so
every datagram reaches the parser instead of being dropped by a ban, and the per-address TCP cap
is raised so every TCP message is read. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import HOST, header, median, rss_mb, start_box, table  # noqa: E402
from wire_fuzz import datagrams  # noqa: E402


def answers_options(port: int) -> bool:
    """Whether the box answers a plain OPTIONS."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(2)
        sock.sendto((f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{sock.getsockname()[1]};"
                     f"branch=z9hG4bKopt\r\nMax-Forwards: 70\r\nFrom: <sip:a@{HOST}>;tag=1\r\nTo: <sip:b@{HOST}>\r\n"
                     f"Call-ID: opt@fuzz\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except socket.timeout:
            return False


def one_run(workdir: Path, count: int, tcp_count: int, seed: int) -> list[object]:
    box = start_box(workdir, {"201": "s3cret-201-long"}, box_toml='[box]\nban_exempt = ["127.0.0.0/8"]\ntcp_max_per_source = 10000\n')
    time.sleep(2)  # let start-up settle before the idle figure
    idle = rss_mb(box.proc.pid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        for i, data in enumerate(datagrams(HOST, box.sip_port, count, seed)):
            sock.sendto(data, (HOST, box.sip_port))
            if i % 200 == 199:
                time.sleep(0.02)  # about 10,000 datagrams a second: the box keeps up, nothing is lost to the socket
    time.sleep(2)
    after_udp = rss_mb(box.proc.pid)
    for i, data in enumerate(datagrams(HOST, box.sip_port, tcp_count, seed + 1)):
        with socket.create_connection((HOST, box.sip_port), timeout=2) as conn:
            try:
                conn.sendall(data)
            except OSError:
                pass
    time.sleep(2)
    after_tcp = rss_mb(box.proc.pid)
    alive = answers_options(box.sip_port)
    tracebacks = box.log_path.read_text(errors="replace").count("Traceback")
    box.stop()
    return [seed, count, tcp_count, tracebacks, "yes" if alive else "NO", idle, after_udp, after_tcp,
            round(after_tcp - idle, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=40_000)
    parser.add_argument("--tcp", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    header("Wire fuzzing: mutated SIP at the running box")
    with tempfile.TemporaryDirectory(prefix="bench-wire-fuzz-") as tmp:
        rows = [one_run(Path(tmp), args.datagrams, args.tcp, seed) for seed in range(13, 13 + args.runs)]
    print(table(["seed", "UDP", "TCP", "tracebacks", "answers", "RSS idle MB", "after UDP", "after TCP",
                 "growth MB"], rows))
    print(f"median growth: {median([r[-1] for r in rows]):.1f} MB")


if __name__ == "__main__":
    main()
