"""`switchboard status`: the running box's LEDs in words, its trunks, calls and phones."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .cli_support import data_dir, print_table
from .config import load_settings
from .control import SOCKET_NAME, control_request

Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    """Declare `status` with the CLI's command(name, func, help) helper."""
    cmd = command("status", _status, "Ask the running box how it is: status LEDs, trunks, calls, phones.")
    cmd.add_argument("--json", action="store_true", help="print JSON")


def _status(args: argparse.Namespace) -> int:
    settings = load_settings(data_dir(args), {})
    socket_path = settings.data_dir / SOCKET_NAME
    reply = control_request(socket_path, "status")
    if reply is None:
        print(f"switchboard: the box is not running (nothing listens on {socket_path})", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"switchboard: the box refused: {reply.get('error', 'no reason given')}", file=sys.stderr)
        return 1
    reply.pop("ok")
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    print(f"Switchboard is running, up {_uptime(reply.get('uptime', 0))}")
    print("\nStatus LEDs")
    print_table(("LED", "SHOWS", "GPIO"),
                [[name, led["words"], "not fitted" if led.get("pin") is None else str(led["pin"])]
                 for name, led in reply.get("leds", {}).items()])
    trunks = reply.get("trunks", {})
    print("\nTrunks: " + (", ".join(f"{name} {state}" for name, state in sorted(trunks.items())) or "none"))
    for name, line in sorted(reply.get("lines", {}).items()):
        print(f"Modem line {name}: {_line_words(line)}")
    print(f"Calls in progress: {reply.get('calls', 0)}")
    print(f"Registered phones: {reply.get('phones', 0)}")
    bans = reply.get("bans", [])
    if bans:
        print(f"\nBanned addresses ({len(bans)}): lift one with `switchboard ban lift ADDRESS`")
        print_table(("ADDRESS", "MINUTES LEFT", "WHY"),
                    [[b["source"], str(max(1, b["seconds_left"] // 60)), b["reason"]] for b in bans])
    else:
        print("Banned addresses: none")
    return 0


def _line_words(line: dict) -> str:
    """A modem line's state for people: state, network, signal, and the last error while down."""
    words = [line.get("state") or "unknown", f"on {line.get('port')}"]
    if line.get("registered"):
        words.append(f"registered to {line.get('operator') or 'the network'}")
    if line.get("csq") not in (None, 99):
        words.append(f"signal {line['csq']}/31" + (f" ({line['rssi_dbm']} dBm)" if line.get("rssi_dbm") else ""))
    if line.get("state") == "down" and line.get("last_error"):
        words.append(f"last error: {line['last_error']}")
    return ", ".join(words)


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s"
