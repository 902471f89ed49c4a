"""Linphone (linphone-cli 5.1) as a second real phone: SHA-256 digest, TCP with +sip.instance, SIP INFO DTMF.

Field notes (shared/TESTING-WITH-REAL-PEERS.md): a private HOME with ~/.local/share/linphone made first,
a fresh config for every run with STUN and ICE blank, `soundcard use files` after every start, commands
through `linphonecsh generic`, states polled. `linphonecsh exit` may leave linphonec running: it is then
stopped by its pid.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from peers import LOCALHOST, free_port, free_port_block


class Linphone:
    """One linphonec daemon driven through linphonecsh, registered to the box over TCP."""

    def __init__(self, directory: Path, box_port: int, user: str, secret: str, *, dtmf_info: bool = True) -> None:
        self.directory = directory
        self.home = directory / "home"
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.rc = directory / "linphonerc"
        self.log = directory / "linphone.log"
        self.box_port = box_port
        rtp = free_port_block(4, even=True)
        self.rc.write_text(f"""[sip]
sip_port=-1
sip_udp_port=-1
sip_tcp_port={free_port()}
default_proxy=0
register_only_when_network_is_up=0
use_info={1 if dtmf_info else 0}
use_rfc2833={0 if dtmf_info else 1}
[net]
stun_server=
nat_policy_ref=
firewall_policy=0
[rtp]
audio_rtp_port={rtp}
[proxy_0]
reg_proxy=<sip:{LOCALHOST}:{box_port};transport=tcp>
reg_identity=<sip:{user}@{LOCALHOST}>
reg_expires=600
reg_sendregister=1
publish=0
[auth_info_0]
username={user}
passwd={secret}
realm=switchboard
domain={LOCALHOST}
""")

    def command(self, *args: str, timeout: float = 10.0) -> str:
        """Run `linphonecsh ARGS` against this phone's daemon and return what it printed."""
        done = subprocess.run(["linphonecsh", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": str(self.home)})
        return done.stdout + done.stderr

    def start(self) -> None:
        self.command("init", "-c", str(self.rc), "-d", "6", "-l", str(self.log))
        self.wait_for(lambda: "Using wav files" in self.command("generic", "soundcard use files"), "the sound card")

    def wait_for(self, condition, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"linphone: no {what} within {timeout} s; log:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)

    def registered(self) -> bool:
        return self.command("status", "register").startswith("registered,")

    def call(self, target: str) -> None:
        self.command("generic", f"call sip:{target}@{LOCALHOST}:{self.box_port};transport=tcp")
        self.wait_for(lambda: "StreamsRunning" in self.command("generic", "calls"), "call up")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Hang up, unregister and exit; kill the daemon by pid if it hangs."""
        try:
            self.command("generic", "terminate", timeout=5)
            self.command("exit", timeout=5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._pids():
            time.sleep(0.2)
        for pid in self._pids():
            os.kill(pid, signal.SIGKILL)

    def _pids(self) -> list[int]:
        found = subprocess.run(["pgrep", "-f", f"linphonec .*{self.rc}"], capture_output=True, text=True)
        return [int(p) for p in found.stdout.split()]
