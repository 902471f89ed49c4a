"""The control socket: the CLI nudges and queries the running box over a Unix socket in the data folder.

One JSON object per line, {"command": str, "args": {...}}, answered by one JSON line: the
handler's reply with "ok": true, or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOCKET_NAME = "control.sock"
MAX_LINE = 64 * 1024

log = logging.getLogger("switchboard.control")

Handler = Callable[[str, dict], dict]


class ControlServer:
    """Serves control requests on a Unix socket, calling handler(command, args) on the event loop."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = Path(path)
        self._handler = handler
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._accepting: asyncio.Task | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Listen; a socket left by a dead box is replaced, a live one is an error."""
        if self.path.exists() or self.path.is_symlink():
            if await _listening(self.path):
                raise RuntimeError(f"{self.path}: another box is already listening")
            self.path.unlink()
        # Our own accept loop rather than asyncio.start_unix_server: a connection accepted just as
        # that server closes is never served nor closed (the CLI would hang until its timeout).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)  # before listen(): nobody can connect in between
            sock.listen(16)
            sock.setblocking(False)
            self._inode = self.path.stat().st_ino
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept(sock))

    async def stop(self) -> None:
        """Stop listening, hang up on connected clients and remove the socket file."""
        if self._sock is None:
            return
        assert self._accepting is not None
        self._accepting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._accepting
        self._sock.close()
        self._sock = None
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        # Only our own socket: a newer box may already have replaced it.
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(sock)
            task = loop.create_task(self._serve(conn))
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=MAX_LINE)
        except BaseException:
            conn.close()
            raise
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE: the rest of the stream cannot be trusted
                    await _send(writer, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                    break
                if not line:
                    break
                if line.strip():
                    await _send(writer, self._answer(line))
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            writer.close()

    def _answer(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'malformed request: expected {"command": "...", "args": {...}}'}
        args = request.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "malformed request: args must be an object"}
        try:
            reply = self._handler(request["command"], args)
            if not isinstance(reply, dict):
                raise TypeError(f"handler returned {type(reply).__name__}, not a dict")
            out = {**reply, "ok": True}
            json.dumps(out)  # fail here, not half-way through the reply
            return out
        except (ValueError, KeyError) as exc:
            return {"ok": False, "error": str(exc.args[0]) if exc.args else type(exc).__name__}
        except Exception:
            log.exception("control command %r failed", request["command"])
            return {"ok": False, "error": "internal error"}


async def _listening(path: Path) -> bool:
    """Whether something accepts connections on the socket at path."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _send(writer: asyncio.StreamWriter, reply: dict) -> None:
    writer.write(json.dumps(reply).encode() + b"\n")
    await writer.drain()


def control_request(path: Path, command: str, timeout: float = 3.0, **args: Any) -> dict | None:
    """Send one command to the box and return its reply; None when no box listens on path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError:
            # No socket file (a path too long for AF_UNIX, say) or a leftover that is not a socket: no box.
            if not Path(path).exists() or not stat.S_ISSOCK(Path(path).stat().st_mode):
                return None
            raise
        sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{path}: the box closed the connection without a reply")
            data += chunk
        return json.loads(data)
    finally:
        sock.close()
