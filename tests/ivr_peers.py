"""Peers for IVR tests: SIPp callers that press keys with the shipped RFC 4733 pcaps, and prompt seeding."""
from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

from peers import RunningBox, free_media_port, free_port, register, start_sipp

SIPP_PCAPS = Path("/usr/share/sip-tester")
PCAP_NAMES = {**{d: f"dtmf_2833_{d}.pcap" for d in "0123456789"}, "*": "dtmf_2833_star.pcap",
              "#": "dtmf_2833_pound.pcap"}

PCMU_SDP = """      v=0
      o=switchboard-test 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
"""
"""A SIPp SDP body: PCMU and telephone-event on SIPp's media port."""

_INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Outside Caller" <sip:[caller]@[local_ip]>;tag=[pid]ivr[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

""" + PCMU_SDP + """
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Outside Caller" <sip:[caller]@[local_ip]>;tag=[pid]ivr[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_CALLER_BYE = """
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Outside Caller" <sip:[caller]@[local_ip]>;tag=[pid]ivr[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

_BOX_BYE = """
  <recv request="BYE" timeout="{timeout}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


def ivr_caller(directory: Path, keys: str, *, wait_ms: int = 800, gap_ms: int = 700, hold_ms: int = 2000,
               box_hangs_up: bool = False, bye_timeout_ms: int = 30000, name: str = "ivr_caller") -> Path:
    """Write a SIPp scenario: call, wait, press keys (one shipped pcap each), then hang up or await BYE.

    Inject [caller] with -key caller N and the dialled number with -s.
    """
    steps = [f'  <pause milliseconds="{wait_ms}"/>']
    for key in keys:
        pcap = SIPP_PCAPS / PCAP_NAMES[key]
        steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(f'  <pause milliseconds="{gap_ms}"/>')
    if box_hangs_up:
        end = _BOX_BYE.format(timeout=bye_timeout_ms)
    else:
        end = f'  <pause milliseconds="{hold_ms}"/>\n' + _CALLER_BYE
    xml = ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
           f'<scenario name="{name}">\n{_INVITE}\n' + "\n".join(steps) + f"\n{end}</scenario>\n")
    path = directory / f"{name}.xml"
    path.write_text(xml)
    return path


_PROMPT_CACHE = Path(tempfile.gettempdir()) / "switchboard-test-prompts"


def seed_prompts(data_dir: Path) -> None:
    """Give a fresh box the default prompts already rendered, so each test does not run espeak-ng."""
    from appliance.media.prompts import PromptLibrary

    generated = _PROMPT_CACHE / "generated"
    _PROMPT_CACHE.mkdir(parents=True, exist_ok=True)
    # Test workers run in parallel (pytest-xdist): one renders the cache, the others wait for it.
    with open(_PROMPT_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (_PROMPT_CACHE / ".complete").exists():
            PromptLibrary(_PROMPT_CACHE).preload()
            (_PROMPT_CACHE / ".complete").touch()
    target = data_dir / "prompts" / "generated"
    target.mkdir(parents=True, exist_ok=True)
    for wav in generated.glob("*.wav"):
        if not (target / wav.name).exists():
            shutil.copyfile(wav, target / wav.name)


class Agents:
    """Extensions played by SIPp uas processes: registered, answering, waited for."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, box: RunningBox, number: str, secret: str, scenario: Path | None = None) -> None:
        """Register `number` from a SIPp uas: by default it answers and waits for BYE."""
        port = free_port()
        assert register(box, number, secret, port, self.workdir).returncode == 0
        how = ["-sn", "uas"] if scenario is None else ["-sf", str(scenario)]
        self.running[number] = start_sipp(*how, "-p", str(port), "-m", "1", "-mp", str(free_media_port()),
                                          cwd=self.workdir)

    def answered(self, number: str, timeout: float = 15.0) -> bool:
        """Whether the uas for `number` ran its scenario to the end (took the call, saw it end)."""
        proc = self.running[number]
        try:
            proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return False
        return proc.returncode == 0

    def stop(self) -> None:
        """Kill whatever is still running."""
        for proc in self.running.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
