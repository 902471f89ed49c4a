"""Peers for queue tests: SIPp agents that answer many calls, callers that wait, customers for callbacks."""
from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

from ivr_peers import _BOX_BYE, PCAP_NAMES, PCMU_SDP, SIPP_PCAPS
from peers import LOCALHOST, RunningBox, free_media_port, free_port, register, start_sipp

_RESPONSE_HEAD = """      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]ag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""

_REMEMBER = """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="callee"/>
    </action>
"""

_ANSWER = """
  <recv request="INVITE" rrs="true">{remember}</recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
{head}
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
{head}
      Content-Type: application/sdp
      Content-Length: [len]

""" + PCMU_SDP.replace("{", "{{").replace("}", "}}") + """      a=sendrecv

    ]]>
  </send>
  <recv request="ACK"/>
"""

_HANG_UP = """
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$callee];tag=[pid]ag[call_number]
      To: [$caller]
      Call-ID: [call_id]
      CSeq: 1 BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""

_REFUSE = """
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]ag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
"""


def _scenario(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.xml"
    path.write_text('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
                    f'<scenario name="{name}">\n{body}\n</scenario>\n')
    return path


def answering(directory: Path, name: str, ring_ms: int = 200, talk_ms: int | None = 1500) -> Path:
    """A uas that rings ring_ms, answers, and hangs up after talk_ms (None: waits for the box's BYE)."""
    head = _RESPONSE_HEAD
    end = _BOX_BYE.format(timeout=600000) if talk_ms is None else _HANG_UP.format(talk_ms=talk_ms)
    remember = "" if talk_ms is None else _REMEMBER  # SIPp refuses variables it never uses
    return _scenario(directory, name, _ANSWER.format(head=head, ring_ms=ring_ms, remember=remember) + end)


def refusing(directory: Path, name: str, status: str = "486 Busy Here") -> Path:
    """A uas that answers every INVITE with a failure."""
    return _scenario(directory, name, _REFUSE.format(status=status))


class Uas:
    """One SIPp uas process on its own port, taking up to `calls` calls."""

    def __init__(self, scenario: Path, workdir: Path, calls: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.scenario = scenario
        self.calls = calls
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Uas":
        """Start listening."""
        self.proc = start_sipp("-sf", str(self.scenario), "-p", str(self.port), "-m", str(self.calls),
                               "-mp", str(free_media_port()), "-rtp_echo", cwd=self.workdir)
        return self

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait for the process to end (or kill it) and return (returncode, stderr+stdout tail)."""
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return -9, (err or "") + (out or "")[-2000:]
        return self.proc.returncode, (err or "") + (out or "")[-2000:]

    def stop(self) -> None:
        """Kill it if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def received(self, method: str = "INVITE") -> list[str]:
        """The requests of this method SIPp received so far, as raw text (from its -trace_msg log)."""
        assert self.proc is not None
        found: list[str] = []
        for path in self.workdir.glob(f"{self.scenario.stem}_{self.proc.pid}_messages.log"):
            for block in path.read_text(errors="replace").split("-----------------------------------------------"):
                if "message received" in block and f"\n{method} sip:" in block:
                    found.append(block)
        return found


class AgentPhones:
    """Extensions played by SIPp uas processes that register and then take calls."""

    def __init__(self, box: RunningBox, workdir: Path, secrets: dict[str, str]) -> None:
        self.box = box
        self.workdir = workdir
        self.secrets = secrets
        self.phones: dict[str, Uas] = {}

    def start(self, number: str, scenario: Path, calls: int = 1) -> Uas:
        """Register number from a fresh port and run scenario there."""
        uas = Uas(scenario, self.workdir, calls)
        result = register(self.box, number, self.secrets[number], uas.port, self.workdir)
        assert result.returncode == 0, result.errors
        self.phones[number] = uas.start()
        return uas

    def stop(self) -> None:
        """Kill every phone."""
        for uas in self.phones.values():
            uas.stop()


def queue_caller(directory: Path, name: str, *, keys: str = "", wait_ms: int = 1000, gap_ms: int = 700,
                 hold_ms: int = 30000, box_hangs_up: bool = False, callee_hangs_up: bool = False) -> Path:
    """A caller from the trunk: waits wait_ms, presses keys (shipped pcaps), then holds and hangs up.

    box_hangs_up: the box ends the call (callback confirmed) and this caller awaits its BYE.
    callee_hangs_up: an agent answers and hangs up; this caller awaits that BYE (up to hold_ms).
    """
    from ivr_peers import _BOX_BYE, _CALLER_BYE, _INVITE

    # A pause would make SIPp abort on a BYE that comes during it: without keys, go straight to waiting.
    steps = [f'  <pause milliseconds="{wait_ms}"/>'] if keys or not (box_hangs_up or callee_hangs_up) else []
    for key in keys:
        steps.append(f'  <nop><action><exec play_pcap_audio="{SIPP_PCAPS / PCAP_NAMES[key]}"/></action></nop>')
        steps.append(f'  <pause milliseconds="{gap_ms}"/>')
    if box_hangs_up or callee_hangs_up:
        end = _BOX_BYE.format(timeout=hold_ms)
    else:
        end = f'  <pause milliseconds="{hold_ms}"/>\n' + _CALLER_BYE
    return _scenario(directory, name, _INVITE + "\n".join(steps) + "\n" + end)


def start_caller(box: RunningBox, scenario: Path, port: int, workdir: Path, caller: str,
                 dialled: str = "4930555000") -> subprocess.Popen:
    """Call in from the trunk port in the background."""
    return start_sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(scenario), "-p", str(port), "-s", dialled,
                      "-key", "caller", caller, "-m", "1", "-mp", str(free_media_port()),
                      "-timeout", "90", "-timeout_error", cwd=workdir)


def query(box: RunningBox, sql: str, params: tuple = ()) -> list[dict]:
    """Rows from the box's database (read-only, WAL lets us read while it runs)."""
    conn = sqlite3.connect(f"file:{box.data_dir / 'switchboard.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 20.0, what: str = "a condition"):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; return its value, or raise AssertionError naming what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
