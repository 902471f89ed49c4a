"""The `switchboard` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from .calls.ivr import describe_path
from .config import ConfigError, default_data_dir, load_provisioning, load_settings
from .logs import setup_logging
from .store import directory, registrations
from .store.calls import recent_calls
from .store.db import open_database
from .store.provision import apply_provisioning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `switchboard` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"switchboard: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="A phone system in a box for small offices.")
    sub = parser.add_subparsers(dest="command")

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--data-dir", type=Path, default=None,
                         help="where the database lives (default: %s)" % default_data_dir())
        cmd.set_defaults(func=func)
        return cmd

    run = command("run", _run, "Start the box.")
    run.add_argument("--provision", type=Path, help="apply this provisioning file before starting")
    run.add_argument("--bind", help="address to listen on (default 0.0.0.0)")
    run.add_argument("--advertise", help="address put in SIP headers and SDP (default: derived from --bind)")
    run.add_argument("--sip-port", type=int, help="SIP port, UDP and TCP (default 5060)")
    run.add_argument("--http-port", type=int, help="web port (default 8080)")
    run.add_argument("--rtp-port-min", type=int, help="first RTP port (even)")
    run.add_argument("--rtp-port-max", type=int, help="last RTP port")
    run.add_argument("--ring-timeout", type=float, help="seconds a call rings before it gives up")
    run.add_argument("--log-format", choices=("json", "text"), help="log format (default json)")
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")

    prov = command("provision", _provision, "Apply a provisioning file (idempotent).")
    prov.add_argument("file", type=Path)

    calls = command("calls", _calls, "List recent calls.")
    calls.add_argument("--json", action="store_true", help="print JSON")
    calls.add_argument("--limit", type=int, default=20)

    ext = command("extensions", _extensions, "List extensions and where they are registered.")
    ext.add_argument("--json", action="store_true", help="print JSON")

    trunks = command("trunks", _trunks, "List trunks.")
    trunks.add_argument("--status", action="store_true", help="show registration state")
    trunks.add_argument("--json", action="store_true", help="print JSON")

    prompt = sub.add_parser("prompt", help="Manage voice prompts.", description="Manage voice prompts.")
    prompt.set_defaults(func=lambda _args: _usage(prompt))
    prompt_set = prompt.add_subparsers(dest="prompt_command").add_parser(
        "set", help="Replace a prompt with a WAV recording.",
        description="Replace a prompt with a WAV recording (any rate, mono or stereo; stored as 8 kHz mono).")
    prompt_set.add_argument("name", help="prompt name, e.g. greeting, menu, hold_music")
    prompt_set.add_argument("file", type=Path, help="the WAV file")
    prompt_set.add_argument("--data-dir", type=Path, default=None,
                            help="where the data lives (default: %s)" % default_data_dir())
    prompt_set.set_defaults(func=_prompt_set)
    return parser


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir if args.data_dir is not None else default_data_dir()


def _run(args: argparse.Namespace) -> int:
    from .box import Box  # the heavy imports only for the command that needs them

    overrides = {key: getattr(args, key) for key in (
        "bind", "advertise", "sip_port", "http_port", "rtp_port_min", "rtp_port_max", "ring_timeout",
        "log_format", "log_level")}
    settings = load_settings(_data_dir(args), overrides)
    setup_logging(settings.log_level, settings.log_format)
    box = Box(settings, args.provision)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await box.start()
            print(box.banner(), flush=True)
            await stop.wait()
        finally:
            await box.stop()

    asyncio.run(serve())
    return 0


def _provision(args: argparse.Namespace) -> int:
    settings = load_settings(_data_dir(args), {})
    prov = load_provisioning(args.file)
    db = open_database(settings.db_path)
    summary = apply_provisioning(db, prov, settings.realm)
    for kind, counts in summary.items():
        if isinstance(counts, dict):
            print(f"{kind}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def _calls(args: argparse.Namespace) -> int:
    db = open_database(load_settings(_data_dir(args), {}).db_path)
    rows = recent_calls(db, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    fields = ("from_number", "to_number", "started_at", "answered_at", "ended_at", "disposition", "duration",
              "answered_by")
    headings = ("FROM", "TO", "START", "ANSWER", "END", "DISPOSITION", "DURATION", "BY", "IVR")
    table = [[_cell(row.get(f)) for f in fields] + [describe_path(row.get("ivr_path") or [])] for row in rows]
    _print_table(headings, table)
    return 0


def _extensions(args: argparse.Namespace) -> int:
    db = open_database(load_settings(_data_dir(args), {}).db_path)
    contacts: dict[str, list[dict]] = {}
    for row in registrations.load(db):
        contacts.setdefault(row["aor"], []).append(row)
    rows = []
    for ext in directory.list_extensions(db):
        found = contacts.get(ext["number"], [])
        rows.append({**ext, "registered": bool(found),
                     "contacts": [{"contact": c["contact"], "source": f"{c['transport'].lower()}:{c['host']}:{c['port']}",
                                   "expires_in": int(c["expires_at"] - time.time()), "user_agent": c["user_agent"]}
                                  for c in found]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["number"], r["name"] or "", "yes" if r["registered"] else "no",
              ", ".join(c["source"] for c in r["contacts"])] for r in rows]
    _print_table(("NUMBER", "NAME", "REGISTERED", "FROM"), table)
    return 0


def _trunks(args: argparse.Namespace) -> int:
    db = open_database(load_settings(_data_dir(args), {}).db_path)
    rows = []
    for trunk in directory.list_trunks(db):
        status = directory.get_setting(db, "trunk_status:" + trunk["name"])
        rows.append({**trunk, "status": json.loads(status) if status else None})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headings = ["NAME", "HOST", "PORT", "REGISTER", "INBOUND", "PREFIX"]
    if args.status:
        headings += ["STATE", "SINCE", "ERROR"]
    table = []
    for r in rows:
        line = [r["name"], r["host"], str(r["port"]), "yes" if r["register"] else "no",
                r["inbound"] or "", r["outbound_prefix"] or ""]
        if args.status:
            st = r["status"] or {}
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["changed_at"])) if st else ""
            line += [st.get("state", "not started"), since, st.get("last_error") or ""]
        table.append(line)
    _print_table(headings, table)
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _prompt_set(args: argparse.Namespace) -> int:
    from .media.prompts import PromptError, PromptLibrary

    try:
        prompt = PromptLibrary(_data_dir(args) / "prompts").set(args.name, args.file)
    except PromptError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    print(f"prompt {prompt.name}: {prompt.duration:.1f} s, stored as 8 kHz mono")
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _print_table(headings: tuple[str, ...] | list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    print("  ".join(h.ljust(w) for h, w in zip(headings, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if not rows:
        print("(none)")


if __name__ == "__main__":
    sys.exit(main())
