"""Parse unsolicited result codes and information lines into small frozen records."""
from __future__ import annotations

import re
from dataclasses import dataclass

# +CLCC <stat> values (3GPP TS 27.007; SIMCom adds 6 = disconnected).
STAT_ACTIVE, STAT_HELD, STAT_DIALING, STAT_ALERTING, STAT_INCOMING, STAT_WAITING, STAT_RELEASED = range(7)
# Quectel ^DSCI numbers its states differently; mapped onto the +CLCC meaning.
_DSCI_STAT = {0: None, 1: STAT_HELD, 2: STAT_DIALING, 3: STAT_ACTIVE, 4: STAT_INCOMING,
              5: STAT_WAITING, 6: STAT_RELEASED, 7: STAT_ALERTING}
_TECH = {0: "gsm", 2: "utran", 3: "gsm-egprs", 4: "hsdpa", 5: "hsupa", 6: "hspa", 7: "lte"}
_ENDED = {"NO CARRIER": "no-carrier", "BUSY": "busy", "NO ANSWER": "no-answer",
          "NO DIALTONE": "no-carrier", "NO DIAL TONE": "no-carrier"}


@dataclass(frozen=True)
class Ring:
    """RING: an incoming call is alerting."""


@dataclass(frozen=True)
class CallerId:
    """The caller's number and name (+CLIP, or the V.253 NMBR/NAME lines)."""

    number: str
    name: str = ""


@dataclass(frozen=True)
class CallEnded:
    """A call-ending result code."""

    reason: str  # "no-carrier" | "busy" | "no-answer" | "remote"


@dataclass(frozen=True)
class CallState:
    """One call's state (+CLCC or ^DSCI), stat in +CLCC numbering."""

    index: int
    outgoing: bool
    stat: int
    number: str = ""
    name: str = ""


@dataclass(frozen=True)
class VoiceCall:
    """SIMCom "VOICE CALL: BEGIN" / "VOICE CALL: END: <hhmmss>"."""

    event: str  # "begin" | "end"
    duration: int | None = None


@dataclass(frozen=True)
class Registration:
    """+CREG/+CEREG: registration status and access technology."""

    kind: str  # "CREG" | "CEREG"
    stat: int
    tech: str | None = None

    @property
    def registered(self) -> bool:
        """Home network (1) or roaming (5)."""
        return self.stat in (1, 5)


@dataclass(frozen=True)
class Signal:
    """+CSQ: the raw index and the RSSI in dBm (None when unknown, csq 99)."""

    csq: int
    rssi_dbm: int | None


@dataclass(frozen=True)
class Operator:
    """+COPS?: the network operator's name ("" when not registered)."""

    name: str


@dataclass(frozen=True)
class SimState:
    """+CPIN: READY, SIM PIN, SIM PUK, ..."""

    state: str


@dataclass(frozen=True)
class CidLine:
    """One V.253 formatted caller ID line: DATE, TIME, NMBR, NAME or MESG."""

    tag: str
    value: str


@dataclass(frozen=True)
class SmsSent:
    """+CMGS: <mr>, the message reference."""

    reference: str


Parsed = (Ring | CallerId | CallEnded | CallState | VoiceCall | Registration | Signal | Operator
          | SimState | CidLine | SmsSent)

_CID = re.compile(r"^(DATE|TIME|NMBR|NAME|MESG|DDN_NMBR)\s*=\s*(.*)$")
_VOICE = re.compile(r"^VOICE CALL:\s*(BEGIN|END)(?::\s*(\d+))?")


def split_fields(text: str) -> list[str]:
    """Split a comma list, keeping commas inside quotes; quotes are removed."""
    fields: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur).strip())
    return fields


def _quoted(text: str, index: int) -> bool:
    """Whether the index-th raw field of a comma list is in quotes."""
    parts = text.split(",")
    return index < len(parts) and parts[index].strip().startswith('"')


def _int(text: str, default: int = -1) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def csq_to_dbm(csq: int) -> int | None:
    """27.007 +CSQ index to dBm: 0 is -113 dBm or less, 31 is -51 or more, 99 unknown."""
    return None if not 0 <= csq <= 31 else -113 + 2 * csq


def _registration(kind: str, body: str) -> Registration | None:
    fields = split_fields(body)
    # The answer to a query starts with <n>; the unsolicited form starts with <stat>.
    # Tell them apart by count: URC is 1 field or 3+ with the 2nd quoted (lac).
    if len(fields) == 1 or (len(fields) >= 3 and _quoted(body, 1)):
        stat_i = 0
    else:
        stat_i = 1
    stat = _int(fields[stat_i])
    if stat < 0:
        return None
    tech_i = stat_i + 3
    tech = _TECH.get(_int(fields[tech_i])) if len(fields) > tech_i and fields[tech_i] else None
    return Registration(kind, stat, tech)


def _clcc(body: str) -> CallState | None:
    f = split_fields(body)
    if len(f) < 3:
        return None
    number = f[5] if len(f) > 5 else ""
    name = f[7] if len(f) > 7 else ""
    return CallState(_int(f[0]), f[1] == "0", _int(f[2]), number, name)


def _dsci(body: str) -> CallState | None:
    f = split_fields(body)
    if len(f) < 3:
        return None
    stat = _DSCI_STAT.get(_int(f[2]))
    if stat is None:
        return None
    return CallState(_int(f[0]), f[1] == "0", stat, f[4] if len(f) > 4 else "")


def parse(line: str) -> Parsed | None:
    """Parse one line from the modem; None for anything not understood."""
    line = line.strip()
    if line == "RING" or line.startswith("+CRING:"):
        return Ring()
    if line in _ENDED:
        return CallEnded(_ENDED[line])
    m = _CID.match(line)
    if m:
        return CidLine(m.group(1), m.group(2).strip())
    if ":" not in line:
        return None
    m = _VOICE.match(line)
    if m:
        return VoiceCall(m.group(1).lower(), int(m.group(2)) if m.group(2) else None)
    head, _, body = line.partition(":")
    body = body.strip()
    if head == "+CLIP":
        f = split_fields(body)
        return CallerId(f[0], f[4] if len(f) > 4 else "")
    if head == "+CLCC":
        return _clcc(body)
    if head == "^DSCI":
        return _dsci(body)
    if head in ("+CREG", "+CEREG", "+CGREG"):
        return _registration(head[1:], body)
    if head == "+CSQ":
        csq = _int(split_fields(body)[0])
        return Signal(csq, csq_to_dbm(csq)) if csq >= 0 else None
    if head == "+COPS":
        f = split_fields(body)
        return Operator(f[2] if len(f) > 2 else "")
    if head == "+CPIN":
        return SimState(body)
    if head == "+CMGS":
        return SmsSent(body)
    return None


# Lines that are unsolicited whenever they appear (unless they answer the pending command).
URC_PREFIXES = ("RING", "+CRING:", "+CLIP:", "+CLCC:", "^DSCI:", "VOICE CALL:", "+CREG:", "+CEREG:",
                "+CGREG:", "+CMTI:", "+CMT:", "+CDS:", "MISSED_CALL:", "+CPIN:", "RDY", "SMS DONE",
                "PB DONE", "+QIND:", "+CFUN:", "DATE =", "TIME =", "NMBR =", "NAME =", "MESG =",
                "DATE=", "TIME=", "NMBR=", "NAME=", "MESG=")
CALL_END_WORDS = frozenset(_ENDED)


def is_urc(line: str) -> bool:
    """Whether a line is a known unsolicited result code."""
    return line in CALL_END_WORDS or line.startswith(URC_PREFIXES)
