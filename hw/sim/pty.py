"""A pseudo-terminal in raw mode behind a stable symlink, like /dev/serial/by-id/... for a USB modem."""
from __future__ import annotations

import logging
import os
import tty

log = logging.getLogger("switchboard.hw.sim")


class PtyPort:
    """The device side (master) of a pty; the box opens the symlink."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.tty_name = os.ttyname(self._slave)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.tty_name, tmp)
        os.replace(tmp, path)  # atomic: the path never dangles between two devices

    def read(self) -> bytes:
        """What the box wrote; b"" when nothing is there."""
        try:
            return os.read(self.master, 65536)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        """Send bytes to the box; dropped if nobody reads and the buffer is full."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                log.debug("%s: box not reading; %d bytes dropped", self.path, len(view))
                return
            except OSError as exc:
                log.debug("%s: write failed: %s", self.path, exc)
                return
            view = view[n:]

    def close(self) -> None:
        """Close both ends and remove the symlink (if it is still ours): an unplug."""
        try:
            if os.path.islink(self.path) and os.readlink(self.path) == self.tty_name:
                os.unlink(self.path)
        except OSError:
            pass
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
