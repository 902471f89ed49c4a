"""OutboundCall end to end: the real box in-process on its own loop thread, SIPp as the agent's phone and the ITSP.

The box rings extension 201 (a SIPp uas on the port it registered from), plays a short tone to the
agent, then dials the customer on trunk "itsp" (a SIPp uas) and bridges the two.
"""
from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from live_box import LiveBox
from peers import (SCENARIOS, free_media_port, free_port, register, sdp_audio,
                   sipp_log_messages, start_sipp)

from appliance.media.channel import MediaChannel
from appliance.media.prompts import Prompt, frames
from appliance.media.tones import tone_pcm
from appliance.calls.outbound_call import OutboundCall
from appliance.store import calls as store_calls

AGENT, AGENT_SECRET = "201", "s3cret-201"
CUSTOMER = "0712345678"
TONE = tone_pcm((440.0,), 0.3)
PROMPT = Prompt("whisper-test", TONE, tuple(frames(TONE)))

PROVISION = """
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-201"

[[trunks]]
name = "itsp"
host = "127.0.0.1"
port = {trunk_port}
username = "office"
secret = "trunk-secret"
register = false
inbound = "201"
outbound_prefix = "0"
"""


class OutboundBox(LiveBox):
    """The box in-process with the trunk "itsp" pointing at trunk_port."""

    def __init__(self, data_dir: Path, trunk_port: int) -> None:
        # No OPTIONS to the trunk's SIPp in the middle of a scenario: LiveBox sets a long keepalive.
        super().__init__(data_dir, PROVISION.format(trunk_port=trunk_port))

    def record(self, record_id: str) -> dict:
        """The call record, read on the loop (which owns the store)."""
        return self.call(store_calls.get_call, self.box.db, record_id)


class Outcome:
    """What the OutboundCall reported, in order, from the loop thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, name: str, value: Any = None) -> None:
        with self._cond:
            self.events.append((name, value))
            self._cond.notify_all()

    def names(self) -> list[str]:
        with self._cond:
            return [name for name, _ in self.events]

    def wait(self, name: str, timeout: float = 15.0) -> Any:
        """The value of the first event called name, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event, value in self.events:
                    if event == name:
                        return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name!r} within {timeout} s; events: {self.events}")
                self._cond.wait(left)


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A box with extension 201 registered from agent_port and trunk "itsp" at trunk_port."""
    root = tmp_path_factory.mktemp("outbound")
    trunk_port, agent_port = free_port(), free_port()
    live = OutboundBox(root / "box", trunk_port)
    peers = root / "register"
    peers.mkdir()
    try:
        result = register(live, AGENT, AGENT_SECRET, agent_port, peers)  # type: ignore[arg-type]
        assert result.returncode == 0, result.errors or result.stdout
        yield SimpleNamespace(live=live, trunk_port=trunk_port, agent_port=agent_port)
    finally:
        live.stop()


@pytest.fixture
def uas(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen, Path]]]:
    """Start SIPp uas processes, each logging in its own folder; any still running are killed afterwards."""
    started: list[subprocess.Popen] = []

    def start(name: str, scenario: str, port: int, *extra: str) -> tuple[subprocess.Popen, Path]:
        folder = tmp_path / name
        folder.mkdir()
        proc = start_sipp("-sf", str(SCENARIOS / scenario), "-p", str(port), "-m", "1",
                          "-mp", str(free_media_port()), "-timeout", "30", "-timeout_error", *extra, cwd=folder)
        started.append(proc)
        return proc, folder

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finished(proc: subprocess.Popen, folder: Path, timeout: float = 20.0) -> list:
    """Wait for a SIPp uas to end well; the messages it received."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    errors = "".join(p.read_text(errors="replace") for p in folder.glob("*_errors.log"))
    assert proc.returncode == 0, f"SIPp exited {proc.returncode}:\n{out}\n{err}\n{errors}"
    return received(folder)


def received(folder: Path) -> list:
    """Messages a SIPp peer received so far."""
    text = "".join(p.read_text(errors="replace") for p in folder.glob("*_messages.log"))
    return sipp_log_messages(text, "received")


def start_callback(office: SimpleNamespace, outcome: Outcome, ring_timeout: float = 10.0,
                   dial: bool = True) -> OutboundCall:
    """On the loop: a callback record, ring 201, whisper a tone, then dial CUSTOMER on the trunk."""
    box = office.live.box

    def begin() -> OutboundCall:
        info = box.call_log.start(sip_call_id=uuid.uuid4().hex, direction="callback", line="itsp",
                                  from_number=CUSTOMER, from_name="", to_number=CUSTOMER)
        out = OutboundCall(box.b2bua, info)
        out.on_ended.append(lambda who: outcome.add("ended", who))
        agents = [(b.request_uri(), b.source, AGENT, None) for b in box.location.lookup(AGENT)]

        def agent_up(channel: MediaChannel) -> None:
            outcome.add("agent_answered", channel.codec.name)
            if dial:
                channel.play(PROMPT, on_done=dial_customer)

        def dial_customer() -> None:
            trunk = box.trunks["itsp"].peer
            out.dial_customer([(f"sip:{CUSTOMER}@{trunk.domain}", trunk.peer, trunk.name, trunk)], 10.0,
                              on_ringing=lambda: outcome.add("customer_ringing"),
                              on_answered=bridged, on_failed=lambda status: outcome.add("customer_failed", status))

        def bridged() -> None:
            outcome.add("bridged", out.relay.a.packets_out)  # what the agent got before the customer

        out.ring_agent(agents, ring_timeout, agent_up, lambda status: outcome.add("agent_failed", status))
        return out

    return office.live.call(begin)


def invites(messages: list) -> list:
    """The INVITEs among messages."""
    return [m for m in messages if m.start.startswith("INVITE ")]


def kinds(messages: list) -> list[str]:
    """Requests by method, responses as "status METHOD"."""
    return [f"{m.status} {m.cseq_method}" if m.is_response else m.method for m in messages]


def test_callback_bridges_agent_and_customer_until_the_customer_hangs_up(office, uas) -> None:
    agent, agent_log = uas("agent", "call_uas_answer.xml", office.agent_port, "-rtp_echo")
    customer, customer_log = uas("customer", "outbound_customer_uas_bye.xml", office.trunk_port, "-d", "2000")
    outcome = Outcome()
    out = start_callback(office, outcome)

    assert outcome.wait("agent_answered") == "PCMA"
    outcome.wait("bridged")
    assert outcome.wait("ended") == "customer"
    customer_got = finished(customer, customer_log)
    agent_got = finished(agent, agent_log)  # the box BYEd the agent when the customer hung up

    [agent_invite] = invites(agent_got)
    assert f"<sip:{CUSTOMER}@" in (agent_invite.header("From") or "")
    assert f"<sip:{AGENT}@" in (agent_invite.header("To") or "")
    assert sdp_audio(agent_invite.sdp)[2] == ["0", "8", "101"]
    [customer_invite] = invites(customer_got)
    _, _, formats, attributes = sdp_audio(customer_invite.sdp)
    assert formats == ["8", "101"]  # exactly the agent's codec and event numbering
    assert [a for a in attributes if a.startswith("rtpmap")] == ["rtpmap:8 PCMA/8000", "rtpmap:101 telephone-event/8000"]
    assert customer_invite.ruri == f"sip:{CUSTOMER}@127.0.0.1"
    assert "<sip:office@127.0.0.1>" in (customer_invite.header("From") or "")
    assert kinds(agent_got) == ["INVITE", "ACK", "BYE"]

    relay = out.relay
    before_bridge = outcome.wait("bridged")
    assert relay.b.packets_in > 0 and relay.a.packets_out > before_bridge  # customer → agent
    assert relay.a.packets_in > 0 and relay.b.packets_out > 0              # agent (echo) → customer
    row = office.live.record(out.info.record_id)
    assert row["direction"] == "callback"
    assert row["answered_at"] and row["disposition"] == "answered"
    assert row["hangup_by"] == "itsp" and row["answered_by"] == AGENT
    assert row["extra"]["media"]["codec"] == "PCMA"
    assert office.live.call(lambda: out.info.record_id in office.live.box.b2bua.active) is False
    assert outcome.names() == ["agent_answered", "customer_ringing", "bridged", "ended"]


def test_agent_hangs_up_a_callback_placed_through_a_challenging_trunk(office, uas) -> None:
    agent, agent_log = uas("agent", "call_uas_hangup.xml", office.agent_port, "-d", "3000")
    customer, customer_log = uas("customer", "trunk_itsp_uas_401.xml", office.trunk_port)
    outcome = Outcome()
    out = start_callback(office, outcome)

    outcome.wait("bridged")
    assert outcome.wait("ended") == "agent"
    agent_got = finished(agent, agent_log)
    customer_got = finished(customer, customer_log)  # answered only with valid credentials, then BYEd

    first, second = invites(customer_got)
    assert first.header("Authorization") is None and second.header("Authorization")
    assert sdp_audio(second.sdp)[2] == ["8", "101"]
    assert kinds(agent_got) == ["INVITE", "ACK", "200 BYE"]
    row = office.live.record(out.info.record_id)
    assert (row["direction"], row["disposition"], row["hangup_by"]) == ("callback", "answered", AGENT)


def test_agent_not_answering_is_cancelled_and_recorded_as_no_answer(office, uas) -> None:
    agent, agent_log = uas("agent", "call_uas_ring.xml", office.agent_port)
    outcome = Outcome()
    out = start_callback(office, outcome, ring_timeout=1.5)

    assert outcome.wait("agent_failed") == 480
    agent_got = finished(agent, agent_log)
    assert kinds(agent_got) == ["INVITE", "CANCEL", "ACK"]
    row = office.live.record(out.info.record_id)
    assert (row["direction"], row["disposition"], row["sip_status"]) == ("callback", "no-answer", 480)
    assert row["answered_at"] is None
    assert outcome.names() == ["agent_failed"]  # on_ended is only for calls the agent answered
    assert out.state == "ended" and out.relay.closed


def test_busy_customer_leaves_the_agent_up_until_the_box_hangs_up(office, uas) -> None:
    agent, agent_log = uas("agent", "call_uas_answer.xml", office.agent_port, "-rtp_echo")
    customer, customer_log = uas("customer", "call_uas_busy.xml", office.trunk_port)
    outcome = Outcome()
    out = start_callback(office, outcome)

    assert outcome.wait("customer_failed") == 486
    finished(customer, customer_log)
    assert office.live.call(lambda: out.state) == "agent_up"
    assert agent.poll() is None  # the agent's call is still up
    assert kinds(received(agent_log)) == ["INVITE", "ACK"]

    office.live.call(out.hangup)
    assert outcome.wait("ended") == "box"
    assert kinds(finished(agent, agent_log)) == ["INVITE", "ACK", "BYE"]
    row = office.live.record(out.info.record_id)
    assert (row["disposition"], row["sip_status"], row["hangup_by"]) == ("answered", 486, "box")
    assert row["answered_by"] == AGENT


def test_a_retransmitted_200_from_the_agent_is_acked_again(office, uas) -> None:
    agent, agent_log = uas("agent", "outbound_agent_uas_retrans_200.xml", office.agent_port, "-d", "300")
    outcome = Outcome()
    out = start_callback(office, outcome, dial=False)

    assert outcome.wait("agent_answered") == "PCMU"
    assert outcome.wait("ended") == "agent"
    assert kinds(finished(agent, agent_log)) == ["INVITE", "ACK", "ACK", "200 BYE"]  # one ACK per 200
    row = office.live.record(out.info.record_id)
    assert (row["disposition"], row["hangup_by"]) == ("answered", AGENT)
