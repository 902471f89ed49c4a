"""Mutated SIP for fuzzing the running box over the wire: seeds (RFC 4475 torture messages and good
requests) with random byte flips, insertions, deletions, splices and header repeats, reproducible by seed.
Used by tests/test_e2e_wire_fuzz.py (bounded, in CI) and bench/wire_fuzz.py (40,000 datagrams, RSS figures).
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

TORTURE = Path(__file__).parent / "sip_torture"
SPECIAL = [b"\r\n", b"\r\n\r\n", b"\x00", b"\xff", b" ", b":", b";", b",", b"=", b'"', b"<", b">", b"%",
           b"@", b"SIP/2.0", b"Content-Length: 99999\r\n", b"Via: SIP/2.0/UDP x;branch=z9hG4bK", b"\t"]


def good_requests(host: str, port: int) -> list[bytes]:
    """Well-formed requests a scanner or a phone sends: the starting points for mutation."""
    out = []
    for method in ("OPTIONS", "REGISTER", "INVITE", "BYE", "CANCEL", "ACK", "INFO", "SUBSCRIBE"):
        call_id = uuid.uuid4().hex
        body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" \
            if method == "INVITE" else b""
        head = (f"{method} sip:201@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:5999;branch=z9hG4bK{call_id[:10]};rport\r\nMax-Forwards: 70\r\n"
                f"From: <sip:fuzz@{host}>;tag={call_id[:8]}\r\nTo: <sip:201@{host}>\r\nCall-ID: {call_id}\r\n"
                f"CSeq: 1 {method}\r\nContact: <sip:fuzz@{host}:5999>\r\n"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n").encode()
        out.append(head + body)
    return out


def seeds(host: str, port: int) -> list[bytes]:
    """Every seed message."""
    return [p.read_bytes() for p in sorted(TORTURE.glob("*.dat"))] + good_requests(host, port)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of data."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip a byte
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:  # insert something the grammar cares about
            out[at:at] = rng.choice(SPECIAL)
        elif kind == 2 and out:  # delete a run
            del out[at:at + rng.randint(1, 16)]
        elif kind == 3:  # repeat a line
            lines = bytes(out).split(b"\r\n")
            line = rng.choice(lines)
            lines.insert(rng.randrange(len(lines) + 1), line * rng.randint(1, 3))
            out = bytearray(b"\r\n".join(lines))
        elif kind == 4:  # truncate
            del out[at:]
        else:  # random digits where digits go (CSeq, ports, lengths)
            out[at:at] = str(rng.randrange(10 ** rng.randint(1, 12))).encode()
    return bytes(out[:65000])


def datagrams(host: str, port: int, count: int, seed: int = 13) -> Iterator[bytes]:
    """count mutated messages, reproducible by seed."""
    rng = random.Random(seed)
    base = seeds(host, port)
    for _ in range(count):
        yield mutate(rng.choice(base), rng)
