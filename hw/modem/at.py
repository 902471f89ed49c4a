"""AT command channel: line splitting, one command at a time, URCs to a callback, prompts and streams."""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from .errors import ModemError
from .urc import is_urc

log = logging.getLogger("switchboard.hw.modem")

_EOL = re.compile(rb"[\r\n]+")
_PREFIX = re.compile(r"^AT([+^$#*][A-Z0-9]+)", re.IGNORECASE)
MAX_LINE = 4096
CTRL_Z = b"\x1a"

# A stream handler takes raw bytes; it returns None to stay in stream mode, or the bytes
# left after the end of the stream (command mode again).
StreamHandler = Callable[[bytes], "bytes | None"]


@dataclass
class Response:
    """A finished command: its final result code and the information lines before it."""

    final: str
    lines: list[str] = field(default_factory=list)

    def value(self, prefix: str) -> str | None:
        """The text after "<prefix>:" of the first matching line, if any."""
        for line in self.lines:
            if line.startswith(prefix + ":"):
                return line[len(prefix) + 1:].strip()
        return None


@dataclass
class _Pending:
    cmd: str
    future: asyncio.Future
    finals: frozenset[str]
    prefix: str | None
    prompt_data: bytes | None
    stream: StreamHandler | None
    lines: list[str] = field(default_factory=list)


def _is_error(line: str) -> bool:
    return line == "ERROR" or line.startswith(("+CME ERROR:", "+CMS ERROR:"))


class AtChannel:
    """Talks AT over a byte link: feed() what arrives, await command() for each command."""

    def __init__(self, write: Callable[[bytes], None], on_urc: Callable[[str], None]) -> None:
        self._write = write
        self._on_urc = on_urc
        self._buf = bytearray()
        self._pending: _Pending | None = None
        self._stream: StreamHandler | None = None
        self._lock = asyncio.Lock()
        self._closed: ModemError | None = None

    @property
    def streaming(self) -> bool:
        """Whether the link carries a DLE-framed stream instead of lines."""
        return self._stream is not None

    async def command(self, cmd: str, timeout: float = 5.0, *, finals: frozenset[str] = frozenset(),
                      prompt_data: bytes | None = None, stream: StreamHandler | None = None,
                      raw: bytes | None = None, check: bool = True) -> Response:
        """Send one command and wait for its final result; ERROR raises ModemError when check."""
        async with self._lock:
            if self._closed is not None:
                raise self._closed
            loop = asyncio.get_running_loop()
            m = _PREFIX.match(cmd)
            pending = _Pending(cmd, loop.create_future(), finals, m.group(1).upper() if m else None,
                               prompt_data, stream)
            self._pending = pending
            try:
                self._write(raw if raw is not None else cmd.encode("ascii", "replace") + b"\r")
                response: Response = await asyncio.wait_for(asyncio.shield(pending.future), timeout)
            except asyncio.TimeoutError:
                log.warning("modem command timed out: %s", cmd)
                raise ModemError(f"timeout: {cmd}") from None
            finally:
                if self._pending is pending:
                    self._pending = None
        if check and _is_error(response.final):
            raise ModemError(f"{cmd}: {response.final}", response.final)
        return response

    def write_raw(self, data: bytes) -> None:
        """Write bytes outside any command (audio in stream mode, a dial abort)."""
        self._write(data)

    def end_stream(self) -> None:
        """Forget stream mode (the stream ended without its DLE ETX)."""
        self._stream = None

    def close(self, error: ModemError) -> None:
        """Fail the pending command and refuse new ones: the link is gone."""
        self._closed = error
        self._stream = None
        if self._pending is not None and not self._pending.future.done():
            self._pending.future.set_exception(error)
            self._pending.future.exception()  # mark retrieved: the waiter may have timed out

    def feed(self, data: bytes) -> None:
        """Bytes from the modem."""
        self._buf += data
        while self._buf:
            if self._stream is not None:
                chunk = bytes(self._buf)
                self._buf.clear()
                rest = self._stream(chunk)
                if rest is None:
                    return
                self._stream = None
                self._buf += rest
                continue
            m = _EOL.search(self._buf)
            if m is None:
                self._check_prompt()
                if len(self._buf) > MAX_LINE:
                    log.warning("modem sent %d bytes without a line end; dropped", len(self._buf))
                    self._buf.clear()
                return
            raw = bytes(self._buf[:m.start()])
            del self._buf[:m.end()]
            line = raw.decode("ascii", "replace").strip()
            if line:
                self._line(line)

    def _check_prompt(self) -> None:
        p = self._pending
        if p is not None and p.prompt_data is not None and self._buf.lstrip().startswith(b">"):
            self._buf.clear()
            self._send_prompt_data(p)

    def _send_prompt_data(self, p: _Pending) -> None:
        data, p.prompt_data = p.prompt_data, None
        self._write(data or b"")

    def _line(self, line: str) -> None:
        p = self._pending
        if p is None or p.future.done():
            self._deliver_urc(line)
            return
        if line.upper() == p.cmd.upper():
            return  # echo (before ATE0 takes effect)
        if line == ">" and p.prompt_data is not None:
            self._send_prompt_data(p)
            return
        if line == "OK" or _is_error(line) or line in p.finals:
            if line == "CONNECT" and p.stream is not None:
                self._stream = p.stream  # the rest of this chunk is stream data
            p.future.set_result(Response(line, p.lines))
            return
        if p.prefix and line.startswith(p.prefix + ":"):
            p.lines.append(line)
        elif is_urc(line):
            self._deliver_urc(line)
        else:
            p.lines.append(line)

    def _deliver_urc(self, line: str) -> None:
        try:
            self._on_urc(line)
        except Exception:  # a bad handler must not kill the reader
            log.exception("modem URC handler failed on %r", line)
