"""Helpers that run the real box and real SIP peers (SIPp, baresip) on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).parent / "sipp"
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


def free_rtp_range(size: int = 400) -> tuple[int, int]:
    """An even block of ports for the box's RTP, below Linux's ephemeral range (32768+)."""
    block = (os.getpid() + next(_rtp_blocks)) % 30
    base = 20000 + block * size
    return base, base + size - 2


@dataclass
class RunningBox:
    """A `switchboard run` subprocess and where it listens."""

    process: subprocess.Popen
    data_dir: Path
    sip_port: int
    http_port: int
    rtp: tuple[int, int]
    log_path: Path
    banner: str = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run `switchboard ARGS --data-dir DIR` and return the result."""
        return subprocess.run([sys.executable, "-m", "appliance.cli", *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=30)

    def cli_json(self, *args: str) -> object:
        """Run a CLI command with --json and parse its output."""
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def calls(self) -> list[dict]:
        """Call records, newest first."""
        return self.cli_json("calls", "--limit", "500")  # type: ignore[return-value]

    def wait_for_calls(self, count: int, ended: bool = True, timeout: float = 10.0) -> list[dict]:
        """Wait until at least count call records exist (and have ended)."""
        deadline = time.monotonic() + timeout
        rows: list[dict] = []
        while time.monotonic() < deadline:
            rows = self.calls()
            done = [r for r in rows if r["ended_at"]] if ended else rows
            if len(done) >= count:
                return rows
            time.sleep(0.2)
        raise AssertionError(f"expected {count} call records, have {rows}")

    def log(self) -> str:
        """Everything the box logged so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_box(data_dir: Path, provision: str | None = None, *extra: str, sip_port: int | None = None,
              timeout: float = 15.0) -> RunningBox:
    """Start the box on 127.0.0.1 with fresh ports and wait for its banner."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sip_port = sip_port or free_port()
    http_port = free_port(socket.SOCK_STREAM)
    rtp = free_rtp_range()
    args = [sys.executable, "-m", "appliance.cli", "run", "--data-dir", str(data_dir), "--bind", LOCALHOST,
            "--sip-port", str(sip_port), "--http-port", str(http_port), "--rtp-port-min", str(rtp[0]),
            "--rtp-port-max", str(rtp[1]), "--log-format", "text", *extra]
    if provision is not None:
        path = data_dir / "provision.toml"
        path.write_text(provision)
        args += ["--provision", str(path)]
    log_path = data_dir / "box.log"
    log_file = open(log_path, "w")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, text=True)
    box = RunningBox(process, data_dir, sip_port, http_port, rtp, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("Switchboard ready"):
            box.banner = line.strip()
            return box
        if process.poll() is not None:
            break
    box.stop()
    raise RuntimeError(f"box did not start:\n{log_path.read_text()}")


@dataclass
class SippResult:
    """What one SIPp run did."""

    returncode: int
    stdout: str
    stderr: str
    errors: str = ""
    messages: str = ""
    stats: dict = field(default_factory=dict)


def sipp(*args: str, timeout: float = 60.0, cwd: Path | None = None, trace: bool = True) -> SippResult:
    """Run SIPp to completion and collect its error and message logs."""
    workdir = cwd or Path(os.environ.get("TMPDIR", "/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    before = set(workdir.glob("*_errors.log")) | set(workdir.glob("*_messages.log"))
    command = ["sipp", "-nostdin", "-i", LOCALHOST, *args]
    if trace:
        command += ["-trace_err", "-trace_msg"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    errors = "".join(p.read_text(errors="replace") for p in set(workdir.glob("*_errors.log")) - before)
    messages = "".join(p.read_text(errors="replace") for p in set(workdir.glob("*_messages.log")) - before)
    return SippResult(proc.returncode, proc.stdout, proc.stderr, errors, messages)


def start_sipp(*args: str, cwd: Path | None = None, trace: bool = True) -> subprocess.Popen:
    """Start SIPp in the background (for a uas that must be up before the caller)."""
    command = ["sipp", "-nostdin", "-i", LOCALHOST, *args]
    if trace:
        command += ["-trace_err", "-trace_msg"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd or Path(os.environ.get("TMPDIR", "/tmp")))


def users_file(directory: Path, users: dict[str, str], name: str = "users.csv") -> Path:
    """A SIPp injection file: field0 = user, field1 = a whole [authentication] line."""
    path = directory / name
    lines = ["SEQUENTIAL"] + [f"{user};[authentication username={user} password={secret}]"
                              for user, secret in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def register(box: RunningBox, user: str, secret: str, port: int, workdir: Path, expires: int = 3600,
             transport: str = "u1") -> SippResult:
    """Register one extension from a given local port with SIPp's digest support."""
    csv = users_file(workdir, {user: secret}, f"reg_{user}_{port}.csv")
    return sipp(f"{LOCALHOST}:{box.sip_port}", "-sf", str(SCENARIOS / "register.xml"), "-inf", str(csv),
                "-m", "1", "-p", str(port), "-t", transport, "-key", "expires", str(expires),
                "-timeout", "15", "-timeout_error",
                cwd=workdir)


def have(tool: str) -> bool:
    """Whether a peer tool is installed."""
    return shutil.which(tool) is not None
