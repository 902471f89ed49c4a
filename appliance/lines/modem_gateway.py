"""A GSM or FXO modem line joined to the box as a trunk: line events to SIP, PCM to RTP, both ways."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

from hw.modem.line import LineEvent, ModemLine

from ..bus import EventBus
from ..sip import sdp as sdp_mod
from ..sip import sdp_local
from ..sip.targets import TrunkPeer
from ..sip.transport import Peer
from .gateway_ua import GatewayUa, LineCall
from .modem_config import ModemConfig
from .rtp_bridge import RtpBridge

log = logging.getLogger("switchboard.lines.modem")

# Why a call on the line failed, as the SIP status the box records.
END_STATUS = {"busy": 486, "no-answer": 480, "no-carrier": 480, "line-down": 503, "remote": 480}


class ModemGateway:
    """One modem line: a ModemLine for the device, a GatewayUa for SIP, an RtpBridge for the audio."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cfg: ModemConfig, box: Peer, bus: EventBus,
                 host: str = "127.0.0.1") -> None:
        self.loop = loop
        self.cfg = cfg
        self.bus = bus
        self.host = host
        self.ua = GatewayUa(loop, cfg.name, box, self, host)
        self.rtp = RtpBridge(loop, self._to_line, host)
        self.line = ModemLine(cfg.port, cfg.dialect, loop=loop, on_event=self._line_event,
                              on_audio=self.rtp.from_line, audio_port=cfg.audio_port)
        self._session = random.randrange(1, 2**31)
        self._tasks: set[asyncio.Task] = set()

    @property
    def name(self) -> str:
        """The line's name, as call records show it."""
        return self.cfg.name

    async def start(self) -> None:
        """Bind SIP, then open the modem (it keeps retrying in the background if it is absent)."""
        await self.ua.start()
        await self.line.start()

    async def stop(self) -> None:
        """Hang up, close the device and the sockets."""
        if self.ua.call is not None:
            self.ua.hang_up(self.ua.call)
        await self.line.stop()
        await self.ua.stop()
        self.rtp.close()
        for task in list(self._tasks):
            task.cancel()

    def trunk_peer(self) -> TrunkPeer:
        """How the B2BUA reaches this line."""
        return TrunkPeer(self.cfg.name, Peer("UDP", self.host, self.ua.port), self.host, None, None,
                         self.cfg.inbound)

    def trunk_row(self) -> dict:
        """The dial plan's view of this line: a trunk with its prefix."""
        return {"name": self.cfg.name, "inbound": self.cfg.inbound, "outbound_prefix": self.cfg.outbound_prefix}

    def status(self) -> dict:
        """The modem's state, signal and last error."""
        return self.line.status()

    # --- the device -------------------------------------------------------------------
    def _line_event(self, event: LineEvent) -> None:
        kind, data = event.kind, event.data
        call = self.ua.call
        if kind == "state":
            self.bus.publish("modem.state", line=self.name, state=data.get("state"))
        elif kind == "signal":
            self.bus.publish("modem.signal", line=self.name, csq=data.get("csq"), registered=data.get("registered"),
                             rssi_dbm=data.get("rssi_dbm"), operator=data.get("operator"))
        elif kind == "incoming":
            self._incoming(str(data.get("number") or ""), str(data.get("name") or ""))
        elif kind == "alerting" and call is not None and call.direction == "out":
            self.ua.ringing(call)
        elif kind == "answered" and call is not None and call.direction == "out":
            self._far_end_answered(call)
        elif kind == "ended":
            self._line_ended(call, str(data.get("reason") or ""))
        elif kind == "error":
            log.warning("line %s: %s", self.name, data.get("message"))

    def _incoming(self, number: str, name: str) -> None:
        if self.ua.call is not None:
            log.info("line %s: a second incoming call from %s while one is up", self.name, number or "unknown")
            return
        codecs = (self.cfg.codec,) + tuple(c for c in sdp_local.BOX_CODECS if c != self.cfg.codec)
        # No telephone-event: the box listens for the caller's keys in the audio (Goertzel).
        offer = sdp_local.local_offer(self.host, self.rtp.port, self._session, 1, codecs=codecs, event_pt=None)
        log.info("line %s: incoming call from %s", self.name, number or "a withheld number")
        self.ua.invite_box(number, name, self.cfg.name, offer)

    def _far_end_answered(self, call: LineCall) -> None:
        choice: sdp_local.MediaChoice = call.extra["choice"]
        self.rtp.start(choice.codec, choice.payload_type, choice.host, choice.port)
        answer = sdp_local.local_answer(
            sdp_local.MediaChoice(choice.codec, choice.payload_type, None, choice.host, choice.port),
            self.host, self.rtp.port, self._session, 1)
        self.ua.answer(call, answer)

    def _line_ended(self, call: LineCall | None, reason: str) -> None:
        self.rtp.stop()
        if call is None or call.state == "ended":
            return
        log.info("line %s: call ended on the line (%s)", self.name, reason or "hung up")
        if call.direction == "out" and call.state != "confirmed":
            self.ua.refuse(call, END_STATUS.get(reason, 480))
        else:
            self.ua.hang_up(call)

    def _to_line(self, pcm: bytes) -> None:
        self.line.send_audio(pcm)

    # --- the box (LineHandler) ----------------------------------------------------------
    def box_invites(self, call: LineCall, sdp: bytes) -> None:
        """The box dials out on this line."""
        if self.line.state != "ready":
            log.info("line %s: cannot dial %s, the line is %s", self.name, call.number, self.line.state)
            self.ua.refuse(call, 503)
            return
        try:
            call.extra["choice"] = sdp_local.choose(sdp_mod.parse_sdp(sdp))
        except sdp_mod.SdpError as exc:
            log.info("line %s: refusing an offer without G.711: %s", self.name, exc)
            self.ua.refuse(call, 488)
            return
        log.info("line %s: dialling %s", self.name, call.number)
        self._run(self.line.dial(call.number), lambda: self.ua.refuse(call, 503))

    def box_answered(self, call: LineCall, sdp: bytes) -> None:
        """The box took the incoming call: answer the line and start the audio."""
        try:
            choice = sdp_local.choose(sdp_mod.parse_sdp(sdp))
        except sdp_mod.SdpError as exc:
            log.warning("line %s: the box answered without usable SDP (%s)", self.name, exc)
            self.ua.hang_up(call)
            self._run(self.line.hangup())
            return
        self.rtp.start(choice.codec, choice.payload_type, choice.host, choice.port)
        self._run(self.line.answer(), lambda: self.ua.hang_up(call))

    def box_refused(self, call: LineCall, status: int) -> None:
        """Nobody at the office takes the call: release the line."""
        log.info("line %s: the box refused the call from %s (%d)", self.name, call.number, status)
        self._run(self.line.hangup())

    def box_hung_up(self, call: LineCall) -> None:
        """The office side hung up: release the line."""
        self.rtp.stop()
        self._run(self.line.hangup())

    def _run(self, work: Coroutine[Any, Any, Any], on_error: Any = None) -> None:
        """Run a modem command in the background; a failure is logged and, if given, handled."""
        task = self.loop.create_task(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task) -> None:
            self._tasks.discard(finished)
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                log.warning("line %s: %s", self.name, error)
                if on_error is not None:
                    on_error()

        task.add_done_callback(done)
