"""The `switchboard` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from .calls.ivr import describe_path
from hw import cli_modem

from . import cli_boot, cli_customers, cli_system, cli_prompts, cli_security, cli_status, cli_users
from .cli_support import UsageError, data_dir as _data_dir, open_store as _open, print_table as _print_table
from .config import ConfigError, default_data_dir, load_provisioning, load_settings
from .config.settings import add_cli_flags, cli_overrides
from .control import SOCKET_NAME, control_request
from .local_time import local_time, office_zone, zone_name
from .logs import setup_logging
from .store import callbacks, directory, queues, registrations
from .calls import queue_definitions
from .crm import customer_store
from .store.calls import recent_calls
from .store.db import open_database
from .calls.ivr_definitions import get_hours
from .provisioning import apply_provisioning

PHONE = re.compile(r"\+?[0-9]{2,20}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `switchboard` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ConfigError, UsageError) as exc:
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
    add_cli_flags(run)  # --bind, --sip-port...: declared with the settings they set
    run.add_argument("--demo", action="store_true",
                     help="add a simulated GSM modem and, without --provision, a small demo office whose "
                          "caller rings in now and then")

    prov = command("provision", _provision, "Apply a provisioning file (idempotent).")
    prov.add_argument("file", type=Path)

    calls = command("calls", _calls, "List recent calls (times in the office's time zone; --json: UTC).")
    calls.add_argument("--json", action="store_true", help="print JSON")
    calls.add_argument("--limit", type=int, default=20)
    calls.add_argument("--since", help="from this day (YYYY-MM-DD, local) or ISO time on")
    calls.add_argument("--extension", help="calls this extension placed, received or answered")
    calls.add_argument("--direction", choices=("inbound", "outbound", "internal", "callback"))
    calls.add_argument("--queue", help="calls that went through this queue")

    ext = command("extensions", _extensions, "List extensions and where they are registered.")
    ext.add_argument("--json", action="store_true", help="print JSON")

    trunks = command("trunks", _trunks, "List trunks.")
    trunks.add_argument("--status", action="store_true", help="show registration state")
    trunks.add_argument("--json", action="store_true", help="print JSON")


    groups: dict[str, argparse._SubParsersAction] = {}

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        """A command with sub-commands; asking again for a name returns the same one."""
        if name not in groups:
            top = sub.add_parser(name, help=help_text, description=help_text)
            top.set_defaults(func=lambda _args, top=top: _usage(top))
            groups[name] = top.add_subparsers(dest=f"{name}_command")
        return groups[name]

    def leaf(parent: argparse._SubParsersAction, name: str, func,  # type: ignore[no-untyped-def]
             help_text: str) -> argparse.ArgumentParser:
        cmd = parent.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--data-dir", type=Path, default=None,
                         help="where the database lives (default: %s)" % default_data_dir())
        cmd.set_defaults(func=func)
        return cmd

    agent = group("agent", "Log queue agents in and out, pause and unpause them.")
    for action, help_text in (("login", "Log an agent in to a queue (default: all their queues)."),
                              ("logout", "Log an agent out of a queue (default: all their queues).")):
        cmd = leaf(agent, action, _agent, help_text)
        cmd.add_argument("extension")
        cmd.add_argument("--queue", help="queue name")
    cmd = leaf(agent, "pause", _agent, "Pause an agent in all their queues.")
    cmd.add_argument("extension")
    cmd.add_argument("--reason", default="paused", help='why (default "paused")')
    cmd = leaf(agent, "unpause", _agent, "Make a paused agent available again.")
    cmd.add_argument("extension")

    queue = group("queue", "Queue status and statistics.")
    cmd = leaf(queue, "status", _queue_status, "Who waits, which agents are available, pending callbacks.")
    cmd.add_argument("name", nargs="?", help="one queue (default: all)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd = leaf(queue, "stats", _queue_stats, "Queue and agent statistics.")
    cmd.add_argument("name", nargs="?", help="one queue (default: all)")
    cmd.add_argument("--since", help="from this day on, YYYY-MM-DD (default: everything)")
    cmd.add_argument("--json", action="store_true", help="print JSON")

    callback = group("callback", "Callbacks the queues owe to customers.")
    cmd = leaf(callback, "add", _callback_add, "Ask a queue to call a number back.")
    cmd.add_argument("number", help="digits with an optional leading +")
    cmd.add_argument("--queue", required=True, help="queue name")
    cmd.add_argument("--at", help='"HH:MM" (the next such local time) or an ISO date and time (default: now)')
    cmd.add_argument("--name", help="the customer's name")
    cmd = leaf(callback, "cancel", _callback_cancel, "Cancel a pending callback (its ID as `callback list` shows it).")
    cmd.add_argument("id", help="the callback's ID, or its first characters")
    cmd = leaf(callback, "list", _callback_list, "List pending and running callbacks.")
    cmd.add_argument("--json", action="store_true", help="print JSON")

    cli_status.add_commands(command)
    cli_boot.add_commands(command)
    cli_modem.add_commands(command)
    cli_customers.add_commands(group, leaf)
    cli_users.add_commands(group, leaf)
    cli_system.add_commands(command, group, leaf)
    cli_security.add_commands(group, leaf)
    cli_prompts.add_commands(group, leaf)
    customer = group("customer", "Customers: list, search, import and export as CSV.")
    cmd = leaf(customer, "add", _customer_add, "Add or update a customer by phone number.")
    cmd.add_argument("phone")
    cmd.add_argument("--name")
    cmd.add_argument("--segment", choices=customer_store.SEGMENTS, default="new")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .box import Box  # the heavy imports only for the command that needs them

    overrides = cli_overrides(args)
    # The box itself runs where it is told, or in its own default (systemd's StateDirectory as a service).
    settings = load_settings(args.data_dir if args.data_dir is not None else default_data_dir(), overrides)
    setup_logging(settings.log_level, settings.log_format)
    demo = None
    provision = args.provision
    if args.demo:
        from .demo import Demo  # the simulator only for the demo

        demo = Demo(settings.data_dir)
        demo.start()
        provision = provision or demo.provisioning()
    box = Box(settings, provision)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await box.start()
            print(box.banner(), flush=True)
            if sys.stdout.isatty():
                print(box.welcome(), flush=True)
            if demo is not None:
                print(demo.instructions(box.endpoint.host, box.transport.port), flush=True)
                demo.begin(box.bus)
            restart = asyncio.ensure_future(box.ctx.restart.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait((restart, stopped), return_when=asyncio.FIRST_COMPLETED)
            for waiter in (restart, stopped):
                waiter.cancel()
        finally:
            await box.stop()

    try:
        asyncio.run(serve())
    finally:
        if demo is not None:
            demo.stop()
    return 0


def _provision(args: argparse.Namespace) -> int:
    settings = load_settings(_data_dir(args), {})
    prov = load_provisioning(args.file)
    db = open_database(settings.db_path)
    summary = apply_provisioning(db, prov, settings.realm)
    for kind, counts in summary.items():
        if isinstance(counts, dict):
            print(f"{kind}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    reply = control_request(settings.data_dir / SOCKET_NAME, "reload")
    if reply is not None:
        print("box: reloaded" if reply.get("ok") else f"box: reload failed: {reply.get('error')}")
    return 0


def _calls(args: argparse.Namespace) -> int:
    db, _ = _open(args)
    tz = office_zone(load_settings(_data_dir(args), {}).timezone)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since: expected YYYY-MM-DD or an ISO time, got {args.since!r}") from None
        since = since if since.tzinfo else since.replace(tzinfo=tz)
    rows = recent_calls(db, args.limit, since=since, extension=args.extension, direction=args.direction,
                        queue=args.queue)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headings = ("FROM", "TO", f"START ({zone_name(tz)})", "ANSWER", "END", "DISPOSITION", "DURATION", "BY",
                "NOTES")
    table = [[_cell(row["from_number"]), _cell(row["to_number"]), local_time(row["started_at"], tz) or "-",
              local_time(row["answered_at"], tz)[11:] or "-", local_time(row["ended_at"], tz)[11:] or "-",
              _cell(row["disposition"]), _cell(row["duration"]), _cell(row["answered_by"]), _call_notes(row)]
             for row in rows]
    _print_table(headings, table)
    return 0


def _call_notes(row: dict) -> str:
    """The IVR path, the queue's outcome and a callback's result, in words."""
    extra = row.get("extra") or {}
    notes = [describe_path(row.get("ivr_path") or [])]
    if extra.get("queue"):
        wait = extra.get("queue_wait")
        notes.append(f"queue {extra['queue']}: {extra.get('queue_outcome', 'waiting')}"
                     + (f" after {float(wait):.0f} s" if wait is not None else ""))
    if row.get("direction") == "callback":
        notes.append(f"callback {extra.get('callback_outcome', 'connected' if row.get('answered_at') else 'not answered')}")
    return "; ".join(n for n in notes if n)


def _extensions(args: argparse.Namespace) -> int:
    db, _ = _open(args)
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
    db, _ = _open(args)
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


# --- queues, agents, callbacks, customers ---


def _box_failed(reply: dict) -> int:
    print(f"switchboard: the box refused: {reply.get('error', 'no reason given')}", file=sys.stderr)
    return 1


def _agent(args: argparse.Namespace) -> int:
    """agent login/logout/pause/unpause: the store first (it is the truth), then tell the box."""
    db, sock = _open(args, create=True)
    action, ext = args.agent_command, args.extension
    if directory.get_extension(db, ext) is None:
        raise UsageError(f'no extension "{ext}"')
    member_of = [q.name for q in queue_definitions.list_queues(db) if q.member(ext)]
    logged_in = [q for e, q in queues.logins(db) if e == ext]
    name = getattr(args, "queue", None)
    if name is not None:
        if queue_definitions.get_queue(db, name) is None:
            raise UsageError(f'no queue "{name}"')
        # Logging out of a queue one has left the membership of must still work.
        if name not in member_of and not (action == "logout" and name in logged_in):
            raise UsageError(f'{ext} is not a member of queue "{name}"')
        targets = [name]
    elif action == "logout":
        targets = sorted(set(member_of) | set(logged_in))
    else:
        targets = member_of
    if action != "unpause" and not targets:
        raise UsageError(f"{ext} is not a member of any queue")

    if action in ("login", "logout"):
        for queue in targets:
            queues.set_login(db, ext, queue, action == "login")
    else:
        queues.set_pause(db, ext, action == "pause", getattr(args, "reason", ""))
    reply = control_request(sock, "agent", extension=ext, action=action, queue=name,
                            reason=getattr(args, "reason", None))
    if reply is None:
        done = {"login": f"logged in to {', '.join(targets)}", "logout": f"logged out of {', '.join(targets)}",
                "pause": f"paused ({getattr(args, 'reason', '')})", "unpause": "unpaused"}[action]
        print(f"{ext}: {done} (applies when the box starts)")
        return 0
    if not reply.get("ok"):
        return _box_failed(reply)
    print(_agent_line(ext, reply))
    return 0


def _agent_line(ext: str, reply: dict) -> str:
    """The box's reply {state, reason, queues} as one line, e.g. "201: available in sales"."""
    line = f"{reply.get('extension', ext)}: {reply.get('state', 'done')}"
    if reply.get("reason"):
        line += f" ({reply['reason']})"
    if reply.get("queues"):
        line += " in " + ", ".join(reply["queues"])
    return line


def _queue_status(args: argparse.Namespace) -> int:
    db, sock = _open(args)
    if args.name is not None and queue_definitions.get_queue(db, args.name) is None:
        raise UsageError(f'no queue "{args.name}"')
    reply = control_request(sock, "queue_status", queue=args.name)
    if reply is None:
        reply = _stored_status(db, args.name)
    elif not reply.get("ok"):
        return _box_failed(reply)
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    if reply.get("live") is False:
        print("box not running: stored logins, pauses and callbacks only")
    for queue in reply.get("queues", []):
        _print_queue(queue)
    if not reply.get("queues"):
        print("(no queues)")
    return 0


def _stored_status(db: Database, name: str | None) -> dict:
    """The queue_status reply shape built from the store, for when no box runs."""
    logged = set(queues.logins(db))
    paused = queues.pauses(db)
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    answered = queues.answered_counts(db, midnight)
    result = []
    for cfg in queue_definitions.list_queues(db):
        if name is not None and cfg.name != name:
            continue
        hours = get_hours(db, cfg.hours) if cfg.hours else None
        agents = []
        for ext in cfg.extensions:
            state = "logged_out" if (ext, cfg.name) not in logged else "paused" if ext in paused else "logged in"
            agents.append({"extension": ext, "state": state, "reason": paused.get(ext) if state == "paused" else None,
                           "answered_today": answered.get((cfg.name, ext), 0)})
        pending = [{key: row[key] for key in ("id", "number", "position_at", "due_at", "attempts", "state",
                                              "next_attempt_at")}
                   for row in callbacks.list_callbacks(db, ("pending",), cfg.name)]
        result.append({"name": cfg.name, "strategy": cfg.strategy,
                       "open": hours is None or hours.is_open(datetime.now().astimezone()),
                       "waiting": [], "agents": agents, "callbacks": pending})
    return {"live": False, "queues": result}


def _print_queue(queue: dict) -> None:
    print(f"\n{queue['name']} ({queue.get('strategy', '?')}, {'open' if queue.get('open') else 'closed'})")
    waiting = [[str(w.get("position", "")), w.get("kind", ""), w.get("number") or "-", w.get("name") or "",
                "yes" if w.get("vip") else "", _duration(w.get("wait")), ", ".join(w.get("ringing") or [])]
               for w in queue.get("waiting", [])]
    _print_table(("POS", "KIND", "NUMBER", "NAME", "VIP", "WAIT", "RINGING"), waiting)
    agents = [[a["extension"], a.get("name") or "", a.get("state", ""), a.get("reason") or "",
               str(a.get("answered_today", 0))] for a in queue.get("agents", [])]
    print()
    _print_table(("AGENT", "NAME", "STATE", "REASON", "ANSWERED TODAY"), agents)
    pending = [[c["number"], c.get("name") or "", _local(c.get("position_at")), _local(c.get("due_at")),
                str(c.get("attempts", 0)), c.get("state", ""), _local(c.get("next_attempt_at"))]
               for c in queue.get("callbacks", [])]
    print()
    _print_table(("CALLBACK", "NAME", "PLACE", "DUE", "ATTEMPTS", "STATE", "NEXT TRY"), pending)


def _queue_stats(args: argparse.Namespace) -> int:
    db, _ = _open(args)
    defined = {q.name: q for q in queue_definitions.list_queues(db)}
    if args.name is not None and args.name not in defined:
        raise UsageError(f'no queue "{args.name}"')
    since = None
    if args.since is not None:
        try:
            since = datetime.strptime(args.since, "%Y-%m-%d").timestamp()  # local midnight
        except ValueError:
            raise UsageError(f"--since: expected a day like 2026-05-04, got {args.since!r}") from None
    levels = {name: q.service_level for name, q in defined.items()}
    result = {"queues": queues.queue_stats(db, args.name, since, levels),
              "agents": queues.agent_stats(db, args.name, since)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_table(("QUEUE", "OFFERED", "ANSWERED", "ABANDONED", "ABANDON %", "SERVICE %", "WAIT AVG", "WAIT P90",
                  "AHT", "CB ASKED", "CB DONE", "CB FAILED"),
                 [[q["queue"], str(q["offered"]), str(q["answered"]), str(q["abandoned"]),
                   f"{100 * q['abandon_rate']:.0f}", f"{100 * q['service_level']:.0f}", _duration(q["wait_avg"]),
                   _duration(q["wait_p90"]), _duration(q["aht"]), str(q["callbacks_requested"]),
                   str(q["callbacks_completed"]), str(q["callbacks_failed"])] for q in result["queues"]])
    print()
    _print_table(("AGENT", "OFFERED", "ANSWERED", "MISSED", "AHT"),
                 [[a["agent"], str(a["offered"]), str(a["answered"]), str(a["missed"]), _duration(a["aht"])]
                  for a in result["agents"]])
    return 0


def _parse_at(text: str, now: datetime) -> datetime:
    """When --at means: "14:00" is the next such local time; an ISO date and time is local unless it says."""
    if re.fullmatch(r"[0-9]{1,2}:[0-9]{2}", text):
        hour, minute = (int(part) for part in text.split(":"))
        if hour > 23 or minute > 59:
            raise UsageError(f"--at: no such time {text!r}")
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f'--at: expected "HH:MM" or a date and time like 2026-05-04T14:00, got {text!r}') from None
    return at.astimezone() if at.tzinfo is None else at


def _callback_add(args: argparse.Namespace) -> int:
    if not PHONE.fullmatch(args.number):
        raise UsageError(f"expected a number of digits with an optional leading +, got {args.number!r}")
    db, sock = _open(args, create=True)
    if queue_definitions.get_queue(db, args.queue) is None:
        raise UsageError(f'no queue "{args.queue}"')
    now = datetime.now().astimezone()
    at = now if args.at is None else _parse_at(args.at, now)
    callback_id, created = callbacks.schedule_callback(db, number=args.number, queue=args.queue, at=at,
                                                       name=args.name)
    what = "added" if created else "already pending, moved"
    print(f"callback {callback_id[:8]} {what}: {args.number} in {args.queue} at {at:%Y-%m-%d %H:%M}")
    if control_request(sock, "reload") is None:
        print("(applies when the box starts)")
    return 0


def _callback_cancel(args: argparse.Namespace) -> int:
    db, sock = _open(args)
    found = callbacks.find_pending(db, args.id)
    if len(found) != 1:
        raise UsageError(f"no pending callback with ID {args.id!r}" if not found
                         else f"{len(found)} pending callbacks start with {args.id!r}: give more characters")
    row = found[0]
    reply = control_request(sock, "cancel_callback", id=row["id"], by="the command line")
    if reply is None:  # the box is not running: the store is the truth, it reads it at start
        cancelled = callbacks.cancel_callback(db, row["id"])
    elif not reply.get("ok"):
        raise UsageError(reply.get("error", "the box refused"))
    else:
        cancelled = reply["cancelled"]
    if not cancelled:
        raise UsageError(f"callback {row['id'][:8]} is no longer pending")
    print(f"callback {row['id'][:8]} to {row['number']} ({row['queue']}) cancelled")
    return 0


def _callback_list(args: argparse.Namespace) -> int:
    db, _ = _open(args)
    rows = callbacks.list_callbacks(db)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _print_table(("ID", "QUEUE", "NUMBER", "NAME", "PLACE", "DUE", "ATTEMPTS", "STATE", "NEXT TRY"),
                 [[r["id"][:8], r["queue"] or "-", r["number"], r["name"] or "", _local(r["position_at"]),
                   _local(r["due_at"]), str(r["attempts"]), r["state"], _local(r["next_attempt_at"])] for r in rows])
    return 0


def _customer_add(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"\+?[0-9][0-9 ().-]*", args.phone) or len(re.sub(r"\D", "", args.phone)) < 2:
        raise UsageError(f"expected a phone number (digits, an optional leading +), got {args.phone!r}")
    db, _ = _open(args, create=True)
    customer_id = customer_store.upsert_customer(db, args.phone, args.name, args.segment)
    print(f"customer {customer_id}: {args.phone} ({args.segment})")
    return 0


def _local(iso: str | None) -> str:
    """A stored UTC time as local "YYYY-MM-DD HH:MM", or "-"."""
    return local_time(iso, office_zone(), seconds=False) or "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
