"""Idle TCP connections (issue 13, finding 5): limits per source and in all, idle timeouts, a quiet log.

A real box (`switchboard run`) with small limits; attackers open bounded numbers of connections from
their own loopback addresses and never send a complete message. The box must keep answering calls
and the web, close the idle ones, keep a registered phone's connection, and not flood its log.
"""
from __future__ import annotations

import select
import socket
import time
import urllib.request
from pathlib import Path

from test_e2e_security import box_settings, provision

from peers import LOCALHOST, SipPhone

PER_SOURCE, TOTAL, IDLE = 8, 40, 1.5


def connect_many(port: int, host: str, count: int) -> list[socket.socket]:
    """Open `count` TCP connections from `host` and send half a request on each (never finished)."""
    opened = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        try:
            sock.connect((LOCALHOST, port))
            sock.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP ")
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    return opened


def still_open(socks: list[socket.socket], wait: float = 0.3) -> list[socket.socket]:
    """The sockets the box has not closed (a closed one reads EOF or a reset)."""
    deadline = time.monotonic() + wait
    alive = list(socks)
    while time.monotonic() < deadline:
        ready, _, _ = select.select(alive, [], [], max(0.0, deadline - time.monotonic()))
        for sock in ready:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                alive.remove(sock)
        if not ready:
            break
    return alive


def test_idle_connections_are_capped_timed_out_and_cost_the_office_nothing(box_factory, tmp_path: Path) -> None:
    box_settings(tmp_path / "tcp", tcp_max_per_source=PER_SOURCE, tcp_max_connections=TOTAL, tcp_idle_timeout=IDLE)
    box = box_factory(provision(), name="tcp", web=True)
    held: list[socket.socket] = []
    try:
        one = connect_many(box.sip_port, "127.0.0.8", 30)
        held += one
        assert len(still_open(one)) == PER_SOURCE
        many = [s for i in range(10) for s in connect_many(box.sip_port, f"127.0.0.{20 + i}", PER_SOURCE)]
        held += many
        assert len(still_open(one + many)) == TOTAL  # the total cap
        # The office keeps working: a UDP phone registers, the web answers.
        with SipPhone(box, user="201") as phone:
            assert phone.register("201", "s3cret-201").status == 200
        with urllib.request.urlopen(f"http://{LOCALHOST}:{box.http_port}/healthz", timeout=5) as response:
            assert response.read() == b"ok\n"
        # Idle connections are closed by the box...
        deadline = time.monotonic() + 10
        while still_open(one + many, 0.05) and time.monotonic() < deadline:
            pass
        assert still_open(one + many, 0.05) == [], "idle connections were never closed"
        # ...while a phone registered over TCP keeps its connection past the idle timeout.
        with SipPhone(box, transport="TCP", user="202") as tcp_phone:
            assert tcp_phone.register("202", "s3cret-202").status == 200
            witness = connect_many(box.sip_port, LOCALHOST, 1)  # opened at the same time, never registers
            held += witness
            deadline = time.monotonic() + 10
            while still_open(witness, 0.05) and time.monotonic() < deadline:
                pass
            assert still_open(witness, 0.05) == []
            assert still_open([tcp_phone.sock], 0.05) == [tcp_phone.sock]
    finally:
        for sock in held:
            sock.close()
    log = box.log()
    refused = log.count("refused a TCP connection")
    assert 0 < refused <= 25, refused  # about 100 refusals: 20 logged, then a count of the rest
    assert "Traceback" not in log
    assert box.alive()
