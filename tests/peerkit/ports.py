"""Free ports on 127.0.0.1 for the box and its peers, safe with parallel test workers: shared by tests/ and bench/."""
from __future__ import annotations

import os
import socket

LOCALHOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_DGRAM, even: bool = False) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((LOCALHOST, 0))
            port = probe.getsockname()[1]
        if even and port % 2:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind((LOCALHOST, port))
                udp.bind((LOCALHOST, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


_rtp_blocks = iter(range(10**6))
RTP_BLOCKS = 30  # 20000-31999: below Linux's ephemeral range (32768+), where free_port() picks


def worker_slot() -> tuple[int, int]:
    """(this test worker's index, how many workers run): (0, 1) without pytest-xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return int(name.removeprefix("gw") or 0) % max(count, 1), max(count, 1)


def free_rtp_range(size: int = 400) -> tuple[int, int]:
    """An even block of ports for the box's RTP, never one another test worker uses at the same time."""
    index, count = worker_slot()
    per_worker = RTP_BLOCKS // count
    block = index * per_worker + next(_rtp_blocks) % per_worker
    base = 20000 + block * size
    return base, base + size - 2


def free_media_port() -> int:
    """An even port P with P..P+3 free: SIPp's -mp takes P (audio) and P+2 (video)."""
    return free_port_block(4, even=True)


def free_port_block(count: int = 2, even: bool = False) -> int:
    """A port P with P..P+count-1 free on UDP and TCP (baresip: UDP/TCP on P, TLS on P+1)."""
    for _ in range(200):
        port = free_port(even=even)
        if port + count > 65536:
            continue
        held: list[socket.socket] = []
        try:
            for offset in range(count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    held.append(s)
                    s.bind((LOCALHOST, port + offset))
            return port
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free port block")
