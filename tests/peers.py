"""Helpers that run the real box and real SIP peers (SIPp, baresip) on 127.0.0.1."""
from __future__ import annotations

import json
import os
import re as _re
import select as _select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading as _threading
import time
from collections import deque as _deque
from dataclasses import dataclass, field
from pathlib import Path

from peerkit.ports import (  # noqa: F401  (the tests import them from here)
    LOCALHOST,
    RTP_BLOCKS,
    free_media_port,
    free_port,
    free_port_block,
    free_rtp_range,
    worker_slot,
)
from peerkit.sipp import auth_injection

SCENARIOS = Path(__file__).parent / "sipp"


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
        """Call records, newest first, as `switchboard calls --json` prints them.

        Read from the box's SQLite file directly (WAL lets a reader in beside the box): polling
        through the CLI started a fresh interpreter each time. test_calls_listing.py covers the CLI.
        """
        from sqlite_utils import Database

        from appliance.store.calls import recent_calls

        connection = sqlite3.connect(self.data_dir / "switchboard.db", timeout=5)
        try:
            return json.loads(json.dumps(recent_calls(Database(connection), 500)))
        finally:
            connection.close()

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
              timeout: float = 15.0, web: bool = False) -> RunningBox:
    """Start the box on 127.0.0.1 with fresh ports and wait for its banner; web=True also serves the web pages."""
    data_dir.mkdir(parents=True, exist_ok=True)
    from ivr_peers import seed_prompts

    seed_prompts(data_dir)
    sip_port = sip_port or free_port()
    # Most tests never open a page: without the web the box starts and stops faster (no Flask import,
    # no waitress thread to wind down).
    http_port = free_port(socket.SOCK_STREAM) if web else 0
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
    """A SIPp injection file in directory: field0 = user, field1 = a whole [authentication] line."""
    return auth_injection(directory / name, users)


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


# --- helpers for the register and call tests ------------------------------------------------
# (appended: a tiny independent SIP peer in Python, SIPp log parsing, media port picking)


_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
            "c": "content-type", "k": "supported", "s": "subject"}





@dataclass
class SipMessage:
    """A SIP message as a peer saw it: start line, headers in order, body."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start.split(" ", 2)[1]) if self.is_response else 0

    @property
    def reason(self) -> str:
        return self.start.split(" ", 2)[2] if self.is_response else ""

    @property
    def method(self) -> str:
        return self.cseq_method if self.is_response else self.start.split(" ", 1)[0]

    @property
    def ruri(self) -> str:
        return "" if self.is_response else self.start.split(" ")[1]

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]

    @property
    def cseq(self) -> int:
        return int((self.header("CSeq") or "0 X").split()[0])

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for n, v in self.headers if _COMPACT.get(n.lower(), n.lower()) == wanted]

    def header(self, name: str) -> str | None:
        found = self.header_all(name)
        return found[0] if found else None

    @property
    def header_names(self) -> list[str]:
        return [n for n, _ in self.headers]

    def tag(self, name: str) -> str | None:
        """The tag parameter of From or To."""
        match = _re.search(r";\s*tag=([^;>\s,]+)", self.header(name) or "", _re.I)
        return match.group(1) if match else None

    @property
    def sdp(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __str__(self) -> str:
        return self.raw.decode("utf-8", "replace") or self.start


def parse_sip(data: bytes) -> SipMessage:
    """Split one SIP message into start line, headers and body (folded lines joined)."""
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("utf-8", "replace").lstrip("\r\n")
    lines: list[str] = []
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SipMessage(lines[0], headers, body, data)


def sipp_log_messages(text: str, direction: str | None = None) -> list[SipMessage]:
    """Messages from a SIPp -trace_msg log; direction "received" or "sent" filters them."""
    found = []
    for block in _re.split(r"^-{20,}[^\n]*\n", text, flags=_re.M):
        title, _, rest = block.partition("\n")
        if "message" not in title or (direction and direction not in title):
            continue
        rest = rest.lstrip("\n")
        # SIPp writes the message, then one extra newline
        data = rest.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        if data.endswith(b"\r\n\r\n\r\n"):
            data = data[:-2]
        found.append(parse_sip(data))
    return found


def sdp_audio(sdp: str) -> tuple[str | None, int, list[str], list[str]]:
    """(connection address, audio port, payload types, a= lines) of the first audio stream."""
    address = None
    port = 0
    formats: list[str] = []
    attributes: list[str] = []
    in_audio = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("c=") and (address is None or in_audio):
            address = line.split()[-1]
        elif line.startswith("m="):
            parts = line[2:].split()
            in_audio = parts[0] == "audio" and not port
            if in_audio:
                port, formats = int(parts[1]), parts[3:]
        elif line.startswith("a=") and in_audio:
            attributes.append(line[2:])
    return address, port, formats, attributes


def sdp_body(port: int, direction: str = "sendrecv", formats: str = "8 0 101", host: str = LOCALHOST) -> bytes:
    """A small SDP offer/answer for a Python peer."""
    lines = ["v=0", f"o=peer {port} 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
             f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000",
             "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def new_id() -> str:
    """Random hex for tags, branches and Call-IDs."""
    return os.urandom(6).hex()


class SipPhone:
    """A minimal SIP user agent on a real UDP or TCP socket at 127.0.0.1, driven step by step.

    It does only what a test tells it to: nothing is retransmitted or answered automatically,
    which is what lets a test drop a message on purpose.
    """

    def __init__(self, box: RunningBox, transport: str = "UDP", port: int = 0, user: str = "") -> None:
        self.box = box
        self.transport = transport.upper()
        self.user = user
        self.box_addr = (LOCALHOST, box.sip_port)
        kind = socket.SOCK_DGRAM if self.transport == "UDP" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        if self.transport == "TCP":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCALHOST, port))
        if self.transport == "TCP":
            self.sock.connect(self.box_addr)
        self.port = self.sock.getsockname()[1]
        self.inbox: _deque[SipMessage] = _deque()
        self.stream = b""
        self.received: list[SipMessage] = []  # every message, in arrival order
        self.sent: list[bytes] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "SipPhone":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- wire ------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.sent.append(raw)
        if self.transport == "UDP":
            self.sock.sendto(raw, self.box_addr)
        else:
            self.sock.sendall(raw)

    def _read(self, timeout: float) -> SipMessage | None:
        if self.transport == "TCP":
            message = self._frame()
            if message is not None:
                return message
        ready, _, _ = _select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return None
        if self.transport == "UDP":
            data, _ = self.sock.recvfrom(65535)
            if data.strip() == b"":
                return None
            return parse_sip(data)
        chunk = self.sock.recv(65535)
        if not chunk:
            raise AssertionError("the box closed the TCP connection")
        self.stream += chunk
        return self._frame()

    def _frame(self) -> SipMessage | None:
        self.stream = self.stream.lstrip(b"\r\n")
        end = self.stream.find(b"\r\n\r\n")
        if end < 0:
            return None
        match = _re.search(rb"\r\n(?:content-length|l)\s*:\s*(\d+)", self.stream[:end + 2], _re.I)
        length = int(match.group(1)) if match else 0
        total = end + 4 + length
        if len(self.stream) < total:
            return None
        data, self.stream = self.stream[:total], self.stream[total:]
        return parse_sip(data)

    def recv(self, match=None, timeout: float = 5.0, what: str = "a message") -> SipMessage:  # type: ignore[no-untyped-def]
        """The first message (queued or new) that `match` accepts; others stay queued."""
        found = self.poll(match, timeout)
        if found is None:
            raise AssertionError(f"no {what} within {timeout} s; queued: {[m.start for m in self.inbox]}")
        return found

    def poll(self, match=None, timeout: float = 0.0) -> SipMessage | None:  # type: ignore[no-untyped-def]
        """Like recv, but None when nothing matching arrives in time."""
        match = match or (lambda m: True)
        for message in list(self.inbox):
            if match(message):
                self.inbox.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline - time.monotonic())
            if message is not None:
                self.received.append(message)
                if match(message):
                    return message
                self.inbox.append(message)
            elif time.monotonic() >= deadline:
                return None

    def response(self, call_id: str, method: str, final: bool = True, timeout: float = 5.0) -> SipMessage:
        """The next (final) response to a request of ours."""
        return self.recv(lambda m: m.is_response and m.call_id == call_id and m.cseq_method == method
                         and (m.status >= 200 or not final), timeout, f"{'final ' if final else ''}response to {method}")

    def request_in(self, method: str, call_id: str | None = None, timeout: float = 5.0) -> SipMessage:
        """The next request of a method from the box."""
        return self.recv(lambda m: not m.is_response and m.method == method
                         and (call_id is None or m.call_id == call_id), timeout, f"{method} request")

    # --- building ---------------------------------------------------------
    def via(self, branch: str | None = None, host: str | None = None, port: int | None = None,
            rport: bool = True) -> str:
        branch = branch or "z9hG4bK" + new_id()
        sent_by = f"{host or LOCALHOST}:{port or self.port}"
        return f"SIP/2.0/{self.transport} {sent_by};branch={branch}" + (";rport" if rport else "")

    def contact(self, user: str | None = None, params: str | None = None) -> str:
        suffix = params if params is not None else ("" if self.transport == "UDP" else ";transport=tcp")
        return f"<sip:{user or self.user}@{LOCALHOST}:{self.port}{suffix}>"

    def build(self, method: str, ruri: str, headers: list[tuple[str, str]], body: bytes = b"",
              via: str | None = None) -> bytes:
        """A request with our Via on top and Content-Length at the end."""
        lines = [f"{method} {ruri} SIP/2.0", f"Via: {via or self.via()}", "Max-Forwards: 70"]
        lines += [f"{n}: {v}" for n, v in headers]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    @staticmethod
    def reply(request: SipMessage, status: int, reason: str, to_tag: str | None = None,
              extra: list[tuple[str, str]] = (), body: bytes = b"") -> bytes:  # type: ignore[assignment]
        """A response mirroring Via, From, To, Call-ID and CSeq."""
        lines = [f"SIP/2.0 {status} {reason}"]
        for name, value in request.headers:
            key = _COMPACT.get(name.lower(), name.lower())
            if key in ("via", "from", "call-id", "cseq"):
                lines.append(f"{name}: {value}")
            elif key == "to":
                if to_tag and request.tag("To") is None:
                    value += f";tag={to_tag}"
                lines.append(f"{name}: {value}")
        lines += [f"{n}: {v}" for n, v in extra]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    # --- registration -------------------------------------------------------
    def register(self, user: str, secret: str, expires: int | None = 3600, contact: str | None = None,
                 call_id: str | None = None, cseq: int = 1, algorithm: str | None = None,
                 extra: list[tuple[str, str]] = ()) -> SipMessage:  # type: ignore[assignment]
        """REGISTER, answer the challenge (the given algorithm's, else the first), return the final response."""
        from appliance.sip.digest import build_authorization

        call_id = call_id or new_id() + "@test"
        domain = f"{LOCALHOST}:{self.box.sip_port}"
        ruri = f"sip:{domain}"
        base = [("From", f"<sip:{user}@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:{user}@{LOCALHOST}>"),
                ("Call-ID", call_id)]
        tail = list(extra)
        if contact != "":
            tail.append(("Contact", contact or self.contact(user)))
        if expires is not None:
            tail.append(("Expires", str(expires)))
        self.send(self.build("REGISTER", ruri, base + [("CSeq", f"{cseq} REGISTER")] + tail))
        first = self.response(call_id, "REGISTER")
        if first.status != 401:
            return first
        challenges = first.header_all("WWW-Authenticate")
        chosen = next((c for c in challenges if algorithm and f"algorithm={algorithm}" in c), challenges[0])
        auth = build_authorization(chosen, "REGISTER", ruri, user, secret)
        self.send(self.build("REGISTER", ruri, base + [("CSeq", f"{cseq + 1} REGISTER"), ("Authorization", auth)]
                             + tail))
        return self.response(call_id, "REGISTER")


# --- baresip as a real phone (tests/test_e2e_baresip.py) -------------------------------------
# Notes for baresip 1.0.0 / libre 1.1.0 (Debian 12), learned the hard way:
# - `-n lo` / `net_interface lo` fails ("could not get network address"): libre skips loopback
#   addresses when it resolves an interface name. Give the address instead: `net_interface 127.0.0.1`.
# - `sip_listen P` takes UDP+TCP on P and TLS on P+1, so two phones need ports at least 2 apart.
# - aufile is only a source in 1.0.0 (no `audio_player aufile,...`). The sndfile audio filter
#   records instead: `snd_path DIR` gets dump-<time>-enc.wav (sent) and dump-<time>-dec.wav (heard).
# - libre's digest client gives up (ENOSYS) when ANY challenge has an algorithm other than MD5,
#   even if an MD5 one is also offered; the box must offer MD5 only for it.
# - ctrl_tcp speaks netstrings ("LEN:JSON,"), one client at a time; events only reach a connected client.


BARESIP_MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules",
                       "/usr/local/lib/baresip/modules")


def baresip_module_dir() -> Path | None:
    """Where baresip's modules (g711.so, aufile.so, ...) are installed."""
    for candidate in BARESIP_MODULE_DIRS:
        if (Path(candidate) / "g711.so").exists():
            return Path(candidate)
    return None




class Baresip:
    """A running baresip phone with its ctrl_tcp connection: commands, events, recordings."""

    def __init__(self, number: str, process: subprocess.Popen, directory: Path, sip_port: int,
                 ctrl_port: int, log_path: Path) -> None:
        self.number = number
        self.process = process
        self.directory = directory
        self.sip_port = sip_port
        self.ctrl_port = ctrl_port
        self.log_path = log_path
        self.events: list[dict] = []
        self._responses: list[dict] = []
        self._cond = _threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: _threading.Thread | None = None

    # --- control connection ------------------------------------------------
    def connect(self, timeout: float = 10.0) -> None:
        """Connect to ctrl_tcp once baresip listens."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip {self.number} exited with {self.process.returncode}:\n{self.log()}")
            try:
                self._sock = socket.create_connection((LOCALHOST, self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"baresip {self.number}: ctrl_tcp not reachable:\n{self.log()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = _threading.Thread(target=self._read_loop, daemon=True, name=f"baresip-{self.number}")
        self._reader.start()

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._sock.recv(65536)  # type: ignore[union-attr]
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0 or not buffer[:colon].isdigit():
                    break
                length = int(buffer[:colon])
                end = colon + 1 + length
                if len(buffer) < end + 1:
                    break
                payload, buffer = buffer[colon + 1:end], buffer[end + 1:]
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                with self._cond:
                    (self._responses if message.get("response") else self.events).append(message)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> dict:
        """Run a baresip long command (e.g. "dial", "hangup") and return its response."""
        message: dict = {"command": name, "token": new_token()}
        if params is not None:
            message["params"] = params
        payload = json.dumps(message).encode()
        self._sock.sendall(b"%d:%s," % (len(payload), payload))  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for response in self._responses:
                    if response.get("token") == message["token"]:
                        self._responses.remove(response)
                        return response
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"baresip {self.number}: no response to {name!r}:\n{self.log()[-2000:]}")
                self._cond.wait(left)

    def wait_event(self, kind: str, timeout: float = 10.0) -> dict:
        """The first event of this type (e.g. CALL_ESTABLISHED, CALL_CLOSED), waiting if needed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("type") == kind:
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    seen = [e.get("type") for e in self.events]
                    raise AssertionError(f"baresip {self.number}: no {kind} within {timeout} s (events {seen}):\n"
                                         f"{self.log()[-3000:]}")
                self._cond.wait(min(left, 0.2))

    def dial(self, target: str) -> dict:
        """Place a call (a number is dialled at the account's domain, i.e. the box)."""
        return self.command("dial", target)

    def hangup(self) -> dict:
        """Hang up the current call."""
        return self.command("hangup")

    # --- what happened -------------------------------------------------------
    def log(self) -> str:
        """baresip's console output so far."""
        import re
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        # menu's call status line ("[0:00:03] audio=64000/64000 (bit/s)") repeats every 100 ms
        return re.sub(r"\[\d+:\d\d:\d\d\] audio=[^\n]*?\(bit/s\)\s*", "", text)

    def _recording(self, which: str) -> Path:
        found = sorted((self.directory / "rec").glob(f"dump-*-{which}.wav"))
        if not found:
            raise AssertionError(f"baresip {self.number} recorded no {which} audio:\n{self.log()[-2000:]}")
        return found[-1]

    def heard(self) -> Path:
        """WAV of what the phone received and decoded (the latest call)."""
        return self._recording("dec")

    def sent(self) -> Path:
        """WAV of what the phone encoded and sent (the latest call)."""
        return self._recording("enc")

    def rtp_sources(self) -> list[tuple[str, int]]:
        """Where incoming RTP came from, as baresip logged it."""
        import re
        return [(host, int(port)) for host, port in
                re.findall(r"incoming rtp for 'audio' established, receiving from ([\d.]+):(\d+)", self.log())]

    def stop(self) -> int:
        """Quit through ctrl_tcp (hangs up calls), then SIGTERM, then SIGKILL; returns the exit code."""
        if self.process.poll() is None and self._sock is not None:
            try:
                payload = json.dumps({"command": "quit"}).encode()
                self._sock.sendall(b"%d:%s," % (len(payload), payload))
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._sock is not None:
            self._sock.close()
        return self.process.returncode


def new_token() -> str:
    """A random token for ctrl_tcp commands."""
    return os.urandom(4).hex()


def start_baresip(box: RunningBox, number: str, secret: str, directory: Path, source: Path | None = None,
                  answermode: str = "auto", extra_config: tuple[str, ...] = ()) -> Baresip:
    """Start baresip registered to the box as `number`, on 127.0.0.1, with no sound card.

    It plays `source` (an 8 kHz mono WAV) as its microphone, records what it sends and hears
    under DIR/rec, and is driven through ctrl_tcp.
    """
    modules = baresip_module_dir()
    if modules is None:
        raise RuntimeError("baresip modules not found in " + ", ".join(BARESIP_MODULE_DIRS))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rec").mkdir(exist_ok=True)
    sip_port = free_port_block(2)
    rtp_port = free_port_block(4, even=True)   # RTP+RTCP on P or P+2, checked free like the other ports
    ctrl_port = free_port(socket.SOCK_STREAM)
    lines = [
        "poll_method epoll",
        f"sip_listen {LOCALHOST}:{sip_port}",
        f"net_interface {LOCALHOST}",
        f"rtp_ports {rtp_port}-{rtp_port + 3}",
        "rtp_timeout 0",
        f"module_path {modules}",
        "module g711.so",
        "module aufile.so",
        "module sndfile.so",
        f"snd_path {directory / 'rec'}",
        "module_app account.so",
        "module_app menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen {LOCALHOST}:{ctrl_port}",
    ]
    if source is not None:
        lines.insert(4, f"audio_source aufile,{source}")
    (directory / "config").write_text("\n".join([*lines, *extra_config]) + "\n")
    (directory / "accounts").write_text(
        f"<sip:{number}@{LOCALHOST}:{box.sip_port}>;auth_pass={secret};answermode={answermode}\n")
    (directory / "contacts").write_text("")
    log_path = directory / "baresip.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(["baresip", "-f", str(directory)], stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT, cwd=directory)
    phone = Baresip(number, process, directory, sip_port, ctrl_port, log_path)
    try:
        phone.connect()
    except Exception:
        phone.stop()
        raise
    return phone


def wait_registered(box: RunningBox, numbers: set[str], timeout: float = 10.0) -> dict[str, dict]:
    """Poll `switchboard extensions --json` until all numbers are registered; returns their rows."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        rows = {e["number"]: e for e in box.cli_json("extensions")}  # type: ignore[union-attr]
        if all(rows.get(n, {}).get("registered") for n in numbers):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"not all of {sorted(numbers)} registered: {rows}")


def tone_wav(path: Path, frequency: float, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit sine WAV at half scale, made with sox."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-b", "16", "-c", "1", str(path), "synth", str(seconds),
                    "sine", str(frequency), "vol", "0.5"], check=True, capture_output=True, timeout=30)
    return path


@dataclass
class ToneReport:
    """What a recording contains: length, loudness, the strongest frequency, per-window view."""

    seconds: float
    rms: float
    dominant: float
    windows: list[tuple[float, float]]        # (dominant Hz, RMS) per window
    spectrum: object = None                    # (frequencies, magnitudes) for band_power

    def band_power(self, frequency: float, width: float = 20.0) -> float:
        """Spectral power within ±width Hz of a frequency."""
        freqs, power = self.spectrum  # type: ignore[misc]
        mask = (freqs >= frequency - width) & (freqs <= frequency + width)
        return float(power[mask].sum())


def analyse_tone(path: Path, window: float = 0.5) -> ToneReport:
    """FFT a 16-bit mono WAV: overall dominant frequency and RMS, and the same per window."""
    import wave

    import numpy as np

    with wave.open(str(path)) as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit samples, got {8 * width}-bit")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if samples.size < 256:
        return ToneReport(samples.size / rate, 0.0, 0.0, [], (np.zeros(1), np.zeros(1)))

    def peak(chunk: "np.ndarray") -> tuple[float, "np.ndarray", "np.ndarray"]:
        power = np.abs(np.fft.rfft(chunk * np.hanning(chunk.size))) ** 2
        freqs = np.fft.rfftfreq(chunk.size, 1 / rate)
        power[freqs < 50] = 0  # ignore DC and rumble
        return float(freqs[int(power.argmax())]), freqs, power

    dominant, freqs, power = peak(samples)
    step = int(rate * window)
    windows = []
    for start in range(0, samples.size - step + 1, step):
        chunk = samples[start:start + step]
        windows.append((peak(chunk)[0], float(np.sqrt(np.mean(chunk ** 2)))))
    return ToneReport(samples.size / rate, float(np.sqrt(np.mean(samples ** 2))), dominant, windows,
                      (freqs, power))


def invite_with_auth(phone: SipPhone, box, target: str, secret: str,
                      formats: str = "8 0 101", offer: bool = True) -> tuple[list[tuple[str, str]], str]:
    """INVITE, get 407, ACK it on the INVITE's branch, INVITE again with credentials (CSeq 2)."""
    from appliance.sip.digest import build_authorization

    ruri = f"sip:{target}@{LOCALHOST}:{box.sip_port}"
    dialog = [("From", f"<sip:{phone.user}@{LOCALHOST}>;tag={new_id()}"), ("To", f"<sip:{target}@{LOCALHOST}>"),
              ("Call-ID", new_id() + "@py")]
    call_id = dialog[2][1]
    body = sdp_body(free_media_port(), formats=formats) if offer else b""
    typed = [("Content-Type", "application/sdp")] if offer else []
    via = phone.via()
    phone.send(phone.build("INVITE", ruri, dialog + [("CSeq", "1 INVITE"), ("Contact", phone.contact())] + typed,
                           body, via=via))
    challenge = phone.response(call_id, "INVITE")
    assert challenge.status == 407, challenge
    phone.send(phone.build("ACK", ruri, [dialog[0], ("To", challenge.header("To")), dialog[2], ("CSeq", "1 ACK")],
                           via=via))
    auth = build_authorization(challenge.header("Proxy-Authenticate"), "INVITE", ruri, phone.user, secret)
    phone.send(phone.build("INVITE", ruri, dialog + [("CSeq", "2 INVITE"), ("Contact", phone.contact()),
                                                     ("Proxy-Authorization", auth)] + typed, body))
    return dialog, call_id
