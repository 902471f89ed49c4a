"""A modem line's calls: ringing in, dialling out, the audio path and how each call ends."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import serial

from . import dialects, urc
from .audio import s16_to_u8, u8_to_s16
from .dle import END_DUPLEX, HANGUP_EVENTS, DleDecoder, escape
from .errors import ModemError
from .link import SerialLink


log = logging.getLogger("switchboard.hw.modem")
END_WAIT = 1.0  # after a "released" state, how long to wait for the result code giving the reason


@dataclass
class _Call:
    outgoing: bool
    number: str = ""
    name: str = ""
    announced: bool = False
    alerting: bool = False
    answered: bool = False
    closing: bool = False  # we are hanging up: end URCs are ours
    rings: int = 0
    audio: bool = False
    dialing: bool = False  # V.253: ATD still waiting for its result
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


class CallFlow:
    """The call half of ModemLine (which owns the port, the AT channel and the state these use)."""

    def _incoming_call(self) -> _Call | None:
        """The ringing call, created if the line was idle; None if busy with another call."""
        call = self._call
        if call is None and self.state == "ready":
            call = self._call = _Call(outgoing=False)
            self._set_state("incoming")
            self._timer(call, "cid", self.dialect.cid_wait, lambda: self._announce(call))
        if call is None or call.outgoing or call.answered:
            return None
        return call

    def _on_ring(self) -> None:
        call = self._incoming_call()
        if call is None:
            log.info("%s: RING while %s; ignored", self.port, self.state)
            return
        call.rings += 1
        if call.rings >= 2:  # caller ID comes with or right after the first RING
            self._announce(call)
        if self.dialect.ring_gone:
            self._timer(call, "ring", self.dialect.ring_gone, lambda: self._end_call("remote", call))

    def _on_cid_line(self, item: urc.CidLine) -> None:
        call = self._incoming_call()
        if call is None:
            return
        if item.tag in ("NMBR", "DDN_NMBR"):
            call.number = item.value
        elif item.tag == "NAME":
            call.name = item.value
        if call.number and item.tag == "NAME":
            self._announce(call)
        elif call.number:
            self._timer(call, "cid", 0.5, lambda: self._announce(call))  # NAME may follow

    def _on_call_state(self, item: urc.CallState) -> None:
        call = self._call
        if item.stat == urc.STAT_INCOMING and not item.outgoing:
            call = self._incoming_call()
            if call is not None and item.number and not call.number:
                call.number = item.number
            return
        if call is None:
            return
        if item.stat == urc.STAT_ALERTING and call.outgoing and not call.alerting and not call.answered:
            call.alerting = True
            self._set_state("alerting")
            self._emit("alerting")
        elif item.stat == urc.STAT_ACTIVE:
            self._connected(call)
        elif item.stat == urc.STAT_RELEASED:
            self._end_soon(call)

    def _on_call_ended(self, reason: str) -> None:
        call = self._call
        if call is None or call.closing:
            return
        if call.answered or not call.outgoing:
            reason = "remote"
        self._end_call(reason, call)

    def _end_soon(self, call: _Call) -> None:
        """The call was released; the result code with the reason normally follows at once."""
        if call.closing:
            return
        reason = "remote" if call.answered or not call.outgoing else "no-carrier"
        self._timer(call, "end", self._end_wait, lambda: self._end_call(reason, call))

    # -- call transitions -------------------------------------------------------------------------

    def _announce(self, call: _Call) -> None:
        if call.announced or self._call is not call:
            return
        call.announced = True
        handle = call.timers.pop("cid", None)
        if handle is not None:
            handle.cancel()
        self._emit("incoming", number=call.number, name=call.name)

    def _connected(self, call: _Call) -> None:
        if call.answered or self._call is not call:
            return
        call.answered = True
        if not call.outgoing and not call.announced:
            self._announce(call)
        self._cancel_timers(call)
        self._set_state("connected")
        self._emit("answered")
        self._spawn(self._start_audio(call))

    def _end_call(self, reason: str, call: _Call) -> None:
        if self._call is not call:
            return
        self._call = None
        self._cancel_timers(call)
        self._pump.stop()
        if self._audio_link is not None:
            self._audio_link.close()
            self._audio_link = None
        if call.audio and not call.closing and self.dialect.gsm and self._channel is not None:
            self._spawn(self._commands(self.dialect.audio_off))
        self._set_state("ready" if self._link is not None else "down")
        self._emit("ended", reason=reason)

    async def _dial_gsm(self, call: _Call) -> None:
        ch = self._need_channel()
        try:
            r = await ch.command(self.dialect.dial(call.number), 15.0, finals=dialects.DIAL_RESULTS,
                                 check=False)
        except ModemError as exc:
            self._emit("error", message=str(exc))
            self._end_call("failed", call)
            return
        if r.final == "OK":
            return  # the network's progress comes as URCs
        ended = urc.parse(r.final)
        if isinstance(ended, urc.CallEnded):
            self._end_call(ended.reason, call)
        else:
            self._emit("error", message=f"dial {call.number}: {r.final}")
            self._end_call("failed", call)

    async def _dial_analog(self, call: _Call) -> None:
        """V.253: ATD's final result is the outcome; the line gives no ringback signal."""
        ch = self._need_channel()
        call.dialing = True
        call.alerting = True
        self._set_state("alerting")
        self._emit("alerting")
        try:
            r = await ch.command(self.dialect.dial(call.number), 90.0, finals=dialects.DIAL_RESULTS,
                                 check=False)
        except ModemError as exc:
            if not call.closing:
                self._emit("error", message=str(exc))
                self._end_call("failed", call)
            return
        finally:
            call.dialing = False
        if call.closing or self._call is not call:
            return
        if r.final in ("VCON", "OK", "CONNECT"):
            self._connected(call)
            return
        ended = urc.parse(r.final)
        self._end_call(ended.reason if isinstance(ended, urc.CallEnded) else "failed", call)

    # -- audio ------------------------------------------------------------------------------------------

    async def _start_audio(self, call: _Call) -> None:
        ch = self._channel
        if ch is None or self._call is not call or call.closing:
            return
        try:
            if self.dialect.audio_port:
                if self.audio_port is None:
                    log.warning("%s: no audio port configured; call without audio", self.port)
                    return
                self._audio_link = SerialLink(self.audio_port, self.baudrate, self._loop,
                                              self._pump.feed, self._on_audio_lost)
                await self._commands(self.dialect.audio_on, check=True)
                call.audio = True
                if self._call is call and self._audio_link is not None:
                    self._pump.start(self._audio_link.write)
            else:
                self._decoder = DleDecoder()
                r = await ch.command(self.dialect.stream_cmd, 5.0, finals=frozenset({"CONNECT"}),
                                     stream=self._on_stream)
                if r.final != "CONNECT":
                    raise ModemError(f"{self.dialect.stream_cmd}: {r.final}")
                call.audio = True
                if self._call is call and not call.closing:
                    self._pump.start(self._write_stream)
        except (ModemError, OSError, serial.SerialException) as exc:
            log.warning("%s: audio not started: %s", self.port, exc)
            self._emit("error", message=f"audio: {exc}")

    async def _stop_audio(self, call: _Call) -> None:
        self._pump.stop()
        if self._audio_link is not None:
            self._audio_link.close()
            self._audio_link = None
        ch = self._channel
        if ch is None:
            return
        if ch.streaming:
            try:
                await ch.command("<DLE>^", 3.0, raw=END_DUPLEX)
            except ModemError as exc:
                log.warning("%s: leaving the voice stream: %s", self.port, exc)
                ch.end_stream()
        elif call.audio and self.dialect.gsm:
            await self._commands(self.dialect.audio_off)
        call.audio = False

    def _write_stream(self, frame: bytes) -> None:
        ch, link = self._channel, self._link
        if ch is not None and link is not None and ch.streaming:
            link.write(escape(s16_to_u8(frame)))

    def _on_stream(self, data: bytes) -> bytes | None:
        res = self._decoder.feed(data)
        if res.audio:
            self._pump.feed(u8_to_s16(res.audio))
        for ev in res.events:
            if ev.digit:
                self._emit("dtmf", digit=ev.digit)
            elif ev.code in HANGUP_EVENTS:
                self._spawn(self._remote_hangup_analog())
            else:
                log.debug("%s: voice stream event %s", self.port, ev.name)
        if res.ended:
            self._pump.stop()  # command mode again: audio bytes would be taken as commands
            return res.rest
        return None

    async def _remote_hangup_analog(self) -> None:
        call = self._call
        if call is None or call.closing:
            return
        call.closing = True
        try:
            await self._stop_audio(call)
            await self._commands(self.dialect.hangup)
        except ModemError as exc:
            log.warning("%s: hangup after the far end left: %s", self.port, exc)
        self._end_call("remote", call)

    def _on_audio_lost(self, reason: str) -> None:
        self._pump.stop()
        self._audio_link = None
        link = self._link
        # An unplug takes both ports; report the audio port alone only if the AT port stays.
        self._loop.call_later(0.5, lambda: self._link is link and link is not None
                              and self._emit("error", message=f"audio port lost: {reason}"))
