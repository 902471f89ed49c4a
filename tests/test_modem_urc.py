"""Parsing modem URCs and information lines into records."""
from __future__ import annotations

import pytest

from hw.modem import urc


@pytest.mark.parametrize("line, expected", [
    ("RING", urc.Ring()),
    ('+CLIP: "+447700900123",145,"",0,"Alice Smith",0', urc.CallerId("+447700900123", "Alice Smith")),
    ('+CLIP: "0123456",129', urc.CallerId("0123456", "")),
    ("NO CARRIER", urc.CallEnded("no-carrier")),
    ("BUSY", urc.CallEnded("busy")),
    ("NO ANSWER", urc.CallEnded("no-answer")),
    ("VOICE CALL: BEGIN", urc.VoiceCall("begin")),
    ("VOICE CALL: END: 000012", urc.VoiceCall("end", 12)),
    ('+CLCC: 1,0,3,0,0,"10086",129,""', urc.CallState(1, True, urc.STAT_ALERTING, "10086")),
    ('+CLCC: 1,1,4,0,0,"+4477",145,"Bob, Jr"', urc.CallState(1, False, urc.STAT_INCOMING, "+4477", "Bob, Jr")),
    ("^DSCI: 1,0,7,0,10086,129", urc.CallState(1, True, urc.STAT_ALERTING, "10086")),
    ("^DSCI: 4,1,3,0,+4477,145", urc.CallState(4, False, urc.STAT_ACTIVE, "+4477")),
    ("^DSCI: 1,0,6,0,10086,129", urc.CallState(1, True, urc.STAT_RELEASED, "10086")),
    ("+CSQ: 20,99", urc.Signal(20, -73)),
    ("+CSQ: 99,99", urc.Signal(99, None)),
    ('+COPS: 0,0,"Vodafone UK",7', urc.Operator("Vodafone UK")),
    ("+CPIN: SIM PIN", urc.SimState("SIM PIN")),
    ("+CMGS: 42", urc.SmsSent("42")),
    ("NMBR = 5551234", urc.CidLine("NMBR", "5551234")),
    ("NAME = JOHN DOE", urc.CidLine("NAME", "JOHN DOE")),
    ("DATE = 0321", urc.CidLine("DATE", "0321")),
    ("TIME=1405", urc.CidLine("TIME", "1405")),
])
def test_parse(line: str, expected: object) -> None:
    assert urc.parse(line) == expected


@pytest.mark.parametrize("line, kind, stat, tech, registered", [
    ('+CREG: 2,1,"00C3","0000B2E1",7', "CREG", 1, "lte", True),   # answer to AT+CREG? (n first)
    ('+CREG: 1,"00C3","0000B2E1",7', "CREG", 1, "lte", True),     # unsolicited (stat first)
    ("+CEREG: 0,5", "CEREG", 5, None, True),
    ("+CEREG: 2", "CEREG", 2, None, False),
    ("+CREG: 2,0", "CREG", 0, None, False),
])
def test_registration(line: str, kind: str, stat: int, tech: str | None, registered: bool) -> None:
    reg = urc.parse(line)
    assert isinstance(reg, urc.Registration)
    assert (reg.kind, reg.stat, reg.tech, reg.registered) == (kind, stat, tech, registered)


@pytest.mark.parametrize("line", ["", "garbage", "+FOO: 1", "\x00\xff", "OK", "+CSQ: x"])
def test_unknown_lines(line: str) -> None:
    assert urc.parse(line) is None


def test_urc_detection() -> None:
    assert urc.is_urc("RING") and urc.is_urc('+CLIP: "1",129') and urc.is_urc("NMBR = 1")
    assert not urc.is_urc("+CSQ: 20,99") and not urc.is_urc("OK")


def test_csq_to_dbm() -> None:
    assert [urc.csq_to_dbm(c) for c in (0, 1, 31, 99, 32)] == [-113, -111, -51, None, None]
