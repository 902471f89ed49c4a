"""The AT dialects: SIMCom SIM7600, Quectel EC2x and a V.253 voice modem on an analog line."""
from __future__ import annotations

from dataclasses import dataclass

DIAL_RESULTS = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "NO DIAL TONE", "VCON",
                          "CONNECT"})


@dataclass(frozen=True)
class Dialect:
    """What differs between modems: commands, where the audio goes and its sample format."""

    name: str
    init: tuple[str, ...]
    gsm: bool                           # SIM, registration, signal and SMS exist
    registration: tuple[str, ...] = ()  # queries for network registration
    answer: tuple[str, ...] = ("ATA",)
    hangup: tuple[str, ...] = ("AT+CHUP",)
    audio_on: tuple[str, ...] = ()     # sent once the call is connected
    audio_off: tuple[str, ...] = ()    # sent before hanging up
    audio_port: bool = True            # PCM on a second serial port (else DLE-framed on this one)
    sample_format: str = "s16le"       # on the wire: "s16le" or "u8" (8-bit unsigned PCM)
    stream_cmd: str = ""               # V.253: the command that starts the voice stream
    cid_wait: float = 1.0              # how long RING waits for caller ID before "incoming"
    ring_gone: float | None = None     # no RING for this long: the caller gave up (no other sign)

    def dial(self, number: str) -> str:
        """The dial command for a voice call."""
        return f"ATD{number};" if self.gsm else f"ATD{number}"

    def dtmf(self, digits: str) -> list[str]:
        """Commands sending DTMF digits to the far end."""
        if self.gsm:
            return [f"AT+VTS={d}" for d in digits]  # 27.007: one tone per +VTS
        return ["AT+VTS=" + ",".join(digits)]        # V.253: a comma list of tones


SIM7600 = Dialect(
    name="sim7600",
    # +CLCC=1 makes SIMCom report every call state change unsolicited (dialing, alerting, active).
    init=("ATE0", "AT+CMEE=1", "AT+CLIP=1", "AT+CLCC=1", "AT+CREG=2", "AT+CEREG=2", "AT+COPS=3,0",
          "AT+CMGF=1", 'AT+CSCS="GSM"'),
    gsm=True,
    registration=("AT+CREG?", "AT+CEREG?"),
    # 16-bit 8 kHz PCM on the USB audio port; refused (ERROR) until the call is connected.
    audio_on=("AT+CPCMREG=1",),
    audio_off=("AT+CPCMREG=0",),
)

EC25 = Dialect(
    name="ec25",
    # ^DSCI=1: Quectel's call status indication (dialing, alerting, active, released).
    init=("ATE0", "AT+CMEE=1", "AT+CLIP=1", "AT^DSCI=1", "AT+CREG=2", "AT+CEREG=2", "AT+COPS=3,0",
          "AT+CMGF=1", 'AT+CSCS="GSM"'),
    gsm=True,
    registration=("AT+CREG?", "AT+CEREG?"),
    # Voice over USB: 16-bit 8 kHz PCM on the USB NMEA port (port 0).
    audio_on=("AT+QPCMV=1,0",),
    audio_off=("AT+QPCMV=0",),
)

V253 = Dialect(
    name="v253",
    # Voice class, formatted caller ID, on-hook; +VSM=1,8000,0,0 is 8-bit unsigned PCM at 8 kHz
    # (the Conexant numbering; check AT+VSM=? on other chipsets).
    init=("ATE0", "AT+FCLASS=8", "AT+VCID=1", "AT+VSM=1,8000,0,0", "AT+VLS=0"),
    gsm=False,
    answer=("AT+VLS=1",),              # off hook on a ringing line answers it
    hangup=("AT+VLS=0",),
    audio_port=False,
    sample_format="u8",
    stream_cmd="AT+VTR",               # full duplex: DLE-framed audio both ways on this port
    cid_wait=5.0,                      # caller ID comes between the first and second ring
    ring_gone=10.0,
)

DIALECTS = {d.name: d for d in (SIM7600, EC25, V253)}


def get(name: str) -> Dialect:
    """The dialect called name; ValueError for an unknown one."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown modem dialect {name!r} (known: {', '.join(DIALECTS)})") from None
