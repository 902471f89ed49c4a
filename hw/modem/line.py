"""ModemLine: a GSM or analog phone line behind a modem, as events and a few call-control calls."""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

import serial

from . import dialects, urc
from .at import CTRL_Z, AtChannel
from .audio import AudioPump
from .backoff import Backoff
from .dle import DleDecoder
from .errors import ModemError
from .call_flow import END_WAIT, CallFlow, _Call
from .link import SerialLink

log = logging.getLogger("switchboard.hw.modem")

STATES = ("down", "initialising", "ready", "incoming", "dialing", "alerting", "connected")
_NUMBER = re.compile(r"\+?[0-9*#]{1,40}")
_DIGITS = re.compile(r"[0-9*#A-D]+")


@dataclass(frozen=True)
class LineEvent:
    """Something the line reports: kind names it, data carries the details."""

    kind: str
    data: dict


class ModemLine(CallFlow):
    """One phone line on a modem (sim7600, ec25 or v253) with reconnects in the background."""

    def __init__(self, port: str, dialect: str, *, loop: asyncio.AbstractEventLoop,
                 on_event: Callable[[LineEvent], None], on_audio: Callable[[bytes], None],
                 audio_port: str | None = None, baudrate: int = 115200,
                 retry_min: float = 1.0, retry_max: float = 30.0, poll_signal: float = 30.0,
                 end_wait: float = END_WAIT) -> None:
        self.port = port
        self.dialect = dialects.get(dialect)
        self.audio_port = audio_port
        self.baudrate = baudrate
        self.state = "down"
        self._loop = loop
        self._on_event = on_event
        self._on_audio = on_audio
        self._retry = Backoff(retry_min, retry_max)
        self._poll_every = poll_signal
        self._end_wait = end_wait  # after "released", how long the result code giving the reason may take
        self._pump = AudioPump(loop, on_audio)
        self._decoder = DleDecoder()
        self._link: SerialLink | None = None
        self._audio_link: SerialLink | None = None
        self._channel: AtChannel | None = None
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._call: _Call | None = None
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self.csq: int | None = None
        self.rssi_dbm: int | None = None
        self.operator: str | None = None
        self.sim: str | None = None
        self.tech: str | None = None
        self.last_error: str | None = None
        self._registered: dict[str, bool] = {}

    # -- public interface -------------------------------------------------------------------

    async def start(self) -> None:
        """Start opening the port; returns at once, the rest happens in the background."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        """Hang up any call, close the port and stop reconnecting."""
        self._stopping = True
        if self._call is not None and self._link is not None:
            try:
                await asyncio.wait_for(self.hangup(), 3.0)
            except (ModemError, asyncio.TimeoutError):
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        for task in list(self._tasks):
            task.cancel()
        self._teardown()
        self._set_state("down")

    async def answer(self) -> None:
        """Answer the ringing call; "answered" follows."""
        call = self._call
        if call is None or call.outgoing or self.state != "incoming":
            raise ModemError(f"no incoming call to answer (line is {self.state})")
        ch = self._need_channel()
        call.closing = False
        for cmd in self.dialect.answer:
            r = await ch.command(cmd, 10.0, finals=frozenset({"NO CARRIER", "VCON"}))
            if r.final == "NO CARRIER":
                self._end_call("remote", call)
                return
        self._connected(call)

    async def dial(self, number: str) -> None:
        """Place a call; the outcome arrives as "alerting", "answered" or "ended" events."""
        if self.state != "ready":
            raise ModemError(f"line is {self.state}, cannot dial")
        if not _NUMBER.fullmatch(number):
            raise ModemError(f"not a number to dial: {number!r}")
        call = _Call(outgoing=True, number=number)
        self._call = call
        self._set_state("dialing")
        if self.dialect.gsm:
            await self._dial_gsm(call)
        else:
            self._spawn(self._dial_analog(call))

    async def hangup(self) -> None:
        """Hang up the current call (any state); "ended" with reason "local" follows."""
        call = self._call
        if call is None:
            return
        call.closing = True
        ch = self._channel
        try:
            if ch is not None and self._link is not None:
                if self.dialect.gsm:
                    await self._stop_audio(call)
                    for cmd in self.dialect.hangup:
                        await ch.command(cmd, 5.0, check=False)
                else:
                    if call.dialing:
                        ch.write_raw(b"\r")  # any character aborts a dial in progress
                    await self._stop_audio(call)
                    for cmd in self.dialect.hangup:
                        await ch.command(cmd, 5.0, check=False)
        except ModemError as exc:
            log.warning("hangup: %s", exc)
        self._end_call("local", call)

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF tones to the far end of the connected call."""
        digits = digits.upper()
        if not _DIGITS.fullmatch(digits):
            raise ModemError(f"not DTMF digits: {digits!r}")
        call = self._call
        if call is None or self.state != "connected":
            raise ModemError("no connected call")
        ch = self._need_channel()
        streaming = ch.streaming
        if streaming:
            await self._stop_audio(call)  # V.253: +VTS is a command; leave the stream for it
        try:
            for cmd in self.dialect.dtmf(digits):
                await ch.command(cmd, 5.0 + len(digits))
        finally:
            if streaming and self._call is call and not call.closing:
                await self._start_audio(call)

    async def send_sms(self, number: str, text: str) -> str:
        """Send a text message (text mode); returns the message reference."""
        if not self.dialect.gsm:
            raise ModemError(f"{self.dialect.name} cannot send SMS")
        if self.state in ("down", "initialising"):
            raise ModemError(f"line is {self.state}")
        if not _NUMBER.fullmatch(number):
            raise ModemError(f"not a number: {number!r}")
        ch = self._need_channel()
        body = text.replace("\x1a", "").replace("\x1b", "").encode("ascii", "replace") + CTRL_Z
        try:
            r = await ch.command(f'AT+CMGS="{number}"', 60.0, prompt_data=body, check=False)
        except ModemError as exc:
            ch.write_raw(b"\x1b")  # leave text entry if the prompt came late
            self._emit("sms", ok=False, error=str(exc))
            raise
        ref = r.value("+CMGS")
        if r.final != "OK" or ref is None:
            self._emit("sms", ok=False, error=r.final)
            raise ModemError(f"SMS to {number} failed: {r.final}", r.final)
        self._emit("sms", ok=True, reference=ref)
        return ref

    @property
    def audio_running(self) -> bool:
        """Whether the call's audio path is up: what send_audio() queues goes out from now on."""
        return self._pump.running

    def send_audio(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz mono audio for the far end (at most 200 ms is kept)."""
        self._pump.push(pcm)

    def status(self) -> dict[str, Any]:
        """A snapshot for dashboards and the status command."""
        return {"state": self.state, "csq": self.csq, "rssi_dbm": self.rssi_dbm,
                "registered": self.registered, "operator": self.operator, "tech": self.tech,
                "sim": self.sim, "port": self.port, "audio_port": self.audio_port,
                "dialect": self.dialect.name, "last_error": self.last_error}

    @property
    def registered(self) -> bool:
        """Registered on the network (an analog line counts once the modem answers)."""
        return any(self._registered.values())

    async def at(self, cmd: str, timeout: float = 5.0) -> list[str]:
        """Run one AT command (diagnostics); returns its information lines, ModemError on error."""
        if self._channel is None or self._channel.streaming:
            raise ModemError(f"line is {self.state}")
        return (await self._channel.command(cmd, timeout)).lines

    # -- connection life cycle ----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (ModemError, OSError, serial.SerialException, ValueError) as exc:
                self._fault(str(exc))
            except Exception as exc:
                log.exception("modem line %s failed", self.port)
                self._fault(f"internal error: {exc}")
            self._teardown()
            if self._stopping:
                break
            await asyncio.sleep(self._retry.next())

    async def _session(self) -> None:
        self._lost = asyncio.Event()
        self._link = SerialLink(self.port, self.baudrate, self._loop, self._on_data, self._on_lost)
        self._channel = AtChannel(self._link.write, self._on_urc)
        self._set_state("initialising")
        await self._initialise()
        self._retry.reset()
        self.last_error = None
        self._set_state("ready")
        self._emit_signal()
        if self.dialect.gsm and self._poll_every > 0:
            self._spawn(self._poll_loop())
        await self._lost.wait()
        raise ModemError(f"line down: {self._lost_reason}")

    async def _initialise(self) -> None:
        ch = self._need_channel()
        for attempt in range(3):  # a modem that just appeared may still be booting
            try:
                await ch.command("AT", 2.0)
                break
            except ModemError:
                self._check_lost()
        else:
            raise ModemError(f"{self.port}: modem does not answer AT")
        for cmd in self.dialect.init:
            try:
                await ch.command(cmd, 5.0)
            except ModemError as exc:
                self._check_lost()
                log.warning("%s: init %s failed: %s", self.port, cmd, exc)
        if not self.dialect.gsm:
            self._registered = {"line": True}
            self.operator = "analog line"
            return
        r = await ch.command("AT+CPIN?", 5.0, check=False)
        self.sim = r.value("+CPIN") if r.final == "OK" else r.final
        if self.sim != "READY":
            raise ModemError(f"SIM not ready: {self.sim}")
        await self._query_signal()

    def _check_lost(self) -> None:
        if self._lost is not None and self._lost.is_set():
            raise ModemError(f"line down: {self._lost_reason}")

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        if self._channel is not None:
            self._channel.close(ModemError(f"line down: {reason}"))
        if self._lost is not None:
            self._lost.set()

    def _fault(self, message: str) -> None:
        repeated = message == self.last_error
        log.log(logging.INFO if repeated else logging.WARNING, "modem line %s: %s", self.port, message)
        self.last_error = message
        call = self._call
        self._set_state("down")
        if not repeated or call is not None:  # a retry failing the same way is no news
            self._emit("error", message=message)
        if call is not None:
            self._call = None
            self._cancel_timers(call)
            self._emit("ended", reason="line-down")

    def _teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._pump.stop()
        for link in (self._audio_link, self._link):
            if link is not None:
                link.close()
        self._audio_link = self._link = None
        if self._channel is not None:
            self._channel.close(ModemError("line down"))
            self._channel = None
        if self._call is not None:
            self._cancel_timers(self._call)
            self._call = None
        self._registered = {}

    def _on_data(self, data: bytes) -> None:
        if self._channel is not None:
            self._channel.feed(data)

    def _need_channel(self) -> AtChannel:
        if self._channel is None:
            raise ModemError(f"line is {self.state}")
        return self._channel

    # -- signal and registration ----------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_every)
            try:
                await self._query_signal()
                self._emit_signal()
            except ModemError as exc:
                log.warning("%s: signal poll failed: %s", self.port, exc)

    async def _query_signal(self) -> None:
        ch = self._need_channel()
        r = await ch.command("AT+CSQ", 5.0)
        for line in r.lines:
            self._apply(urc.parse(line))
        for query in self.dialect.registration:
            r = await ch.command(query, 5.0, check=False)
            for line in r.lines:
                self._apply(urc.parse(line))
        r = await ch.command("AT+COPS?", 5.0, check=False)
        for line in r.lines:
            self._apply(urc.parse(line))

    def _apply(self, item: urc.Parsed | None) -> None:
        if isinstance(item, urc.Signal):
            self.csq, self.rssi_dbm = item.csq, item.rssi_dbm
        elif isinstance(item, urc.Registration):
            self._registered[item.kind] = item.registered
            if item.registered and item.tech:
                self.tech = item.tech
        elif isinstance(item, urc.Operator):
            self.operator = item.name or None

    def _emit_signal(self) -> None:
        self._emit("signal", csq=self.csq, rssi_dbm=self.rssi_dbm, registered=self.registered,
                   operator=self.operator)

    # -- unsolicited result codes ---------------------------------------------------------------

    def _on_urc(self, line: str) -> None:
        item = urc.parse(line)
        if item is None:
            log.info("%s: ignored line from modem: %r", self.port, line[:120])
            return
        if isinstance(item, (urc.Signal, urc.Registration, urc.Operator)):
            before = self.registered
            self._apply(item)
            if self.registered != before and self.state not in ("down", "initialising"):
                self._emit_signal()
        elif isinstance(item, urc.Ring):
            self._on_ring()
        elif isinstance(item, urc.CallerId):
            call = self._incoming_call()
            if call is not None:
                call.number, call.name = item.number, item.name or call.name
                self._announce(call)
        elif isinstance(item, urc.CidLine):
            self._on_cid_line(item)
        elif isinstance(item, urc.CallState):
            self._on_call_state(item)
        elif isinstance(item, urc.VoiceCall):
            call = self._call
            if call is not None and item.event == "begin":
                self._connected(call)
            elif call is not None:
                self._end_soon(call)
        elif isinstance(item, urc.CallEnded):
            self._on_call_ended(item.reason)
        else:
            log.debug("%s: unsolicited %r", self.port, line)

    async def _commands(self, cmds: tuple[str, ...], check: bool = False) -> None:
        ch = self._channel
        for cmd in cmds:
            if ch is None:
                return
            await ch.command(cmd, 5.0, check=check)

    # -- small helpers ---------------------------------------------------------------------------------

    def _timer(self, call: _Call, name: str, delay: float, fn: Callable[[], None]) -> None:
        old = call.timers.pop(name, None)
        if old is not None:
            old.cancel()
        call.timers[name] = self._loop.call_later(delay, fn)

    @staticmethod
    def _cancel_timers(call: _Call) -> None:
        for handle in call.timers.values():
            handle.cancel()
        call.timers.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, ModemError):
                log.warning("%s: %s", self.port, exc)
            else:
                log.error("%s: background task failed", self.port, exc_info=exc)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._emit("state", state=state)

    def _emit(self, kind: str, **data: Any) -> None:
        try:
            self._on_event(LineEvent(kind, data))
        except Exception:
            log.exception("modem line event handler failed on %s", kind)
