"""The AT command channel, fed bytes directly."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from hw.modem.at import AtChannel
from hw.modem.errors import ModemError


class Wire:
    """The channel under test, what it wrote and the URCs it delivered."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.urcs: list[str] = []
        self.ch = AtChannel(self.written.append, self.urcs.append)

    def later(self, *chunks: bytes, delay: float = 0.01) -> None:
        loop = asyncio.get_running_loop()
        for i, chunk in enumerate(chunks):
            loop.call_later(delay * (i + 1), self.ch.feed, chunk)


def run(test: Callable[[Wire], Awaitable[None]]) -> None:
    async def main() -> None:
        await test(Wire())
    asyncio.run(asyncio.wait_for(main(), 10))


def test_info_lines_and_urcs_interleaved() -> None:
    async def t(w: Wire) -> None:
        w.later(b"\r\nRI", b"NG\r\n\r\n+CSQ: 2", b"0,99\r\n\r\n+CLIP: \"123\",129\rOK\r\n")
        r = await w.ch.command("AT+CSQ")
        assert w.written == [b"AT+CSQ\r"]
        assert r.final == "OK" and r.lines == ["+CSQ: 20,99"] and r.value("+CSQ") == "20,99"
        assert w.urcs == ["RING", '+CLIP: "123",129']
    run(t)


def test_echo_is_dropped_and_clcc_answer_kept() -> None:
    async def t(w: Wire) -> None:
        w.later(b"AT+CLCC\r\r\n+CLCC: 1,0,0,0,0,\"1\",129\r\n\r\nOK\r\n")
        r = await w.ch.command("AT+CLCC")
        assert r.lines == ['+CLCC: 1,0,0,0,0,"1",129'] and w.urcs == []
    run(t)


@pytest.mark.parametrize("final", ["ERROR", "+CME ERROR: 10", "+CMS ERROR: 304"])
def test_errors_raise(final: str) -> None:
    async def t(w: Wire) -> None:
        w.later(f"\r\n{final}\r\n".encode())
        with pytest.raises(ModemError) as err:
            await w.ch.command("AT+CPIN?")
        assert err.value.final == final
    run(t)


def test_timeout_then_next_command_works() -> None:
    async def t(w: Wire) -> None:
        with pytest.raises(ModemError, match="timeout"):
            await w.ch.command("AT+SLOW", 0.05)
        w.later(b"\r\nOK\r\n")
        assert (await w.ch.command("AT")).final == "OK"
    run(t)


def test_prompt_sends_text() -> None:
    async def t(w: Wire) -> None:
        w.later(b"\r\n> ", b"\r\n+CMGS: 7\r\n\r\nOK\r\n", delay=0.02)
        r = await w.ch.command('AT+CMGS="123"', prompt_data=b"hi\x1a")
        assert w.written == [b'AT+CMGS="123"\r', b"hi\x1a"] and r.value("+CMGS") == "7"
    run(t)


def test_extra_finals_and_call_words_as_urcs() -> None:
    async def t(w: Wire) -> None:
        w.later(b"\r\nNO CARRIER\r\n\r\nOK\r\n")
        assert (await w.ch.command("AT+CSQ")).final == "OK"
        assert w.urcs == ["NO CARRIER"]
        w.later(b"\r\nBUSY\r\n")
        assert (await w.ch.command("ATD1;", finals=frozenset({"BUSY"}))).final == "BUSY"
    run(t)


def test_stream_mode_from_connect_to_dle_etx() -> None:
    async def t(w: Wire) -> None:
        got: list[bytes] = []

        def stream(data: bytes) -> bytes | None:
            if b"\x10\x03" in data:
                head, _, rest = data.partition(b"\x10\x03")
                got.append(head)
                return rest
            got.append(data)
            return None
        w.later(b"\r\nCONNECT\r\n\x80\x81", b"\x82\x10\x03\r\nRING\r\n")
        r = await w.ch.command("AT+VTR", finals=frozenset({"CONNECT"}), stream=stream)
        assert r.final == "CONNECT"
        await asyncio.sleep(0.05)
        assert b"".join(got) == b"\x80\x81\x82" and w.urcs == ["RING"] and not w.ch.streaming
    run(t)


def test_garbage_is_survived() -> None:
    async def t(w: Wire) -> None:
        w.later(b"\xff\xfe\x00junk\r\n" + b"x" * 5000, b"\r\n\r\nOK\r\n")
        assert (await w.ch.command("AT")).final == "OK"
    run(t)


def test_closed_channel_fails_pending_and_new_commands() -> None:
    async def t(w: Wire) -> None:
        asyncio.get_running_loop().call_later(0.02, w.ch.close, ModemError("gone"))
        with pytest.raises(ModemError, match="gone"):
            await w.ch.command("AT")
        with pytest.raises(ModemError, match="gone"):
            await w.ch.command("AT")
    run(t)
