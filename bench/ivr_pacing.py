"""The box playing IVR prompts to N callers at once: CPU, pacing of its packets at the receiver, DTMF missed.

Usage: python bench/ivr_pacing.py [N ...] [--runs 3] [--window 10] [--rt] [--inband] [--quick]
       (default N = 10 50 100)

Each run: a fresh box (core 0) whose trunk (this script's SIP socket on 127.0.0.1) delivers calls
to ivr:main, with a 60 s greeting (a WAV set with `switchboard prompt set`) so every caller hears
audio throughout. This script is the callers, pinned to core 1: a small UAC that sends N INVITEs
from the trunk's port at --ramp calls/s, ACKs the 200s and holds. Each caller has its own RTP
socket with SO_TIMESTAMPNS, so every packet of the box carries the kernel's receive time: on
loopback that is taken inside the box's sendto, so the figures are the box's sending times,
whatever this process is doing. Like a phone, each caller also sends 20 ms PCMU packets to the box
(speech-like audio; --no-audio turns that off), staggered over the 20 ms.

Once every call is up (plus --settle s), for --window s:
  - box CPU % of one core (utime+stime from /proc/PID/stat), kernel share, runq wait, other core0;
  - per caller, the intervals between the box's consecutive audio packets: mean interval, and
    p50/p99/max of |interval - 20 ms| over all callers' intervals (goal: p99 <= 2 ms at 100);
  - lateness: per caller, arrival - RTP timestamp / 8000, minus its minimum: how far behind its
    own 20 ms schedule a packet left (PDV against the stream's clock), p99 and max;
  - packets missing (sequence gaps) in the window.
Then each caller sends the RFC 4733 digit "1" of SIPp's dtmf_2833_1.pcap (its 10 packets at
their pcap times, re-stamped with the caller's SSRC/sequence/timestamp), the N digits spread over
--dtmf-spread s, holds 1.5 s (the box moves the caller to ivr:second), and hangs up. After the
box stops, `switchboard calls --json` tells in how many calls the IVR path recorded key "1":
"DTMF missed" is the rest.

--inband sets dtmf_inband = "always" (switchboard.toml): the box then also runs every caller's
audio through its jitter buffer and Goertzel detector; compare CPU with and without.
--rt runs the box SCHED_FIFO (chrt -f 10), as in the other scripts; --profile DIR records py-spy.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import struct
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from common import (HOST, PEER_CORE, Box, CpuMeter, free_port, header, median, percentile, rss_mb,
                    start_profile, table)
from ivr_common import (DID, DTMF_1, call_records, keys, pcap_rtp, pin_self, prepare_data_dir, pressed,
                        speech_like, start_ivr_box, use_venv_commands)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
FRAME_NS = 20_000_000
PT_PCMU, PT_EVENT = 0, 101
_RTP = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@qq")
_CALLER_PORTS = (16000, 17998)  # our RTP/RTCP pairs: between the box's range and SIPp's usual ones


# --- one caller ----------------------------------------------------------------------------
@dataclass
class Caller:
    """One call placed by the UAC: its SIP dialog state and its RTP sockets and receive log."""

    index: int
    rtp: socket.socket
    rtcp: socket.socket
    port: int
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    invite: bytes = b""
    branch: str = ""
    state: str = "new"  # new, calling, up, bye, done, failed
    answered: bool = False
    to: str = ""
    target: str = ""
    box_media: tuple[str, int] | None = None
    sent_at: float = 0.0
    retries: int = 0
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts: int = field(default_factory=lambda: random.getrandbits(32))
    frame: int = 0
    quiet_until: float = 0.0  # no audio while a digit is being sent
    stamps: array = field(default_factory=lambda: array("q"))  # kernel receive time, ns (CLOCK_REALTIME)
    seqs: array = field(default_factory=lambda: array("l"))
    rtp_ts: array = field(default_factory=lambda: array("q"))


def bind_pair(port: int) -> tuple[socket.socket, socket.socket] | None:
    """RTP and RTCP sockets on port and port+1, or None if either is taken."""
    socks = []
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((HOST, p))
        except OSError:
            s.close()
            for other in socks:
                other.close()
            return None
        s.setblocking(False)
        socks.append(s)
    socks[0].setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    socks[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return socks[0], socks[1]


def make_callers(n: int) -> list[Caller]:
    """N callers with RTP/RTCP socket pairs in _CALLER_PORTS."""
    callers: list[Caller] = []
    for port in range(_CALLER_PORTS[0], _CALLER_PORTS[1], 2):
        if len(callers) == n:
            break
        pair = bind_pair(port)
        if pair is not None:
            callers.append(Caller(len(callers), pair[0], pair[1], port))
    if len(callers) < n:
        raise SystemExit("not enough free RTP ports for the callers")
    return callers


def receive(caller: Caller) -> None:
    """Drain a caller's RTP socket, logging the kernel receive time of every packet of the box."""
    sock = caller.rtp
    while True:
        try:
            data, anc, _flags, _addr = sock.recvmsg(2048, 64)
        except BlockingIOError:
            return
        if len(data) < 12:
            continue
        stamp = 0
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(value)
                stamp = sec * 1_000_000_000 + nsec
        if not stamp:
            stamp = time.time_ns()
        _b0, b1, seq, ts, _ssrc = _RTP.unpack_from(data)
        if b1 & 0x7F != PT_PCMU:
            continue
        caller.stamps.append(stamp)
        caller.seqs.append(seq)
        caller.rtp_ts.append(ts)


# --- SIP --------------------------------------------------------------------------------------
def parse_sip(data: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    """(first line, lower-case header name -> values, body) of a SIP message."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, list[str]] = {}
    compact = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
               "c": "content-type"}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.setdefault(compact.get(name, name), []).append(value.strip())
    return lines[0], headers, body


def sdp_media(body: bytes) -> tuple[str, int] | None:
    """(address, port) of the audio stream in an SDP body."""
    host, port = None, None
    for line in body.decode("ascii", "replace").splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


def uri_of(name_addr: str) -> str:
    """The URI inside <...> of a name-addr (or the whole value)."""
    if "<" in name_addr:
        return name_addr.split("<", 1)[1].split(">", 1)[0]
    return name_addr.split(";", 1)[0]


class Uac(asyncio.DatagramProtocol):
    """The trunk's side: INVITE, ACK, BYE for many callers from one SIP socket."""

    def __init__(self, box_port: int, local_port: int, callers: list[Caller]) -> None:
        self.box = (HOST, box_port)
        self.local_port = local_port
        self.callers = {c.call_id: c for c in callers}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _common(self, c: Caller, method: str, ruri: str, cseq: int, branch: str, to: str) -> list[str]:
        """Request line and the headers every request of the call carries."""
        return [f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {HOST}:{self.local_port};branch={branch};rport",
                "Max-Forwards: 70",
                f'From: "Bench {c.index}" <sip:4930100{c.index:04d}@{HOST}>;tag={c.tag}',
                f"To: {to}", f"Call-ID: {c.call_id}", f"CSeq: {cseq} {method}"]

    def invite(self, c: Caller) -> None:
        """Send the INVITE (PCMU + telephone-event 101)."""
        sdp = (f"v=0\r\no=bench {c.index} 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
               f"m=audio {c.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
               "a=fmtp:101 0-15\r\na=sendrecv\r\n")
        c.branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        lines = self._common(c, "INVITE", f"sip:{DID}@{HOST}:{self.box[1]}", 1, c.branch, f"<sip:{DID}@{HOST}>")
        lines += [f"Contact: <sip:trunk@{HOST}:{self.local_port}>", "Content-Type: application/sdp",
                  f"Content-Length: {len(sdp)}", "", sdp]
        c.invite = "\r\n".join(lines).encode()
        c.state, c.sent_at = "calling", time.monotonic()
        self._send(c.invite)

    def ack(self, c: Caller) -> None:
        """ACK a 2xx (a new transaction, to the box's Contact)."""
        lines = self._common(c, "ACK", c.target, 1, "z9hG4bK" + uuid.uuid4().hex[:16], c.to)
        self._send("\r\n".join(lines + ["Content-Length: 0", "", ""]).encode())

    def bye(self, c: Caller) -> None:
        """Send (or resend) the BYE."""
        if c.state != "bye":
            c.state, c.branch, c.retries = "bye", "z9hG4bK" + uuid.uuid4().hex[:16], 0
        c.sent_at = time.monotonic()
        lines = self._common(c, "BYE", c.target, 2, c.branch, c.to)
        self._send("\r\n".join(lines + ["Content-Length: 0", "", ""]).encode())

    def retransmit(self) -> None:
        """Resend INVITEs and BYEs with no answer after 0.5 s (a few times)."""
        now = time.monotonic()
        for c in self.callers.values():
            if c.state in ("calling", "bye") and now - c.sent_at > 0.5 * 2 ** min(c.retries, 3):
                c.retries += 1
                if c.retries > 6:
                    c.state = "failed"
                elif c.state == "calling":
                    c.sent_at = now
                    self._send(c.invite)
                else:
                    self.bye(c)

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.box)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        """A response (advance the call) or a request from the box (answer it)."""
        first, headers, body = parse_sip(data)
        if not first.startswith("SIP/2.0"):
            self._answer_request(first, headers, addr)
            return
        status = int(first.split()[1])
        c = self.callers.get((headers.get("call-id") or [""])[0])
        if c is None:
            return
        method = (headers.get("cseq") or ["0 X"])[0].split()[-1]
        if method == "INVITE" and status >= 200:
            if status >= 300:
                c.state = "failed"
                return
            c.to = headers["to"][0]
            c.target = uri_of(headers.get("contact", [f"<sip:{DID}@{HOST}:{self.box[1]}>"])[0])
            c.box_media = sdp_media(body)
            if c.state == "calling":
                c.state, c.answered = "up", True
            self.ack(c)  # also for a retransmitted 200
        elif method == "INVITE" and c.state == "calling":
            c.sent_at = float("inf")  # a provisional response: stop resending
        elif method == "BYE" and status >= 200:
            c.state = "done"

    def _answer_request(self, first: str, headers: dict[str, list[str]], addr: tuple) -> None:
        """200 OK to anything the box asks (OPTIONS, a BYE)."""
        method = first.split(" ", 1)[0]
        if method == "ACK":
            return
        lines = ["SIP/2.0 200 OK"] + [f"Via: {v}" for v in headers.get("via", [])]
        for name in ("from", "to", "call-id", "cseq"):
            lines += [f"{name.title()}: {v}" for v in headers.get(name, [])]
        assert self.transport is not None
        self.transport.sendto("\r\n".join(lines + ["Content-Length: 0", "", ""]).encode(), addr)
        c = self.callers.get((headers.get("call-id") or [""])[0])
        if c is not None and method == "BYE":
            c.state = "done"


# --- media the callers send ----------------------------------------------------------------
class Talker:
    """Sends every caller's 20 ms PCMU frames, staggered over the 20 ms, and their DTMF digits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callers: list[Caller], frames: list[bytes],
                 audio: bool) -> None:
        self.loop = loop
        self.callers = callers
        self.frames = frames
        self.audio = audio
        self.dtmf = pcap_rtp(DTMF_1)

    def start(self) -> None:
        """Begin each caller's stream at its own phase."""
        if not self.audio:
            return
        now = self.loop.time()
        n = len(self.callers)
        for c in self.callers:
            self.loop.call_at(now + 0.02 * c.index / n, self._tick, c, now + 0.02 * c.index / n)

    def _tick(self, c: Caller, due: float) -> None:
        """Send this caller's next frame (while its call is up) and schedule the one after."""
        if c.state != "up" or c.box_media is None:
            if c.state in ("new", "calling"):
                self.loop.call_at(due + 0.02, self._tick, c, due + 0.02)
            return
        if due >= c.quiet_until:
            payload = self.frames[c.frame % len(self.frames)]
            self._rtp(c, PT_PCMU, payload, c.ts, marker=c.frame == 0)
        c.frame += 1
        c.ts = (c.ts + 160) & 0xFFFFFFFF
        self.loop.call_at(due + 0.02, self._tick, c, due + 0.02)

    def _rtp(self, c: Caller, pt: int, payload: bytes, ts: int, marker: bool) -> None:
        """Send one RTP packet of the caller's stream to the box."""
        header = _RTP.pack(0x80, pt | (0x80 if marker else 0), c.seq, ts, c.ssrc)
        c.seq = (c.seq + 1) & 0xFFFF
        try:
            c.rtp.sendto(header + payload, c.box_media)  # type: ignore[arg-type]
        except OSError:
            pass

    def press(self, c: Caller) -> None:
        """Send the digit of dtmf_2833_1.pcap: its packets at their times, with this caller's stream."""
        if c.state != "up" or c.box_media is None:
            return
        start = self.loop.time()
        length = self.dtmf[-1][0]
        c.quiet_until = start + length + 0.02
        event_ts = c.ts
        for t, packet in self.dtmf:
            marker = bool(packet[1] & 0x80)
            self.loop.call_at(start + t, self._rtp, c, PT_EVENT, packet[12:], event_ts, marker)
        if not self.audio:
            c.ts = (c.ts + int((length + 0.02) * 8000)) & 0xFFFFFFFF


# --- analysis -----------------------------------------------------------------------------------
def pacing(callers: list[Caller], t0: int, t1: int) -> dict:
    """Intervals, deviations from 20 ms and lateness of the box's packets received in [t0, t1) (ns)."""
    intervals: list[float] = []
    late: list[float] = []
    missing = received = 0
    for c in callers:
        rows = [(s, q, ts) for s, q, ts in zip(c.stamps, c.seqs, c.rtp_ts) if t0 <= s < t1]
        received += len(rows)
        offsets = []
        for (s1, q1, _), (s2, q2, _) in zip(rows, rows[1:]):
            intervals.append((s2 - s1) / 1e6)
            missing += max(0, ((q2 - q1) & 0xFFFF) - 1)
        if rows:
            base_ts = rows[0][2]
            offsets = [s / 1e6 - ((ts - base_ts) & 0xFFFFFFFF) / 8.0 for s, _, ts in rows]
            low = min(offsets)
            late += [o - low for o in offsets]
    dev = [abs(i - 20.0) for i in intervals]
    return {"received": received, "missing": missing,
            "mean": statistics.fmean(intervals) if intervals else float("nan"),
            "dev_p50": percentile(dev, 50), "dev_p99": percentile(dev, 99), "dev_max": max(dev, default=float("nan")),
            "over_2ms": 100.0 * sum(d > 2.0 for d in dev) / len(dev) if dev else float("nan"),
            "late_p99": percentile(late, 99), "late_max": max(late, default=float("nan"))}


# --- one run ----------------------------------------------------------------------------------
async def drive(box: Box, n: int, args: argparse.Namespace, trunk_sock: socket.socket,
                frames: list[bytes]) -> dict:
    """Place the calls, measure the window, press the digits, hang up."""
    loop = asyncio.get_running_loop()
    callers = make_callers(n)
    try:
        for c in callers:
            loop.add_reader(c.rtp.fileno(), receive, c)
        transport, uac = await loop.create_datagram_endpoint(
            lambda: Uac(box.sip_port, trunk_sock.getsockname()[1], callers), sock=trunk_sock)
        talker = Talker(loop, callers, frames, not args.no_audio)
        talker.start()
        retrans = asyncio.create_task(_every(0.1, uac.retransmit))
        all_up = await place_calls(uac, callers, args.ramp)
        await asyncio.sleep(args.settle)
        result = await measure_window(box, callers, args)
        await press_and_hang_up(uac, talker, callers, args)
        retrans.cancel()
        transport.close()
        result.update(up=sum(c.answered for c in callers), all_up=all_up)
        return result
    finally:
        for c in callers:
            loop.remove_reader(c.rtp.fileno())
            c.rtp.close()
            c.rtcp.close()


async def place_calls(uac: Uac, callers: list[Caller], ramp: float) -> bool:
    """INVITE every caller at `ramp` calls/s; True once all are answered (or failed) within 30 s."""
    for c in callers:
        uac.invite(c)
        await asyncio.sleep(1.0 / ramp)
    return await _until(lambda: all(c.state in ("up", "failed") for c in callers), 30.0)


async def measure_window(box: Box, callers: list[Caller], args: argparse.Namespace) -> dict:
    """Box CPU and the pacing of its packets over --window seconds."""
    meter = CpuMeter(box.pid)
    name = f"ivr_pacing_{len(callers)}"
    profile = start_profile(box.pid, args.window, args.profile, name) if args.profile else None
    t0 = time.time_ns()
    await asyncio.sleep(args.window)
    t1 = time.time_ns()
    cpu = meter.stop()
    rss = rss_mb(box.pid)
    if profile is not None:
        profile.wait()
    result = pacing(callers, t0, t1)
    result.update(cpu=cpu["cpu_pct"], kernel=cpu["kernel_share"], runq=cpu["runq_pct"], other=cpu["other_pct"],
                  rss=rss)
    return result


async def press_and_hang_up(uac: Uac, talker: Talker, callers: list[Caller], args: argparse.Namespace) -> None:
    """Every caller sends the digit (spread over --dtmf-spread s), holds 1.5 s, then hangs up."""
    loop = asyncio.get_running_loop()
    for c in callers:
        loop.call_later(args.dtmf_spread * c.index / len(callers), talker.press, c)
    await asyncio.sleep(args.dtmf_spread + 1.5)
    for c in callers:
        if c.state == "up":
            uac.bye(c)
            await asyncio.sleep(1.0 / args.ramp)
    await _until(lambda: all(c.state in ("done", "failed") for c in callers), 15.0)


async def _every(seconds: float, action) -> None:  # type: ignore[no-untyped-def]
    while True:
        await asyncio.sleep(seconds)
        action()


async def _until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def one_run(n: int, args: argparse.Namespace, work: Path, greeting: bytes, menu: bytes,
            frames: list[bytes], index: int) -> dict:
    """A fresh box, N callers, the figures."""
    trunk_port = free_port()
    trunk_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    trunk_sock.bind((HOST, trunk_port))
    settings = {"dtmf_inband": "always"} if args.inband else {}
    data_dir = prepare_data_dir(work, trunk_port, greeting, menu, settings)
    box = start_ivr_box(data_dir, realtime=args.rt)
    try:
        rss_idle = box.rss()
        result = asyncio.run(drive(box, n, args, trunk_sock, frames))
    finally:
        box.stop()
    records = call_records(data_dir)
    result["heard"] = sum(pressed(r, "1") for r in records)
    result["records"] = len(records)
    result["other_keys"] = sum(k != "1" for r in records for k in keys(r))
    result["skipped"] = sum(((r.get("extra") or {}).get("media") or {}).get("late_frames_skipped", 0)
                            for r in records)
    result["rss_idle"] = rss_idle
    print(f"  N={n} run {index + 1}: up {result['up']}/{n}, box CPU {result['cpu']:.1f} %, "
          f"mean interval {result['mean']:.3f} ms, |dev| p99 {result['dev_p99']:.2f} / max {result['dev_max']:.1f} ms, "
          f"late p99 {result['late_p99']:.2f} ms, missing {result['missing']}, skipped {result['skipped']}, "
          f"DTMF heard {result['heard']}/{n}, other keys {result['other_keys']}, runq {result['runq']:.2f} %, "
          f"other core0 {result['other']:.1f} %", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[10, 50, 100])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=float, default=10.0, help="seconds measured once all calls are up")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between the last 200 and the window")
    ap.add_argument("--ramp", type=float, default=50.0, help="calls per second while setting up and hanging up")
    ap.add_argument("--dtmf-spread", type=float, default=1.0, help="seconds over which the N digits are sent")
    ap.add_argument("--no-audio", action="store_true", help="callers send no audio (only their digit)")
    ap.add_argument("--inband", action="store_true", help='box setting dtmf_inband = "always" (Goertzel on)')
    ap.add_argument("--rt", action="store_true", help="run the box SCHED_FIFO (chrt -f 10)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the box during the window into DIR")
    ap.add_argument("--quick", action="store_true", help="smoke check: N=10, 1 run, 3 s window")
    args = ap.parse_args()
    if args.quick:
        args.n, args.runs, args.window, args.settle = [10], 1, 3.0, 1.0
    use_venv_commands()
    pin_self(PEER_CORE)
    header(f"IVR pacing: box playing a 60 s greeting to N callers, {args.window:g} s window, {args.runs} runs per N"
           + (", callers send audio" if not args.no_audio else ", callers silent")
           + (", in-band DTMF detection on" if args.inband else "") + (", box SCHED_FIFO" if args.rt else ""))
    greeting = speech_like(60.0)
    menu = speech_like(2.0, seed=3)
    from appliance.media.g711 import ulaw_encode
    talk = speech_like(10.0, seed=4)
    frames = [ulaw_encode(talk[i:i + 320]) for i in range(0, len(talk), 320)]
    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ivr-pacing-") as tmp:
        for n in args.n:
            results[n] = [one_run(n, args, Path(tmp), greeting, menu, frames, i) for i in range(args.runs)]
    print()
    print(f"medians of {args.runs} runs; pacing from kernel receive times (SO_TIMESTAMPNS) of the box's audio packets"
          f" in the window; dev = |interval - 20 ms|; late = behind the stream's own 20 ms clock")
    rows = []
    for n, runs in results.items():
        m = {k: median([float(r[k]) for r in runs]) for k in runs[0]}
        missed = [n - r["heard"] for r in runs]
        rows.append([n, f"{int(m['up'])}/{n}", m["cpu"], m["cpu"] / n, m["kernel"], m["mean"], m["dev_p50"],
                     m["dev_p99"], m["dev_max"], m["over_2ms"], m["late_p99"], m["late_max"], int(m["missing"]),
                     int(m["skipped"]), f"{int(median(missed))}/{n} (max {max(missed)})", int(m["other_keys"]),
                     m["rss"], m["runq"], m["other"]])
    print(table(["callers", "up", "box CPU %", "CPU %/caller", "kernel %", "mean interval ms", "dev p50 ms",
                 "dev p99 ms", "dev max ms", "dev > 2 ms %", "late p99 ms", "late max ms", "missing pkts",
                 "frames skipped", "DTMF missed", "false keys", "RSS MB", "runq wait %", "other core0 %"], rows))


if __name__ == "__main__":
    main()
