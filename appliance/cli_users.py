"""`switchboard admin create` and `switchboard user ...`: the web's accounts from the shell."""
from __future__ import annotations

import argparse
import getpass
import json
import sys

from .cli_support import UsageError, open_store, print_table
from .store import users


def add_commands(group, leaf) -> None:  # type: ignore[no-untyped-def]
    """Add the `admin` and `user` command groups (group/leaf as in cli._parser)."""
    admin = group("admin", "Web administrators.")
    cmd = leaf(admin, "create", _admin_create, "Create a web admin account (e.g. the first one).")
    cmd.add_argument("username")
    _password_flag(cmd)
    cmd = leaf(admin, "hash", _admin_hash, "Print an [admin] table with a password hash, for a provisioning file"
               " (an installer's SD card): the password itself is never written down.")
    cmd.add_argument("username")
    _password_flag(cmd)

    user = group("user", "Web accounts: agents, supervisors and admins.")
    cmd = leaf(user, "add", _user_add, "Create a web account.")
    cmd.add_argument("username")
    cmd.add_argument("--role", required=True, choices=users.ROLES, help="what the account may do")
    cmd.add_argument("--extension", help="the extension of the user's phone (agents need one)")
    _password_flag(cmd)
    cmd = leaf(user, "list", _user_list, "List web accounts.")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd = leaf(user, "passwd", _user_passwd, "Set a new password (the user's open sessions end).")
    cmd.add_argument("username")
    _password_flag(cmd)
    for name, help_text in (("disable", "Stop an account from logging in (its sessions end)."),
                            ("enable", "Let a disabled account log in again.")):
        cmd = leaf(user, name, _user_disable if name == "disable" else _user_enable, help_text)
        cmd.add_argument("username")


def _password_flag(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input instead of asking")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on: give it on standard input with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def _refused(exc: users.UserError) -> int:
    print(f"switchboard: {exc}", file=sys.stderr)
    return 2


def _find(db, username: str) -> dict:  # type: ignore[no-untyped-def]
    wanted = username.strip().lower()
    for user in users.list_users(db):
        if user["username"].lower() == wanted:
            return user
    raise UsageError(f"no web user named {username!r} (see `switchboard user list`)")


def _create(args: argparse.Namespace, role: str, extension: str | None) -> int:
    db, _socket = open_store(args, create=True)
    password = _read_password(args)
    try:
        users.create_user(db, args.username, password, role, extension)
    except users.UserError as exc:
        return _refused(exc)
    print(f"created {role} {args.username.strip()}")
    return 0


def _admin_hash(args: argparse.Namespace) -> int:
    password = _read_password(args)
    try:
        digest = users.hash_password(password, args.username.strip())
    except users.UserError as exc:
        return _refused(exc)
    print(f'[admin]\nusername = "{args.username.strip()}"\npassword_hash = "{digest}"')
    return 0


def _admin_create(args: argparse.Namespace) -> int:
    return _create(args, "admin", None)


def _user_add(args: argparse.Namespace) -> int:
    return _create(args, args.role, args.extension)


def _user_list(args: argparse.Namespace) -> int:
    db, _socket = open_store(args)
    rows = users.list_users(db)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_table(("USERNAME", "ROLE", "EXTENSION", "STATE", "CREATED"),
                [[u["username"], u["role"], u["extension"] or "", "disabled" if u["disabled"] else "enabled",
                  u["created_at"][:10]] for u in rows])
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    db, _socket = open_store(args)
    user = _find(db, args.username)
    password = _read_password(args)
    try:
        users.set_password(db, user["id"], password)
    except users.UserError as exc:
        return _refused(exc)
    print(f"new password set for {user['username']}; their open sessions are logged out")
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    db, _socket = open_store(args)
    user = _find(db, args.username)
    try:
        users.set_disabled(db, user["id"], disabled)
    except users.UserError as exc:
        return _refused(exc)
    print(f"{user['username']} {'disabled' if disabled else 'enabled'}")
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def _user_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)
