"""The modem simulator on its own: a plain serial client talking AT to the pty."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import serial

from hw.sim import ModemSimulator, sound

ROOT = Path(__file__).resolve().parent.parent


class Client:
    """A blocking AT client on the simulator's pty."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, 115200, timeout=0.05)

    def send(self, text: str, finals: tuple[str, ...] = ("OK", "ERROR", "CONNECT", "VCON", "NO CARRIER"),
             timeout: float = 3.0) -> list[str]:
        """Send a command; the lines up to and including the final result."""
        self.port.write(text.encode() + b"\r")
        return self.read_until(finals, timeout)

    def read_until(self, finals: tuple[str, ...], timeout: float = 3.0) -> list[str]:
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            buf += self.port.read(4096)
            lines = [ln.strip() for ln in buf.decode(errors="replace").replace("\r", "\n").split("\n")]
            lines = [ln for ln in lines if ln]
            if any(ln in finals or ln.startswith(("+CME ERROR", "+CMS ERROR")) for ln in lines):
                return lines
            if buf.endswith(b"> "):
                return lines
        raise AssertionError(f"no final result in {buf!r}")


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., tuple[ModemSimulator, Client]]]:
    sims: list[ModemSimulator] = []

    def start(dialect: str, **kwargs: object) -> tuple[ModemSimulator, Client]:
        sim = ModemSimulator(dialect, str(tmp_path / "by-id" / "usb-modem"), **kwargs)  # type: ignore[arg-type]
        sim.start()
        sims.append(sim)
        return sim, Client(sim.path)

    yield start
    for sim in sims:
        sim.stop()


def test_echo_until_ate0_and_errors(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    sim, c = make("sim7600")
    assert c.send("AT") == ["AT", "OK"]            # echo is on at power-up
    assert c.send("ATE0") == ["ATE0", "OK"]
    assert c.send("AT") == ["OK"]
    assert c.send("AT+FOO") == ["ERROR"]           # unknown command
    assert c.send("AT+CMEE=7") == ["ERROR"]        # bad argument, CMEE=0: plain ERROR
    assert c.send("AT+CMEE=1") == ["OK"]
    assert c.send("AT+CLIP=5") == ["+CME ERROR: 50"]
    assert c.send("AT+CMEE=2") == ["OK"]
    assert c.send("AT+CLIP=5") == ["+CME ERROR: Incorrect parameters"]
    assert c.send("AT+QPCMV=1,0") == ["ERROR"]     # Quectel's command on a SIMCom
    assert sim.commands[-1] == "AT+QPCMV=1,0"


def test_gsm_queries(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    _, c = make("ec25", signal_csq=12)
    c.send("ATE0")
    assert c.send("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert c.send("AT+CSQ") == ["+CSQ: 12,99", "OK"]
    assert c.send("AT+CREG?") == ["+CREG: 0,1", "OK"]
    c.send("AT+CEREG=2")
    assert c.send("AT+CEREG?") == ['+CEREG: 2,1,"1A2B","01C2D3E4",7', "OK"]


def test_sim_absent(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    _, c = make("sim7600", sim="ABSENT")
    c.send("ATE0")
    c.send("AT+CMEE=1")
    assert c.send("AT+CPIN?") == ["+CME ERROR: 10"]
    assert c.send("ATD123;") == ["+CME ERROR: 10"]


def test_cpcmreg_refused_until_connected(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    sim, c = make("sim7600", ring_interval=10.0)
    c.send("ATE0")
    c.send("AT+CLIP=1")
    assert c.send("AT+CPCMREG=1") == ["ERROR"]
    sim.ring("+4411", "Ann")
    lines = c.read_until(('+CLIP: "+4411",145,"",0,"Ann",0',))
    assert "RING" in lines
    assert c.send("ATA", finals=("VOICE CALL: BEGIN",)) == ["OK", "VOICE CALL: BEGIN"]
    assert c.send("AT+CPCMREG=1") == ["OK"]
    audio = serial.serial_for_url(sim.audio_path, 115200, timeout=0.5)
    sim.play_tone(1000, 0.2)
    got = b""
    deadline = time.monotonic() + 3
    while len(got) < 3200 and time.monotonic() < deadline:
        got += audio.read(3200)
    assert sound.rms(got) > 1000
    assert c.send("AT+CHUP", finals=("VOICE CALL: END: 000000",)) == ["OK", "VOICE CALL: END: 000000"]
    audio.close()


def test_sms_text_mode(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    sim, c = make("ec25")
    c.send("ATE0")
    c.send("AT+CMEE=1")
    assert c.send('AT+CMGS="+4411"') == ["+CMS ERROR: 304"]  # PDU mode by default
    c.send("AT+CMGF=1")
    assert c.send('AT+CMGS="+4411"') == [">"]
    c.port.write(b"call you back\x1a")
    assert c.read_until(("OK",)) == ["+CMGS: 1", "OK"]
    assert sim.sms == [("+4411", "call you back")]


def test_v253_voice_commands(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    sim, c = make("v253")
    c.send("ATE0")
    assert c.send("AT+VLS=1") == ["ERROR"]          # not in voice class yet
    assert c.send("AT+FCLASS=8") == ["OK"]
    assert c.send("AT+VSM=?") == ['1,"UNSIGNED PCM",8,0,(8000),(0),(0)', "OK"]
    assert c.send("AT+VSM=2,8000") == ["ERROR"]
    assert c.send("AT+VTR") == ["ERROR"]            # on hook: no stream
    assert c.send("AT+CPIN?") == ["ERROR"]          # no SIM on an analog line
    assert c.send("AT+VLS=1") == ["OK"]
    assert c.send("AT+VTR")[0] == "CONNECT"         # then the line's audio streams in
    c.port.write(b"\x80\x10\x10\x81")               # audio, with an escaped 0x10
    time.sleep(0.1)
    c.port.write(b"\x10^")
    data = b""
    deadline = time.monotonic() + 3
    while b"\x10\x03\r\nOK\r\n" not in data and time.monotonic() < deadline:
        data += c.port.read(4096)
    assert b"\x10\x03\r\nOK\r\n" in data
    assert sim.received() == bytes.fromhex("0000" "0090" "0001")  # 0x80, 0x10, 0x81 as 16-bit


def test_unplug_and_replug(make: Callable[..., tuple[ModemSimulator, Client]]) -> None:
    sim, c = make("sim7600")
    first = os.readlink(sim.path)
    sim.unplug()
    assert not os.path.lexists(sim.path) and not os.path.lexists(sim.audio_path or "")
    with pytest.raises(serial.SerialException):
        c.port.read(10)
    sim.replug()
    assert os.readlink(sim.path) != first or os.path.exists(sim.path)
    c2 = Client(sim.path)
    assert c2.send("AT") == ["AT", "OK"]            # a fresh device: echo on again


def test_cli_runs_until_interrupted(tmp_path: Path) -> None:
    path = str(tmp_path / "modem")
    proc = subprocess.Popen([sys.executable, "-m", "hw.sim", "--dialect", "ec25", "--path", path],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert path in proc.stdout.readline()
        assert path + "-audio" in proc.stdout.readline()
        c = Client(path)
        assert c.send("ATI") == ["ATI", "Quectel", "EC25", "Revision: EC25EFAR06A06M4G (simulated)", "OK"]
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
    assert not os.path.lexists(path)
