"""systemd's notify protocol (sd_notify(3)), in the standard library: READY, STATUS, WATCHDOG."""
from __future__ import annotations

import os
import socket


class Notifier:
    """Sends state lines to the socket systemd names in $NOTIFY_SOCKET; does nothing without one."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is spelt with a leading "@" (sd_notify(3)).
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_seconds = self._watchdog(env)

    @staticmethod
    def _watchdog(env: dict[str, str] | os._Environ[str]) -> float | None:
        """WatchdogSec= as seconds when it applies to this process (sd_watchdog_enabled(3)), else None."""
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            return None
        pid = env.get("WATCHDOG_PID")
        if usec <= 0 or (pid and pid != str(os.getpid())):
            return None
        return usec / 1_000_000

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        """Send KEY=VALUE lines in one datagram; False if nobody listens or the send failed."""
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
            except OSError:
                return False
        return True
