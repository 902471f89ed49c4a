"""`switchboard ban list|lift` and `switchboard user unlock`: undoing what the box's defences did."""
from __future__ import annotations

import argparse
import json
import sys

from .cli_support import UsageError, open_store, print_table
from .control import control_request
from .store import bans as store_bans


def add_commands(group, leaf) -> None:  # type: ignore[no-untyped-def]
    """Add `ban list`, `ban lift ADDRESS` and `user unlock NAME` (group/leaf as in cli._parser)."""
    ban = group("ban", "Addresses the box banned for guessing passwords.")
    cmd = leaf(ban, "list", _ban_list, "List banned addresses, why, and for how long.")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd = leaf(ban, "lift", _ban_lift, "Lift the ban on an address now.")
    cmd.add_argument("address")
    user = group("user", "Web accounts: agents, supervisors and admins.")
    cmd = leaf(user, "unlock", _user_unlock, "Let a user try to log in again at once after failed attempts.")
    cmd.add_argument("username")


def _ban_list(args: argparse.Namespace) -> int:
    db, socket_path = open_store(args)
    reply = control_request(socket_path, "bans")
    if reply is not None and reply.get("ok"):
        rows = [{"source": b["source"], "left": f"{b['seconds_left'] // 60} min", "reason": b["reason"]}
                for b in reply["bans"]]
    else:  # the box is not running: what it will restore at its next start
        rows = [{"source": b["source"], "left": f"until {b['until'][:16].replace('T', ' ')} UTC",
                 "reason": b["reason"] or ""} for b in store_bans.list_bans(db)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_table(("ADDRESS", "BANNED FOR", "WHY"), [[r["source"], r["left"], r["reason"]] for r in rows])
    return 0


def _ban_lift(args: argparse.Namespace) -> int:
    db, socket_path = open_store(args)
    reply = control_request(socket_path, "unban", source=args.address)
    if reply is not None and not reply.get("ok"):
        raise UsageError(reply.get("error", "the box refused"))
    lifted = reply["lifted"] if reply is not None else False
    lifted = store_bans.lift_ban(db, args.address) or lifted
    if not lifted:
        print(f"switchboard: {args.address} is not banned", file=sys.stderr)
        return 1
    print(f"{args.address} may connect again.")
    return 0


def _user_unlock(args: argparse.Namespace) -> int:
    _db, socket_path = open_store(args)
    reply = control_request(socket_path, "unlock_login", username=args.username)
    if reply is None:
        print("The box is not running; failed logins are forgotten when it starts.")
        return 0
    if not reply.get("ok"):
        raise UsageError(reply.get("error", "the box refused"))
    print(f"{args.username} may log in again now." if reply["unlocked"]
          else f"{args.username} was not waiting; they may log in.")
    return 0
