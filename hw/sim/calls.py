"""The simulated network's calls: ringing in, dialling out, answering, hanging up and their reports."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass


from .protocol import OUTCOMES, _OUTCOME_WORD, _DSCI

log = logging.getLogger("switchboard.hw.sim")




@dataclass
class SimCall:
    """The call the simulated network has up."""

    outgoing: bool
    number: str
    name: str = ""
    state: str = "incoming"  # incoming | dialing | alerting | active
    started: float = 0.0


class SimCalls:
    """Call handling of ModemSimulator (which owns the state it reads and writes)."""

    @staticmethod
    def _clcc_stat(call: SimCall | None) -> int:
        return {"active": 0, "dialing": 2, "alerting": 3, "incoming": 4}.get(call.state if call else "", 6)

    def _clcc_line(self, call: SimCall, stat: int) -> str:
        kind = 145 if call.number.startswith("+") else 129
        return f'+CLCC: 1,{0 if call.outgoing else 1},{stat},0,0,"{call.number}",{kind},"{call.name}"'

    def _report(self, call: SimCall, stat: int) -> None:
        """The dialect's call status URC (+CLCC on SIMCom, ^DSCI on Quectel) if enabled."""
        if self.dialect == "sim7600" and self.clcc_urc:
            self._urc(self._clcc_line(call, stat))
        elif self.dialect == "ec25" and self.dsci:
            kind = 145 if call.number.startswith("+") else 129
            self._urc(f"^DSCI: 1,{0 if call.outgoing else 1},{_DSCI[stat]},0,{call.number},{kind}")

    def _ring(self, number: str, name: str) -> None:
        if self._call is not None or self._port is None:
            log.info("simulator busy or unplugged; ring(%s) ignored", number)
            return
        call = self._call = SimCall(outgoing=False, number=number, name=name)
        if self.dialect != "v253":
            self._report(call, 4)
        self._ring_once(call, first=True)

    def _ring_once(self, call: SimCall, first: bool = False) -> None:
        if self._call is not call or call.state != "incoming":
            return
        self._urc("RING")
        if self.dialect == "v253":
            if first and self.vcid:
                self._after(0.1, lambda: self._caller_id(call))
        elif self.clip:
            kind = 145 if call.number.startswith("+") else 129
            self._urc(f'+CLIP: "{call.number}",{kind},"",0,"{call.name}",0')
        self._after(self.ring_interval, lambda: self._ring_once(call))

    def _caller_id(self, call: SimCall) -> None:
        if self._call is not call or call.state != "incoming":
            return
        now = time.localtime()
        self._urc(time.strftime("DATE = %m%d", now))
        self._urc(time.strftime("TIME = %H%M", now))
        self._urc(f"NMBR = {call.number}")
        if call.name:
            self._urc(f"NAME = {call.name}")

    def _answer(self, ata: bool) -> None:
        call = self._call
        if self.dialect == "v253":
            self.off_hook = True
            if call is not None and call.state == "incoming":
                self._connect(call)
                self._final("VCON" if ata else "OK")
            else:
                self._final("OK" if not ata else "NO CARRIER")
            return
        if call is None or call.state != "incoming":
            self._final("NO CARRIER")
            return
        self._connect(call)
        self._final("OK")
        self._voice_begin(call)

    def _connect(self, call: SimCall) -> None:
        call.state = "active"
        call.started = time.monotonic()

    def _voice_begin(self, call: SimCall) -> None:
        if self.dialect == "sim7600":
            self._urc("VOICE CALL: BEGIN")
        self._report(call, 0)

    def _dial(self, rest: str) -> None:
        m = re.fullmatch(r"[TP]?([+0-9*#]+)(;?)", rest)
        if m is None:
            self._cme(50)
            return
        number, voice = m.group(1), bool(m.group(2))
        if self.dialect == "v253":
            if self._call is not None or self.fclass != 8:
                self._final("NO CARRIER")
                return
            call = self._call = SimCall(outgoing=True, number=number, state="alerting")
            self.off_hook = True
            self._dial_pending = call
            self._after(self.answer_after, lambda: self._dial_outcome(call))
            return
        if self.sim != "READY":
            self._cme({"ABSENT": 10, "SIM PIN": 11, "SIM PUK": 12}[self.sim])
            return
        if self._call is not None:
            self._cme(3)
            return
        if not voice or not self._registered():
            self._final("NO CARRIER")
            return
        call = self._call = SimCall(outgoing=True, number=number, state="dialing")
        self._final("OK")
        self._report(call, 2)
        self._after(min(0.2, self.answer_after / 2), lambda: self._alerting(call))
        self._after(self.answer_after, lambda: self._dial_outcome(call))

    def _alerting(self, call: SimCall) -> None:
        if self._call is call and call.state == "dialing":
            call.state = "alerting"
            self._report(call, 3)

    def _dial_outcome(self, call: SimCall) -> None:
        if self._call is not call or call.state not in ("dialing", "alerting"):
            return
        outcome = self.on_dial if self.on_dial in OUTCOMES else "answer"
        if self.dialect == "v253":
            self._dial_pending = None
            if outcome == "answer":
                self._connect(call)
                self._final("VCON")
            else:
                self._call = None
                self.off_hook = False
                self._final(_OUTCOME_WORD[outcome])
            return
        if outcome == "answer":
            self._connect(call)
            self._voice_begin(call)
            return
        self._call = None
        self._report(call, 6)
        self._urc(_OUTCOME_WORD[outcome])

    def _end_gsm(self, call: SimCall, word: str | None) -> None:
        self._call = None
        self.pcm_on = False
        self._report(call, 6)
        if self.dialect == "sim7600" and call.state == "active":
            secs = int(time.monotonic() - call.started)
            self._urc(f"VOICE CALL: END: {secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}")
        if word:
            self._urc(word)

    def _local_hangup(self) -> None:
        call = self._call
        if self.dialect == "v253":
            self._call = None
            self._dial_pending = None
            self.off_hook = False
            self._far_gone = False
            return
        if call is not None:
            self._end_gsm(call, None)

    def _remote_hangup(self) -> None:
        call = self._call
        if call is None:
            return
        if self.dialect != "v253":
            self._end_gsm(call, "NO CARRIER")
            return
        self._call = None
        if call.state == "active" and self._stream is not None:
            self._far_gone = True  # the line now carries busy tone; the modem reports DLE b
            self._busy_signal()
        elif self._dial_pending is call:
            self._dial_pending = None
            self.off_hook = False
            self._final("NO CARRIER")

    def _busy_signal(self) -> None:
        if self._far_gone and self._stream in ("duplex", "rx"):
            self._stream_events.append("b")
            self._after(1.0, self._busy_signal)

    # -- audio -------------------------------------------------------------------------------------------
