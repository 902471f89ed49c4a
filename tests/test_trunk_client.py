"""The trunk client (appliance/sip/trunk.py) against a fake ITSP on a fake wire and clock: registration,
refresh, back-off and the OPTIONS keepalive, without sockets or waiting."""
from __future__ import annotations

import asyncio

from sip_rig import Rig, response_to

from appliance.sip.digest import DigestAuthenticator, NonceManager
from appliance.sip.transaction import T1
from appliance.sip.trunk import BACKOFF, TrunkClient

ROW = {"name": "itsp", "host": "192.0.2.50", "port": 5060, "transport": "udp", "username": "box",
       "secret": "trunk-secret", "register": True, "expires": 300, "inbound": "201"}


class Bus:
    def __init__(self) -> None:
        self.states: list[str] = []

    def publish(self, topic: str, **data: object) -> None:
        if topic == "trunk.state":
            self.states.append(str(data["state"]))


def started(rig: Rig, keepalive: float = 3600.0) -> tuple[TrunkClient, Bus]:
    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list:
        return [(None, None, None, "", (host, port))]

    rig.loop.getaddrinfo = getaddrinfo  # type: ignore[attr-defined]
    bus = Bus()
    client = TrunkClient(rig.loop, rig.layer, rig.ua.endpoint, dict(ROW), bus, lambda status: None,  # type: ignore[arg-type]
                         keepalive=keepalive)
    asyncio.run(client.start())
    return client, bus


def challenge() -> str:
    auth = DigestAuthenticator("itsp.example", lambda user, alg: None, NonceManager(b"i" * 32), ("MD5",))
    return f"WWW-Authenticate: {auth.challenges()[0]}"


def answer_register(rig: Rig, granted: int = 300) -> None:
    """The ITSP challenges the next REGISTER, then accepts the one with credentials."""
    register = rig.wire.requests("REGISTER")[-1]
    rig.wire.deliver(response_to(register, 401, "Unauthorized", extra=challenge()))
    with_credentials = rig.wire.requests("REGISTER")[-1]
    assert 'username="box"' in (with_credentials.header("Authorization") or "")
    rig.wire.deliver(response_to(with_credentials, 200, extra=f"Expires: {granted}"))


def test_registers_through_the_challenge_and_refreshes_before_expiry() -> None:
    rig = Rig()
    client, bus = started(rig)
    answer_register(rig, granted=300)
    assert client.status.state == "registered" and bus.states == ["registering", "registered"]
    sent = len(rig.wire.requests("REGISTER"))
    rig.loop.advance(269.9)  # refresh at max(80 %, granted - 30 s) = 270 s
    assert len(rig.wire.requests("REGISTER")) == sent
    rig.loop.advance(0.2)
    assert len(rig.wire.requests("REGISTER")) == sent + 1


def test_a_refusal_fails_and_retries_after_the_backoff() -> None:
    rig = Rig()
    client, bus = started(rig)
    register = rig.wire.requests("REGISTER")[-1]
    rig.wire.deliver(response_to(register, 403, "Forbidden"))
    assert client.status.state == "failed" and client.status.last_error == "403 Forbidden"
    rig.loop.advance(BACKOFF[0] - 0.1)
    assert len(rig.wire.requests("REGISTER")) == 1
    rig.loop.advance(0.2)
    assert len(rig.wire.requests("REGISTER")) == 2 and client.status.state == "failed"  # until it succeeds
    answer_register(rig)
    assert client.status.state == "registered" and client.failures == 0


def test_a_silent_trunk_becomes_unreachable_and_is_registered_again() -> None:
    rig = Rig()
    client, bus = started(rig, keepalive=30.0)
    answer_register(rig)
    rig.loop.advance(30.0 + 64 * T1 + 0.1)  # the first OPTIONS goes at 30 s; no answer: a local 408 at 64*T1
    assert client.status.state == "unreachable" and client.status.reachable is False
    before = len(rig.wire.requests("REGISTER"))
    rig.loop.advance(1.1)
    assert len(rig.wire.requests("REGISTER")) == before + 1
