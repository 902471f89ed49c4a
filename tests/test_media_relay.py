"""RTP relay and port allocator, with real UDP sockets on 127.0.0.1."""
from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from appliance.media import relay as relay_module
from appliance.media.ports import PortAllocator, PortsExhausted
from appliance.media.relay import MediaEngine, Relay

HOST = "127.0.0.1"


@pytest.fixture(autouse=True, params=["epoll", "readers"])
def readiness(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with the shared epoll set and with one asyncio reader per socket."""
    # The box runs on Linux, which always has epoll; both paths must work there.
    assert relay_module._HAVE_EPOLL
    monkeypatch.setattr(relay_module, "_HAVE_EPOLL", request.param == "epoll")
    return request.param


def free_range(pairs: int) -> tuple[int, int]:
    """Find an even-aligned range of `pairs` RTP/RTCP pairs that is free right now."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(10000, 19000) & ~1  # below the blocks test boxes use (tests/peers.py)
        high = low + 2 * pairs - 1
        probes = []
        try:
            for port in range(low, high + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in probes:
                s.close()
        return low, high
    raise RuntimeError("no free port range found")


def rtp(seq: int, payload: bytes = b"\xff" * 160) -> bytes:
    """A minimal RTP packet (version 2, PCMU)."""
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x1234) + payload


def rtcp(tag: int) -> bytes:
    """A minimal RTCP receiver report."""
    return struct.pack("!BBHI", 0x80, 201, 1, tag)


class Phone:
    """A UDP endpoint standing in for a phone (or an attacker)."""

    def __init__(self, port: int = 0, host: str = HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.port = self.addr[1]

    def send(self, data: bytes, port: int) -> None:
        """Send a datagram to the box on the given port."""
        self.sock.sendto(data, (HOST, port))

    async def recv(self, timeout: float = 1.0) -> tuple[bytes, tuple]:
        """Receive one datagram or fail the test on timeout."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recvfrom(self.sock, 4096), timeout)

    async def nothing(self, wait: float = 0.15) -> None:
        """Assert nothing arrives within `wait` seconds."""
        with pytest.raises(TimeoutError):
            data = await self.recv(wait)
            pytest.fail(f"unexpected packet {data!r}")

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def run(body: Callable[[MediaEngine, PortAllocator], Awaitable[None]], pairs: int = 8) -> None:
    """Run body(engine, allocator) in a fresh loop; fail if the loop saw an exception."""
    errors: list[dict] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        low, high = free_range(pairs)
        allocator = PortAllocator(low, high, HOST)
        engine = MediaEngine(loop, allocator)
        try:
            await body(engine, allocator)
        finally:
            engine.close()

    asyncio.run(main())
    assert errors == []


async def settle(delay: float = 0.05) -> None:
    """Let the loop process pending datagrams."""
    await asyncio.sleep(delay)


def bridged(engine: MediaEngine, a: Phone, b: Phone) -> Relay:
    """Create a relay whose SDP addresses are the two phones."""
    relay = engine.create_relay()
    relay.set_remote("a", HOST, a.port)
    relay.set_remote("b", HOST, b.port)
    return relay


def test_packets_flow_both_ways_byte_exact() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        for seq, size in enumerate((0, 1, 160, 1400, 2048 - 12)):
            pkt = rtp(seq, bytes(random.randrange(256) for _ in range(size)))
            a.send(pkt, relay.a.port)
            data, src = await b.recv()
            assert data == pkt
            assert src == (HOST, relay.b.port)  # symmetric: B hears from the port it sends to
            reply = rtp(1000 + seq, pkt[12:][::-1])
            b.send(reply, relay.b.port)
            data, src = await a.recv()
            assert data == reply
            assert src == (HOST, relay.a.port)
        assert relay.a.packets_in == 5 and relay.b.packets_out == 5
        assert relay.b.packets_in == 5 and relay.a.packets_out == 5
        assert relay.a.bytes_in == sum(12 + s for s in (0, 1, 160, 1400, 2036))
        assert relay.a.last_rx > 0 and relay.b.last_rx > 0
        a.close(), b.close()

    run(body)


def test_latches_to_real_source_port() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        sdp_a, real_a, b = Phone(), Phone(), Phone()
        relay = bridged(engine, sdp_a, b)  # SDP says sdp_a, the phone (behind NAT) uses real_a
        b.send(rtp(1), relay.b.port)
        assert (await sdp_a.recv())[0] == rtp(1)  # before latching, SDP address is used
        real_a.send(rtp(2), relay.a.port)
        assert (await b.recv())[0] == rtp(2)
        assert relay.a.latched and relay.a.remote == real_a.addr
        b.send(rtp(3), relay.b.port)
        assert (await real_a.recv())[0] == rtp(3)
        await sdp_a.nothing()
        for p in (sdp_a, real_a, b):
            p.close()

    run(body)


def test_third_party_dropped_after_latch() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b, intruder = Phone(), Phone(), Phone()
        relay = bridged(engine, a, b)
        a.send(rtp(1), relay.a.port)
        await b.recv()
        intruder.send(rtp(666), relay.a.port)
        intruder.send(rtp(667), relay.a.port)
        await b.nothing()
        assert relay.a.dropped_source == 2
        assert relay.a.remote == a.addr
        a.send(rtp(2), relay.a.port)
        assert (await b.recv())[0] == rtp(2)
        for p in (a, b, intruder):
            p.close()

    run(body)


def test_stun_from_a_latched_phone_is_not_relayed() -> None:
    """Issue 14, item 21: Linphone's STUN checks reached the other phone."""
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        a.send(rtp(1), relay.a.port)
        await b.recv()
        stun_binding_request = bytes.fromhex("0001000021122a4b") + bytes(12)
        a.send(stun_binding_request, relay.a.port)
        await b.nothing()
        assert relay.a.dropped_source == 1
        a.close(), b.close()

    run(body)


def test_non_rtp_does_not_latch() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b, junk = Phone(), Phone(), Phone()
        relay = bridged(engine, a, b)
        junk.send(b"hello", relay.a.port)
        junk.send(b"\x00" * 40, relay.a.port)
        await b.nothing()
        assert not relay.a.latched and relay.a.dropped_source == 2
        a.send(rtp(1), relay.a.port)
        assert (await b.recv())[0] == rtp(1)
        assert relay.a.remote == a.addr
        for p in (a, b, junk):
            p.close()

    run(body)


def test_rtcp_relayed_between_rtcp_sockets() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        a_rtcp, b_rtcp = Phone(), Phone()
        relay = engine.create_relay()
        relay.set_remote("a", HOST, a.port, rtcp_port=a_rtcp.port)
        relay.set_remote("b", HOST, b.port, rtcp_port=b_rtcp.port)
        a_rtcp.send(rtcp(7), relay.a.port + 1)
        data, src = await b_rtcp.recv()
        assert data == rtcp(7) and src == (HOST, relay.b.port + 1)
        b_rtcp.send(rtcp(8), relay.b.port + 1)
        data, src = await a_rtcp.recv()
        assert data == rtcp(8) and src == (HOST, relay.a.port + 1)
        await b.nothing(0.05)
        await a.nothing(0.05)
        assert relay.a.rtcp.packets_in == 1 and relay.a.packets_in == 0
        for p in (a, b, a_rtcp, b_rtcp):
            p.close()

    run(body)


def test_rtcp_defaults_to_rtp_port_plus_one() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        relay = engine.create_relay()
        relay.set_remote("b", HOST, 40000)
        assert relay.b.rtcp.remote == (HOST, 40001)

    run(body)


def test_drops_and_counts_until_remote_known() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = engine.create_relay()
        a.send(rtp(1), relay.a.port)  # no SDP and no SIP source known yet: nobody may latch
        await settle()
        assert not relay.a.latched and relay.a.dropped_source == 1
        relay.expect_from("a", HOST)  # A's SIP came from this address (an offer without c=, or NAT)
        a.send(rtp(2), relay.a.port)
        a.send(rtp(3), relay.a.port)
        await settle()
        assert relay.a.packets_in == 2 and relay.b.dropped_no_remote == 2
        relay.set_remote("b", HOST, b.port)
        a.send(rtp(4), relay.a.port)
        assert (await b.recv())[0] == rtp(4)
        # A never got SDP but latched from its first packet from its SIP address, so B's audio reaches it.
        b.send(rtp(5), relay.b.port)
        assert (await a.recv())[0] == rtp(5)
        a.close(), b.close()

    run(body)


def test_an_outsider_spraying_rtp_cannot_latch_either_leg() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        attacker = Phone(host="127.0.0.2")
        relay = bridged(engine, a, b)
        for seq in range(20):  # before the phones send anything: the moment a naive relay latches
            for port in (relay.a.port, relay.b.port, relay.a.port + 1, relay.b.port + 1):
                attacker.send(rtp(seq), port)
        await settle()
        assert not relay.a.latched and not relay.b.latched
        assert not relay.a.rtcp.latched and not relay.b.rtcp.latched
        a.send(rtp(100), relay.a.port)
        assert (await b.recv())[0] == rtp(100)
        b.send(rtp(200), relay.b.port)
        assert (await a.recv())[0] == rtp(200)
        await attacker.nothing()  # nothing reflected, RTP or RTCP
        assert relay.a.remote == a.addr and relay.b.remote == b.addr
        for p in (a, b, attacker):
            p.close()

    run(body)


def test_set_remote_after_latch_relatches() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        old, new, b = Phone(), Phone(), Phone()
        relay = bridged(engine, old, b)
        old.send(rtp(1), relay.a.port)
        await b.recv()
        assert relay.a.remote == old.addr
        relay.set_remote("a", HOST, new.port)  # re-INVITE: the phone moved
        assert not relay.a.latched
        b.send(rtp(2), relay.b.port)
        assert (await new.recv())[0] == rtp(2)
        new.send(rtp(3), relay.a.port)
        assert (await b.recv())[0] == rtp(3)
        assert relay.a.latched and relay.a.remote == new.addr
        old.send(rtp(4), relay.a.port)
        await b.nothing()
        assert relay.a.dropped_source == 1
        for p in (old, new, b):
            p.close()

    run(body)


def test_hold_address_clears_remote() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        relay = engine.create_relay()
        relay.set_remote("a", "0.0.0.0", 5000)
        assert relay.a.remote is None and relay.a.rtcp.remote is None
        relay.set_remote("a", HOST, 0)
        assert relay.a.remote is None
        with pytest.raises(ValueError):
            relay.set_remote("a", "phone.example", 5000)

    run(body)


def test_unreachable_remote_never_raises() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a = Phone()
        dead = Phone()
        dead_port = dead.port
        dead.close()  # nothing listens there: loopback answers with ICMP port unreachable
        relay = engine.create_relay()
        relay.set_remote("a", HOST, a.port)
        relay.set_remote("b", HOST, dead_port)
        for seq in range(50):
            a.send(rtp(seq), relay.a.port)
            if seq % 10 == 0:
                await settle(0.01)
        await settle()
        assert relay.a.packets_in == 50
        assert relay.b.packets_out + relay.b.send_errors == 50
        # Still relaying afterwards, in both directions.
        b = Phone()
        relay.set_remote("b", HOST, b.port)
        a.send(rtp(99), relay.a.port)
        assert (await b.recv())[0] == rtp(99)
        b.send(rtp(100), relay.b.port)
        assert (await a.recv())[0] == rtp(100)
        a.close(), b.close()

    run(body)  # run() asserts the loop's exception handler saw nothing


def test_tap_diverts_and_untap_restores() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        got: list[bytes] = []
        relay.tap("a", lambda data: got.append(bytes(data)))
        assert relay.a.tapped
        a.send(rtp(1), relay.a.port)
        a.send(rtcp(1), relay.a.port + 1)
        await b.nothing()
        assert got == [rtp(1)]
        assert relay.send("a", rtp(50))  # a prompt played to A
        assert (await a.recv())[0] == rtp(50)
        b.send(rtp(2), relay.b.port)  # the other direction is not affected by tapping A
        assert (await a.recv())[0] == rtp(2)
        relay.untap("a")
        a.send(rtp(3), relay.a.port)
        assert (await b.recv())[0] == rtp(3)
        assert got == [rtp(1)]
        a.close(), b.close()

    run(body)


def test_failing_tap_is_contained() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        relay.tap("a", lambda data: 1 / 0)
        a.send(rtp(1), relay.a.port)
        await settle()
        assert relay.a.tap_errors == 1
        a.close(), b.close()

    run(body)


def test_burst_queued_on_one_socket_all_delivered_in_order() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        for seq in range(100):  # queued before the loop runs: served one per round
            a.send(rtp(seq), relay.a.port)
        got = [(await b.recv())[0] for _ in range(100)]
        assert got == [rtp(seq) for seq in range(100)]
        a.close(), b.close()

    run(body)


def test_relay_closed_from_tap_mid_batch() -> None:
    async def body(engine: MediaEngine, _alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        first = bridged(engine, a, b)
        second = bridged(engine, a, b)
        first.tap("a", lambda data: second.close())
        second.tap("a", lambda data: first.close())
        a.send(rtp(1), first.a.port)
        a.send(rtp(2), second.a.port)  # likely ready in the same poll batch
        await settle()
        assert engine.active() == 1  # whichever packet was served first closed the other relay
        a.close(), b.close()

    run(body)


def test_engine_close_is_idempotent() -> None:
    async def body(engine: MediaEngine, alloc: PortAllocator) -> None:
        engine.create_relay()
        engine.close()
        engine.close()
        assert engine.active() == 0 and alloc.in_use == 0

    run(body)


def test_close_is_idempotent_and_releases_ports() -> None:
    async def body(engine: MediaEngine, alloc: PortAllocator) -> None:
        a, b = Phone(), Phone()
        relay = bridged(engine, a, b)
        ports = (relay.a.port, relay.b.port)
        assert engine.active() == 1 and alloc.in_use == 2
        relay.close()
        relay.close()
        assert engine.active() == 0 and alloc.in_use == 0
        assert relay.a.sock.fileno() == -1
        for port in ports:  # really unbound: a stranger can take them
            for p in (port, port + 1):
                Phone(p).close()
        assert not relay.send("a", rtp(1))
        a.close(), b.close()

    run(body)


def test_ports_are_random_and_not_reused_at_once() -> None:
    async def body(engine: MediaEngine, alloc: PortAllocator) -> None:
        seen = []
        for _ in range(40):
            relay = engine.create_relay()
            seen.append((relay.a.port, relay.b.port))
            freed = {relay.a.port, relay.b.port}
            relay.close()
            following = engine.create_relay()
            assert not freed & {following.a.port, following.b.port}  # late packets cannot reach a new call
            following.close()
        steps = {b - a for a, b in seen}
        assert len(steps) > 5, seen  # not handed out in order: the next call's port cannot be guessed
        held = [engine.create_relay() for _ in range(alloc.capacity // 2)]  # every pair is still usable
        assert alloc.in_use == alloc.capacity
        for relay in held:
            relay.close()

    run(body, pairs=64)


def test_ports_exhausted_and_no_leak() -> None:
    async def body(engine: MediaEngine, alloc: PortAllocator) -> None:
        first = engine.create_relay()
        with pytest.raises(PortsExhausted):
            engine.create_relay()  # one pair left: leg a gets it, leg b cannot
        assert alloc.in_use == 2 and engine.active() == 1
        first.close()
        second = engine.create_relay()
        assert engine.active() == 1
        second.close()

    run(body, pairs=3)


def test_allocator_skips_ports_taken_elsewhere() -> None:
    low, high = free_range(3)
    squatter = Phone(low + 3)  # RTCP port of the second pair
    alloc = PortAllocator(low, high, HOST)
    try:
        got = [alloc.allocate() for _ in range(2)]
        assert sorted(port for _, _, port in got) == [low, low + 4]
        with pytest.raises(PortsExhausted):
            alloc.allocate()
        for rtp_sock, rtcp_sock, port in got:
            assert not rtp_sock.getblocking()
            assert rtcp_sock.getsockname() == (HOST, port + 1)
            rtp_sock.close(), rtcp_sock.close()
            alloc.release(port)
    finally:
        squatter.close()


def test_allocator_rejects_empty_range() -> None:
    with pytest.raises(ValueError):
        PortAllocator(10001, 10001, HOST)
    assert PortAllocator(10001, 10004, HOST).capacity == 1
