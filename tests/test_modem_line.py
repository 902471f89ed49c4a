"""ModemLine against the modem simulator over real ptys, on a real event loop."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from hw.modem import LineEvent, ModemError, ModemLine
from hw.modem.audio import u8_to_s16
from hw.sim import ModemSimulator, sound

GSM = ["sim7600", "ec25"]
ALL = ["sim7600", "ec25", "v253"]
# Every 8-bit code (0x10 included), as 16-bit samples: survives V.253's 8-bit PCM exactly.
PATTERN = u8_to_s16(bytes(range(256)) * 2)


END_WAIT = 0.2


class Box:
    """The driver under test with the events and audio it produced."""

    def __init__(self, sim: ModemSimulator, **kwargs: Any) -> None:
        self.events: list[LineEvent] = []
        self.audio = bytearray()
        self.frame_sizes: set[int] = set()
        # end_wait: how long a "released" waits for the result code giving the reason (1 s on a real line).
        kwargs = {"retry_min": 0.05, "retry_max": 0.3, "poll_signal": 30.0, "end_wait": END_WAIT, **kwargs}
        self.line = ModemLine(sim.path, sim.dialect, loop=asyncio.get_running_loop(),
                              on_event=self.events.append, on_audio=self._audio,
                              audio_port=sim.audio_path, **kwargs)

    def _audio(self, frame: bytes) -> None:
        self.frame_sizes.add(len(frame))
        self.audio += frame

    def of(self, kind: str, start: int = 0) -> list[LineEvent]:
        return [e for e in self.events[start:] if e.kind == kind]

    def calls(self, start: int = 0) -> list[tuple[str, dict]]:
        """Call events (no state or signal)."""
        return [(e.kind, e.data) for e in self.events[start:] if e.kind not in ("state", "signal")]

    async def wait(self, kind: str, timeout: float = 5.0, start: int = 0, **match: Any) -> LineEvent:
        async def found() -> LineEvent:
            while True:
                for e in self.events[start:]:
                    if e.kind == kind and all(e.data.get(k) == v for k, v in match.items()):
                        return e
                await asyncio.sleep(0.01)
        try:
            return await asyncio.wait_for(found(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {kind} {match} in {self.events}") from None

    async def ready(self) -> None:
        await self.line.start()
        await until(lambda: self.line.state == "ready")


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 25))  # type: ignore[arg-type]


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., ModemSimulator]]:
    sims: list[ModemSimulator] = []

    def make(dialect: str, **kwargs: Any) -> ModemSimulator:
        kwargs = {"ring_interval": 1.0, "answer_after": 0.3, **kwargs}
        sim = ModemSimulator(dialect, str(tmp_path / "serial" / "by-id" / f"usb-{dialect}-if02"), **kwargs)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


async def connected_incoming(box: Box, sim: ModemSimulator) -> None:
    await box.ready()
    sim.ring("+447700900123", "Alice")
    await box.wait("incoming")
    await box.line.answer()
    await box.wait("answered")
    await until(lambda: sim.audio_on)


@pytest.mark.parametrize("dialect", ALL)
def test_init_and_signal(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect, signal_csq=17)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        signal = await box.wait("signal")
        states = [e.data["state"] for e in box.of("state")]
        assert states[:2] == ["initialising", "ready"]
        status = box.line.status()
        assert status["state"] == "ready" and status["dialect"] == dialect and status["port"] == sim.path
        if dialect == "v253":
            assert signal.data["registered"] is True and signal.data["csq"] is None
            assert {"AT+FCLASS=8", "AT+VCID=1", "AT+VSM=1,8000,0,0"} <= set(sim.commands)
        else:
            assert signal.data == {"csq": 17, "rssi_dbm": -79, "registered": True,
                                   "operator": "Switchboard Sim"}
            assert status["sim"] == "READY" and status["csq"] == 17
            assert {"ATE0", "AT+CMEE=1", "AT+CLIP=1", "AT+CREG=2", "AT+CEREG=2", "AT+CMGF=1",
                    "AT+CPIN?", "AT+CSQ", "AT+CREG?", "AT+CEREG?"} <= set(sim.commands)
        await box.line.stop()
        assert box.line.state == "down"
    run(t())


def test_signal_is_polled(make_sim: Callable[..., ModemSimulator]) -> None:
    sim = make_sim("sim7600")

    async def t() -> None:
        box = Box(sim, poll_signal=0.1)
        await box.ready()
        sim.set_signal(8)
        await box.wait("signal", csq=8, rssi_dbm=-97)
        sim.set_signal(99)  # network lost: +CREG URC and the next poll agree
        await box.wait("signal", registered=False)
        await box.line.stop()
    run(t())


def test_sim_not_ready(make_sim: Callable[..., ModemSimulator]) -> None:
    sim = make_sim("sim7600", sim="SIM PIN")

    async def t() -> None:
        box = Box(sim)
        await box.line.start()
        await box.wait("error", message="SIM not ready: SIM PIN")
        assert box.line.state == "down"
        await until(lambda: sim.commands.count("AT+CPIN?") >= 2)  # it keeps retrying
        assert box.line.status()["last_error"] == "SIM not ready: SIM PIN"
        assert not box.of("state", 0) or all(e.data["state"] != "ready" for e in box.of("state"))
        with pytest.raises(ModemError):
            await box.line.dial("123")
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", ALL)
def test_incoming_call_answer_and_audio_both_ways(make_sim: Callable[..., ModemSimulator],
                                                   dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        sim.ring("+447700900123", "Alice")
        incoming = await box.wait("incoming")
        assert incoming.data == {"number": "+447700900123", "name": "Alice"}
        assert box.line.state == "incoming"
        await box.line.answer()
        await box.wait("answered")
        await until(lambda: sim.audio_on and box.line.audio_running)  # the driver's side too
        sim.play(PATTERN)
        sim.play_tone(1000, 0.3)
        box.line.send_audio(PATTERN)
        await until(lambda: PATTERN in bytes(box.audio) and PATTERN in sim.received())
        await asyncio.sleep(0.35)
        assert box.frame_sizes == {320}
        assert sound.rms(bytes(box.audio)[-2400:]) > 1000  # the tone arrived
        box.line.send_audio(sound.tone(440, 0.15))
        before = len(sim.received())
        await asyncio.sleep(0.3)
        assert sound.rms(sim.received()[before:]) > 500
        start = len(box.events)
        await box.line.hangup()
        assert box.calls(start) == [("ended", {"reason": "local"})]
        assert box.line.state == "ready"
        await until(lambda: sim.call_state is None)  # the simulator's thread answers OK, then hangs up
        if dialect != "v253":
            assert sim.commands[-2:] == [{"sim7600": "AT+CPCMREG=0", "ec25": "AT+QPCMV=0"}[dialect], "AT+CHUP"]
        else:
            assert sim.commands[-1] == "AT+VLS=0"
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", ALL)
@pytest.mark.parametrize("outcome, events", [
    ("answer", [("alerting", {}), ("answered", {})]),
    ("busy", [("alerting", {}), ("ended", {"reason": "busy"})]),
    ("no-answer", [("alerting", {}), ("ended", {"reason": "no-answer"})]),
    ("no-carrier", [("alerting", {}), ("ended", {"reason": "no-carrier"})]),
])
def test_dial_outcomes(make_sim: Callable[..., ModemSimulator], dialect: str, outcome: str,
                       events: list) -> None:
    sim = make_sim(dialect, on_dial=outcome, answer_after=0.2)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        start = len(box.events)
        await box.line.dial("5551234")
        await box.wait(events[-1][0], start=start)
        await asyncio.sleep(0.1)
        assert box.calls(start) == events
        assert ("ATD5551234" if dialect == "v253" else "ATD5551234;") in sim.commands
        assert box.line.state == ("connected" if outcome == "answer" else "ready")
        if outcome == "answer":
            await until(lambda: sim.audio_on and box.line.audio_running)  # the driver's side too
        await box.line.stop()
    run(t())


def test_sim7600_pcm_only_after_connect(make_sim: Callable[..., ModemSimulator]) -> None:
    sim = make_sim("sim7600", answer_after=0.8)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        await box.line.dial("5551234")
        await box.wait("alerting")
        with pytest.raises(ModemError, match="ERROR"):  # the modem refuses it while ringing out
            await box.line.at("AT+CPCMREG=1")
        assert not sim.audio_on
        await box.wait("answered")
        await until(lambda: sim.audio_on and box.line.audio_running)  # the driver's side too
        cmds = sim.commands
        assert cmds.count("AT+CPCMREG=1") == 2 and cmds[-1] == "AT+CPCMREG=1"
        await box.line.stop()
    run(t())


def test_v253_dtmf_in_and_out(make_sim: Callable[..., ModemSimulator]) -> None:
    sim = make_sim("v253")

    async def t() -> None:
        box = Box(sim)
        await connected_incoming(box, sim)
        sim.play_dtmf("5*#")
        await until(lambda: len(box.of("dtmf")) == 3)
        assert [e.data["digit"] for e in box.of("dtmf")] == ["5", "*", "#"]
        await box.line.send_dtmf("12")
        assert sim.dtmf_received == ["1", "2"] and "AT+VTS=1,2" in sim.commands
        assert sim.commands.count("AT+VTR") == 2  # the stream was left for +VTS and resumed
        sim.clear_received()
        box.line.send_audio(PATTERN)
        await until(lambda: PATTERN in sim.received())
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", ALL)
def test_remote_hangup_during_call(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await connected_incoming(box, sim)
        start = len(box.events)
        sim.hangup_remote()
        await box.wait("ended", start=start)
        await asyncio.sleep(3 * END_WAIT)  # a late "released" URC must not end it twice
        assert box.calls(start) == [("ended", {"reason": "remote"})]
        assert box.line.state == "ready"
        if dialect == "v253":
            assert sim.commands[-1] == "AT+VLS=0"  # back on hook after the busy tone
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", GSM)
def test_caller_gives_up_before_answer(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        sim.ring("0123456")
        await box.wait("incoming", number="0123456")
        sim.hangup_remote()
        await box.wait("ended", reason="remote")
        assert box.line.state == "ready"
        with pytest.raises(ModemError):
            await box.line.answer()
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", GSM)
def test_send_sms(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        ref = await box.line.send_sms("+447700900123", "We will call you back.")
        assert ref == "1" and sim.sms == [("+447700900123", "We will call you back.")]
        assert box.of("sms")[-1].data == {"ok": True, "reference": "1"}
        sim.set_signal(99)
        with pytest.raises(ModemError, match="331"):
            await box.line.send_sms("+447700900123", "again")
        assert box.of("sms")[-1].data["ok"] is False
        await box.line.stop()
    run(t())


def test_v253_has_no_sms(make_sim: Callable[..., ModemSimulator]) -> None:
    sim = make_sim("v253")

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        with pytest.raises(ModemError):
            await box.line.send_sms("123", "hi")
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", ["sim7600", "v253"])
def test_unplug_mid_call_then_replug(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await connected_incoming(box, sim)
        start = len(box.events)
        sim.unplug()
        await box.wait("ended", start=start, reason="line-down")
        kinds = [(e.kind, e.data.get("state")) for e in box.events[start:] if e.kind != "signal"]
        assert kinds[:3] == [("state", "down"), ("error", None), ("ended", None)]
        assert box.line.state == "down" and box.line.status()["last_error"]
        assert not Path(sim.path).exists()
        await asyncio.sleep(0.4)  # a few reconnect attempts against a missing device
        assert box.line.state == "down"
        sim.replug()
        await box.wait("state", start=start, state="ready")
        assert sim.commands.count("ATE0") == 2  # init ran again on the new device
        sim.ring("+4411", "Bob")  # and the line works
        await box.wait("incoming", start=start, number="+4411")
        await box.line.stop()
    run(t())


@pytest.mark.parametrize("dialect", ["sim7600", "v253"])
def test_garbage_is_ignored(make_sim: Callable[..., ModemSimulator], dialect: str) -> None:
    sim = make_sim(dialect)

    async def t() -> None:
        box = Box(sim)
        await box.ready()
        start = len(box.events)
        sim.inject(b"\xff\xfe\x00\x10garbage\r\n+WHAT: 1,2\r\n\x1b[0m\r\n")
        await asyncio.sleep(0.1)
        assert await box.line.at("AT") == []
        assert await box.line.at("ATI")  # a command with an answer still works
        assert box.calls(start) == [] and box.line.state == "ready"
        sim.ring("+4411")
        await box.wait("incoming", start=start)
        await box.line.stop()
    run(t())
