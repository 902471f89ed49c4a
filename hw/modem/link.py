"""A serial port on the event loop: non-blocking reads through add_reader, buffered writes."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Callable

import serial

log = logging.getLogger("switchboard.hw.modem")

MAX_PENDING = 64 * 1024


class SerialLink:
    """One open serial device; on_lost is called once when it goes away."""

    def __init__(self, path: str, baudrate: int, loop: asyncio.AbstractEventLoop,
                 on_data: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.path = path
        self._loop = loop
        self._on_data = on_data
        self._on_lost = on_lost
        self._pending = bytearray()
        self._writer = False
        self._lost = False
        self._ser = serial.serial_for_url(path, baudrate, timeout=0, write_timeout=0)
        self._fd: int | None = self._ser.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._readable)

    @property
    def open(self) -> bool:
        """Whether the device is still there."""
        return self._fd is not None

    def write(self, data: bytes) -> None:
        """Queue bytes; they go out as the device takes them."""
        if self._fd is None or not data:
            return
        if len(self._pending) + len(data) > MAX_PENDING:
            log.warning("%s: device not taking data; dropped %d bytes", self.path, len(self._pending))
            self._pending.clear()
        self._pending += data
        self._flush()

    def close(self) -> None:
        """Stop watching and close the device."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._loop.remove_reader(fd)
        if self._writer:
            self._loop.remove_writer(fd)
            self._writer = False
        try:
            self._ser.close()
        except (OSError, serial.SerialException):
            pass

    def _flush(self) -> None:
        while self._pending and self._fd is not None:
            try:
                n = os.write(self._fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lose(f"write failed: {exc}")
                return
            del self._pending[:n]
        want = bool(self._pending) and self._fd is not None
        if want != self._writer and self._fd is not None:
            if want:
                self._loop.add_writer(self._fd, self._flush)
            else:
                self._loop.remove_writer(self._fd)
            self._writer = want

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return
            self._lose(f"read failed: {exc}")
            return
        if not data:
            self._lose("device closed")
            return
        self._on_data(data)

    def _lose(self, why: str) -> None:
        if self._lost:
            return
        self._lost = True
        path = self.path
        self.close()
        self._loop.call_soon(self._on_lost, f"{path}: {why}")
