"""Free ports on 127.0.0.1 for the box and its peers, safe with parallel test workers: shared by tests/ and bench/."""
from __future__ import annotations

import os
import socket

LOCALHOST = "127.0.0.1"


# SIP, web and peer ports come from here: outside Linux's ephemeral range (32768-60999), so no
# socket bound to port 0 anywhere can take one between the moment it is picked and the moment a
# box or SIPp binds it, and each test worker has its own slice, so two workers never pick the same.
# Below SIPp's own defaults too (5060 to signal, media from 6000 and RTP streams from 8000 up).
PORT_SPAN = (2000, 5000)
_cursor: dict[tuple[int, int], int] = {}


def _bindable(port: int, count: int) -> bool:
    """Whether port..port+count-1 are free for UDP and TCP on 127.0.0.1 right now."""
    held: list[socket.socket] = []
    try:
        for offset in range(count):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                probe = socket.socket(socket.AF_INET, kind)
                held.append(probe)
                probe.bind((LOCALHOST, port + offset))
        return True
    except OSError:
        return False
    finally:
        for probe in held:
            probe.close()


def free_port_block(count: int = 2, even: bool = False) -> int:
    """A port P with P..P+count-1 free on UDP and TCP (baresip: UDP/TCP on P, TLS on P+1), from this worker's slice."""
    # Each pick keeps at least 4 ports to itself: a port given to SIPp as -mp P is P's audio and
    # P+2's video, and the next pick must not be P+2.
    span = max(count, 4)
    index, workers = worker_slot()
    size = (PORT_SPAN[1] - PORT_SPAN[0]) // workers
    low, high = PORT_SPAN[0] + index * size, PORT_SPAN[0] + (index + 1) * size - span
    key = (index, workers)
    port = _cursor.get(key, low + 4 * (os.getpid() % max((size - span) // 4, 1)))
    for _ in range(size):
        if port > high:
            port = low
        if even and port % 2:
            port += 1
            continue
        candidate, port = port, port + span
        if _bindable(candidate, span):
            _cursor[key] = port
            return candidate
    raise RuntimeError(f"no {count} free ports in {low}-{high + span - 1}")


def free_port(kind: int = socket.SOCK_DGRAM, even: bool = False) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (kind is kept for callers; both are checked)."""
    return free_port_block(1, even=even)


_rtp_blocks = iter(range(10**6))
RTP_BLOCKS = 30  # 20000-31999: below Linux's ephemeral range (32768+), above PORT_SPAN


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
