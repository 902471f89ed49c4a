"""A modem on a pty that speaks SIM7600, EC25 or V.253, scriptable from Python, on its own thread."""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections import deque
from typing import Callable

from ..modem.audio import s16_to_u8, u8_to_s16
from ..modem.dle import DleDecoder, encode_event, escape
from . import sound
from .protocol import DIALECTS, SIM_STATES, FRAME, TICK, _CMD, _CME_TEXT
from .calls import SimCall, SimCalls
from .commands import AtCommands
from .pty import PtyPort

log = logging.getLogger("switchboard.hw.sim")



class ModemSimulator(AtCommands, SimCalls):
    """Behaves like the modem on a pty at path (audio on path + "-audio" for the GSM dialects)."""

    def __init__(self, dialect: str, path: str, *, signal_csq: int = 20, sim: str = "READY",
                 ring_interval: float = 3.0, answer_after: float = 0.5, on_dial: str = "answer") -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})")
        if sim not in SIM_STATES:
            raise ValueError(f"sim must be one of {SIM_STATES}")
        self.dialect = dialect
        self.path = path
        self.audio_path = None if dialect == "v253" else path + "-audio"
        self.signal_csq = signal_csq
        self.sim = sim
        self.ring_interval = ring_interval
        self.answer_after = answer_after
        self.on_dial = on_dial
        self._lock = threading.RLock()
        self._commands: list[str] = []
        self._sms: list[tuple[str, str]] = []
        self._received = bytearray()
        self._dtmf_received: list[str] = []
        self._posted: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self._thread: threading.Thread | None = None
        self._running = False
        self._port: PtyPort | None = None
        self._audio: PtyPort | None = None
        self._play = bytearray()
        self._played = 0
        self._markers: list[tuple[int, str]] = []
        self._next_tick = 0.0
        self._reset_device()

    # -- public, thread-safe ---------------------------------------------------------------------------

    @property
    def commands(self) -> list[str]:
        """The AT commands received so far (a copy)."""
        with self._lock:
            return list(self._commands)

    @property
    def sms(self) -> list[tuple[str, str]]:
        """Text messages sent: (number, text)."""
        with self._lock:
            return list(self._sms)

    @property
    def dtmf_received(self) -> list[str]:
        """DTMF digits the box sent with +VTS."""
        with self._lock:
            return list(self._dtmf_received)

    @property
    def call_state(self) -> str | None:
        """The simulated call's state, None when idle."""
        call = self._call
        return call.state if call else None

    @property
    def audio_on(self) -> bool:
        """Whether audio is flowing (call connected and audio enabled)."""
        return self._audio_active()

    def paths(self) -> list[str]:
        """The paths the box should open."""
        return [self.path] + ([self.audio_path] if self.audio_path else [])

    def start(self) -> None:
        """Create the pty(s) and start answering."""
        if self._thread is not None:
            return
        self._running = True
        self._plug()
        self._thread = threading.Thread(target=self._loop, name=f"sim-{self.dialect}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and remove the pty(s)."""
        if self._thread is None:
            return
        self._do(self._unplug)
        self._running = False
        self._wake()
        self._thread.join(5)
        self._thread = None
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def ring(self, number: str, name: str = "") -> None:
        """An incoming call with caller ID; it rings until answered or hangup_remote()."""
        self._do(lambda: self._ring(number, name))

    def hangup_remote(self) -> None:
        """The far end hangs up (or gives up ringing)."""
        self._do(self._remote_hangup)

    def play(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz mono PCM to stream to the box while a call has audio."""
        self._do(lambda: self._queue(pcm))

    def play_wav(self, path: str) -> None:
        """Queue a WAV file (converted to 8 kHz mono)."""
        self.play(sound.read_wav(path))

    def play_tone(self, freqs: tuple[float, ...] | list[float] | float, seconds: float) -> None:
        """Queue a tone (one frequency or several)."""
        self.play(sound.tone(freqs, seconds))

    def play_dtmf(self, digits: str) -> None:
        """Queue DTMF tones; a V.253 modem also reports each as a DLE event."""
        def queue() -> None:
            for d in digits.upper():
                self._markers.append((self._played + len(self._play), d))
                self._queue(sound.dtmf(d))
        self._do(queue)

    def received(self) -> bytes:
        """The PCM the box sent during calls (16-bit 8 kHz mono)."""
        with self._lock:
            return bytes(self._received)

    def clear_received(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self._received.clear()

    def save_received(self, wav_path: str) -> None:
        """Write what the box sent to a WAV file."""
        sound.write_wav(wav_path, self.received())

    def unplug(self) -> None:
        """Close the pty(s) and remove the symlink(s), like pulling the USB plug."""
        self._do(self._unplug)

    def replug(self) -> None:
        """A fresh device on new ptys behind the same symlink(s)."""
        self._do(self._plug)

    def inject(self, data: bytes) -> None:
        """Send raw bytes to the box (garbage, a stray URC...)."""
        self._do(lambda: self._port and self._port.write(data))

    def set_signal(self, csq: int) -> None:
        """Change the signal (99 = none: the network is lost)."""
        self._do(lambda: self._set_signal(csq))

    # -- the thread --------------------------------------------------------------------------------------

    def _do(self, fn: Callable[[], object]) -> None:
        if self._thread is None or threading.current_thread() is self._thread:
            with self._lock:
                fn()
            return
        done = threading.Event()
        self._posted.append((fn, done))  # type: ignore[arg-type]
        self._wake()
        done.wait(5)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _drain_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except OSError:
            pass

    def _loop(self) -> None:
        self._next_tick = time.monotonic()
        while self._running:
            now = time.monotonic()
            deadline = self._next_tick
            if self._timers:
                deadline = min(deadline, self._timers[0][0])
            for key, _ in self._sel.select(max(0.0, deadline - now)):
                with self._lock:
                    key.data()
            while self._posted:
                fn, done = self._posted.popleft()
                with self._lock:
                    try:
                        fn()
                    except Exception:
                        log.exception("simulator action failed")
                done.set()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                with self._lock:
                    try:
                        fn()
                    except Exception:
                        log.exception("simulator timer failed")
            if now >= self._next_tick:
                with self._lock:
                    self._audio_tick()
                self._next_tick += TICK
                if self._next_tick < now - 0.1:
                    self._next_tick = now + TICK

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))
        self._wake()

    # -- device life cycle --------------------------------------------------------------------------------

    def _reset_device(self) -> None:
        """Power-on state: echo on, URCs off, PDU mode."""
        self.echo = True
        self.cmee = 0
        self.clip = False
        self.clcc_urc = False
        self.dsci = False
        self.creg = 0
        self.cereg = 0
        self.cmgf = 0
        self.fclass = 0
        self.vcid = 0
        self.vsm = "1,8000,0,0"
        self.off_hook = False
        self.pcm_on = False
        self._call: SimCall | None = None
        self._linebuf = bytearray()
        self._sms_to: str | None = None
        self._sms_buf = bytearray()
        self._stream: str | None = None  # "duplex" | "tx" | "rx" on V.253
        self._decoder = DleDecoder()
        self._stream_events: list[str] = []
        self._far_gone = False
        self._dial_pending: SimCall | None = None

    def _plug(self) -> None:
        if self._port is not None:
            return
        self._reset_device()
        self._port = PtyPort(self.path)
        self._sel.register(self._port.master, selectors.EVENT_READ, self._readable)
        if self.audio_path:
            self._audio = PtyPort(self.audio_path)
            self._sel.register(self._audio.master, selectors.EVENT_READ, self._audio_readable)

    def _unplug(self) -> None:
        for port in (self._port, self._audio):
            if port is not None:
                try:
                    self._sel.unregister(port.master)
                except (KeyError, ValueError):
                    pass
                port.close()
        self._port = self._audio = None
        self._reset_device()
        self._play.clear()
        self._markers.clear()

    # -- bytes in --------------------------------------------------------------------------------------

    def _readable(self) -> None:
        port = self._port
        if port is None:
            return
        data = port.read()
        if data:
            self._input(data)

    def _audio_readable(self) -> None:
        if self._audio is None:
            return
        data = self._audio.read()
        if data and self._audio_active():
            self._received += data

    def _input(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._stream is not None:
                res = self._decoder.feed(data[i:])
                if res.audio and self._stream in ("duplex", "tx"):
                    self._received += u8_to_s16(res.audio)
                ends = [e for e in res.events if e.code in "^!"]
                if res.ended or ends:
                    self._end_stream()
                    data, i = (res.rest if res.ended else b""), 0
                    continue
                return
            if self._dial_pending is not None:  # any character aborts a dial in progress
                self._dial_pending = None
                self._call = None
                self.off_hook = False
                self._final("NO CARRIER")
                i += 1
                continue
            b = data[i]
            i += 1
            if self._sms_to is not None:
                self._sms_byte(b)
                continue
            if self.echo:
                self._send(bytes([b]))
            if b == 0x0D:
                line = self._linebuf.decode("ascii", "replace").strip()
                self._linebuf.clear()
                if line[:2].upper() == "AT":
                    self._command(line)
            elif b == 0x08:
                del self._linebuf[-1:]
            elif b != 0x0A:
                self._linebuf.append(b)
                if len(self._linebuf) > 1024:
                    self._linebuf.clear()

    def _sms_byte(self, b: int) -> None:
        if b == 0x1A:
            number, text = self._sms_to, self._sms_buf.decode("ascii", "replace")
            self._sms_to = None
            self._sms_buf.clear()
            if not self._registered():
                self._send(b"\r\n+CMS ERROR: 331\r\n")
                return
            self._sms.append((number or "", text))
            self._after(0.05, lambda: self._send(f"\r\n+CMGS: {len(self._sms)}\r\n\r\nOK\r\n".encode()))
        elif b == 0x1B:
            self._sms_to = None
            self._sms_buf.clear()
            self._send(b"\r\nOK\r\n")
        elif b == 0x0D:
            self._sms_buf += b"\n"
            self._send(b"\r\n> ")
        else:
            self._sms_buf.append(b)
            if self.echo:
                self._send(bytes([b]))

    # -- bytes out -------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._port is not None:
            self._port.write(data)

    def _final(self, text: str) -> None:
        self._send(f"\r\n{text}\r\n".encode())

    def _info(self, *lines: str) -> None:
        for line in lines:
            self._send(f"\r\n{line}\r\n".encode())
        self._final("OK")

    def _urc(self, text: str) -> None:
        if self._stream is None:
            self._send(f"\r\n{text}\r\n".encode())

    def _error(self) -> None:
        self._final("ERROR")

    def _cme(self, code: int) -> None:
        if self.dialect == "v253" or self.cmee == 0:
            self._error()
        elif self.cmee == 1:
            self._final(f"+CME ERROR: {code}")
        else:
            self._final(f"+CME ERROR: {_CME_TEXT.get(code, 'unknown')}")

    # -- commands --------------------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        self._commands.append(line)
        up = line.upper()
        if up in ("AT", "AT&F", "ATZ", "ATV1", "ATQ0", "AT&C1", "AT&D2"):
            if up in ("ATZ", "AT&F"):
                echo = self.echo
                self._reset_device()
                self.echo = echo
            self._final("OK")
        elif up in ("ATE0", "ATE1", "ATE"):
            self.echo = up == "ATE1"
            self._final("OK")
        elif up in ("ATI", "ATI0"):
            self._info(*self._identity())
        elif up in ("ATH", "ATH0") or up == "AT+CHUP" and self.dialect != "v253":
            self._final("OK")
            self._local_hangup()
        elif up == "ATA":
            self._answer(ata=True)
        elif up.startswith("ATD"):
            self._dial(up[3:])
        else:
            m = _CMD.match(up)
            if m is None:
                self._error()
                return
            name, form, args = m.group(1), m.group(2), m.group(3)
            kind = "test" if form == "=?" else "read" if form == "?" else "set" if form else "exec"
            handler = getattr(self, "_cmd_" + name[1:].lower(), None)
            allowed = _V253_CMDS if self.dialect == "v253" else _GSM_CMDS[self.dialect]
            if handler is None or name[1:] not in allowed:
                self._error()
                return
            original_args = line[len(line) - len(args):] if args is not None else None
            handler(kind, original_args)

    def _identity(self) -> tuple[str, ...]:
        if self.dialect == "sim7600":
            return ("Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H",
                    "Revision: LE20B04SIM7600G22 (simulated)")
        if self.dialect == "ec25":
            return ("Quectel", "EC25", "Revision: EC25EFAR06A06M4G (simulated)")
        return ("56000", "V.253 voice modem (simulated)")

    def _queue(self, pcm: bytes) -> None:
        self._play += pcm[: len(pcm) & ~1]

    def _audio_active(self) -> bool:
        if self.dialect == "v253":
            return self._stream is not None
        call = self._call
        return call is not None and call.state == "active" and self.pcm_on and self._audio is not None

    def _audio_tick(self) -> None:
        if not self._audio_active():
            return
        if self.dialect == "v253" and self._stream == "tx":
            return
        if self._far_gone:
            frame = sound.tone((480, 620), TICK)  # busy tone after the far end hung up
        else:
            frame = bytes(self._play[:FRAME])
            del self._play[:FRAME]
            frame += bytes(FRAME - len(frame))
            self._played += len(frame)
        if self.dialect != "v253":
            assert self._audio is not None
            self._audio.write(frame)
            return
        out = bytearray(escape(s16_to_u8(frame)))
        while self._markers and self._markers[0][0] < self._played:
            out += encode_event(self._markers.pop(0)[1])
        for code in self._stream_events:
            out += encode_event(code)
        self._stream_events.clear()
        self._send(bytes(out))


_GSM_COMMON = {"CMEE", "CLIP", "CLCC", "CREG", "CEREG", "CSQ", "COPS", "CPIN", "CMGF", "CSCS", "CMGS",
               "CHUP", "VTS", "CGMI", "CGMM"}
_GSM_CMDS = {"sim7600": _GSM_COMMON | {"CPCMREG"}, "ec25": _GSM_COMMON | {"QPCMV", "DSCI"}}
_V253_CMDS = {"FCLASS", "VCID", "VLS", "VSM", "VTR", "VTX", "VRX", "VTS", "VIT", "VSD", "VGR", "VGT",
              "VRA", "VRN"}
