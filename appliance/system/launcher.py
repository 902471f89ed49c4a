"""`switchboard-launch`: the systemd unit's entry point, always run from the factory environment.

It settles a pending update first (notes a trial's first start, rolls back an overdue one: see
releases.py), then replaces itself (same PID, so systemd's READY and watchdog still come from the
main process) with the `switchboard` of the release in use.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .releases import before_start, program

FACTORY_ENV = "SWITCHBOARD_FACTORY"  # tells the box where the factory environment (and its wheelhouse) is


def data_dir_from(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """The data folder: --data-dir DIR if given, else systemd's STATE_DIRECTORY, else None (no updates)."""
    for i, arg in enumerate(argv):
        if arg == "--data-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--data-dir="):
            return Path(arg.split("=", 1)[1])
    state = environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) if state else None


def main(argv: list[str] | None = None) -> None:
    """Settle updates, then exec the chosen `switchboard` with the same arguments."""
    args = sys.argv[1:] if argv is None else argv
    factory = Path(sys.prefix)
    data_dir = data_dir_from(args, os.environ)
    target = factory / "bin" / "switchboard"
    if data_dir is not None:
        try:
            state = before_start(data_dir)
            if state is not None and state.state == "rolled_back" and state.message:
                print(f"switchboard-launch: rolled back: {state.message}", file=sys.stderr, flush=True)
            target = program(data_dir, factory)
        except OSError as exc:  # a full or read-only card: run what is there rather than nothing
            print(f"switchboard-launch: could not settle the update state: {exc}", file=sys.stderr, flush=True)
    os.environ[FACTORY_ENV] = str(factory)
    os.execv(target, [str(target), *args])


if __name__ == "__main__":
    main()
