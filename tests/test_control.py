"""The control socket: a real ControlServer on a loop in a thread, real Unix sockets in tmp_path."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.control import MAX_LINE, SOCKET_NAME, ControlServer, control_request


class LoopThread:
    """An asyncio loop running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def handler(command: str, args: dict) -> dict:
    """Echo, errors of each kind, and a reply that cannot be JSON."""
    if command == "echo":
        return {"command": command, "args": args, "ok": "overridden"}
    if command == "bad":
        raise ValueError("no queue named nope")
    if command == "missing":
        raise KeyError("extension")
    if command == "crash":
        raise RuntimeError("secret detail")
    if command == "unserialisable":
        return {"value": object()}
    if command == "not-a-dict":
        return ["x"]  # type: ignore[return-value]
    raise ValueError(f"unknown command {command!r}")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def server(tmp_path: Path, loop: LoopThread) -> Iterator[ControlServer]:
    srv = ControlServer(tmp_path / SOCKET_NAME, handler)
    loop.run(srv.start())
    yield srv
    loop.run(srv.stop())


def _raw(path: Path, *lines: bytes) -> list[dict]:
    """Send raw lines on one connection and read one reply per line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        replies = []
        reader = sock.makefile("rb")
        for line in lines:
            sock.sendall(line)
            replies.append(json.loads(reader.readline()))
        return replies


def test_request_and_reply(server: ControlServer) -> None:
    reply = control_request(server.path, "echo", queue="sales", n=2)
    assert reply == {"command": "echo", "args": {"queue": "sales", "n": 2}, "ok": True}


def test_socket_is_private(server: ControlServer) -> None:
    mode = os.stat(server.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("bad", "no queue named nope"),
        ("missing", "extension"),
        ("crash", "internal error"),
        ("unserialisable", "internal error"),
        ("not-a-dict", "internal error"),
        ("other", "unknown command 'other'"),
    ],
)
def test_handler_errors_become_replies(server: ControlServer, command: str, error: str) -> None:
    assert control_request(server.path, command) == {"ok": False, "error": error}


def test_bad_input_never_kills_the_server(server: ControlServer) -> None:
    replies = _raw(
        server.path,
        b"this is not json\n",
        b"[1, 2]\n",
        b'{"args": {}}\n',
        b'{"command": "echo", "args": [1]}\n',
        b"\xff\xfe\n",
        b'{"command": "echo"}\n',
    )
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert replies[0]["error"].startswith("malformed request")
    assert replies[3]["error"] == "malformed request: args must be an object"
    assert replies[5] == {"command": "echo", "args": {}, "ok": True}
    assert control_request(server.path, "echo")["ok"] is True


def test_overlong_line_is_refused(server: ControlServer) -> None:
    big = json.dumps({"command": "echo", "args": {"x": "a" * (MAX_LINE + 10)}}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(server.path))
        sock.sendall(big)
        reply = json.loads(sock.makefile("rb").readline())
    assert reply == {"ok": False, "error": f"request longer than {MAX_LINE} bytes"}
    assert control_request(server.path, "echo")["ok"] is True


def test_several_requests_on_one_connection(server: ControlServer) -> None:
    replies = _raw(server.path, *(json.dumps({"command": "echo", "args": {"i": i}}).encode() + b"\n"
                                  for i in range(3)))
    assert [r["args"]["i"] for r in replies] == [0, 1, 2]


def test_no_box_means_none(tmp_path: Path) -> None:
    path = tmp_path / SOCKET_NAME
    assert control_request(path, "echo") is None  # no file at all
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on: ECONNREFUSED
    stale.close()
    assert path.exists() and control_request(path, "echo") is None
    path.unlink()
    path.write_text("not a socket")
    assert control_request(path, "echo") is None


def test_stale_socket_is_replaced_and_removed_on_stop(tmp_path: Path, loop: LoopThread) -> None:
    path = tmp_path / SOCKET_NAME
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    srv = ControlServer(path, handler)
    loop.run(srv.start())
    assert control_request(path, "echo")["ok"] is True
    loop.run(srv.stop())
    assert not path.exists()
    assert control_request(path, "echo") is None


def test_a_second_server_does_not_steal_a_live_socket(server: ControlServer, loop: LoopThread) -> None:
    other = ControlServer(server.path, handler)
    with pytest.raises(RuntimeError, match="another box is already listening"):
        loop.run(other.start())
    assert control_request(server.path, "echo")["ok"] is True


def test_stop_with_a_client_still_connected(tmp_path: Path, loop: LoopThread) -> None:
    srv = ControlServer(tmp_path / SOCKET_NAME, handler)
    loop.run(srv.start())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(srv.path))
        loop.run(srv.stop())
        idle.settimeout(5)
        try:
            assert idle.recv(10) == b""  # the server hung up on it
        except ConnectionResetError:
            pass  # or it was still waiting to be accepted when the socket closed
    assert not srv.path.exists()


def test_a_data_folder_too_deep_for_a_socket_means_no_box_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / SOCKET_NAME
    with pytest.raises(OSError):  # the box logs this and runs on without the socket
        asyncio.run(ControlServer(path, lambda command, args: {}).start())
    assert control_request(path, "reload") is None  # so the CLI falls back to the store
