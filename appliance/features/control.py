"""The control socket: `switchboard` commands (reload, status, agents, callbacks, bans) reach the running box."""
from __future__ import annotations

import logging
import time

from ..control import SOCKET_NAME, ControlServer
from . import Context, Teardown

log = logging.getLogger("switchboard.box")
_UPDATES: set = set()


def status(ctx: Context) -> dict:
    """`switchboard status`: the LEDs, trunks, calls in progress, registered phones and uptime."""
    return {"leds": ctx.led_policy.state(),
            "trunks": {name: c.status.state for name, c in ctx.trunks.items()},
            "lines": {name: line.status() for name, line in ctx.lines.items()},
            "calls": len(ctx.b2bua.active), "phones": len(ctx.location.registered()),
            "bans": ctx.ban_keeper.listing(),
            "uptime": round(time.time() - ctx.services.get("started_at", time.time()), 1)}


def handle(ctx: Context, command: str, args: dict) -> dict:
    """A command from `switchboard` on the control socket."""
    if command == "reload":
        ctx.queues.reload()
        return {}
    if command == "status":
        return status(ctx)
    if command == "bans":
        return {"bans": ctx.ban_keeper.listing()}
    if command == "unban":
        return {"lifted": ctx.ban_keeper.lift(str(args.get("source") or ""))}
    if command == "unlock_login":
        api = ctx.services.get("api")
        throttle = getattr(api, "login_throttle", None)
        if throttle is None:
            raise ValueError("the web is not running, so no login is locked")
        return {"unlocked": throttle.unlock(args.get("username") or None, args.get("address") or None)}
    if command == "update":
        return start_update(ctx, str(args.get("file") or ""))
    return ctx.queues.control(command, args)


def start_update(ctx: Context, name: str) -> dict:
    """Install an update file the CLI put in the data folder; the box restarts into it when installed."""
    path = ctx.settings.data_dir / name
    if not name.startswith("upload-") or "/" in name or not path.is_file():
        raise ValueError("no such update file in the data folder")

    async def run() -> None:
        try:
            await ctx.install_update(path)
        except Exception as exc:  # noqa: BLE001 - update.json says what went wrong; the box runs on
            log.error("update failed: %s", exc)
        finally:
            path.unlink(missing_ok=True)

    task = ctx.loop.create_task(run())
    _UPDATES.add(task)  # the loop keeps only a weak reference to its tasks
    task.add_done_callback(_UPDATES.discard)
    return {"installing": name}


async def setup(ctx: Context) -> Teardown:
    """Listen on the data folder's control socket (without it, CLI changes apply at the next start)."""
    server = ControlServer(ctx.settings.data_dir / SOCKET_NAME, lambda command, args: handle(ctx, command, args))
    try:
        await server.start()
    except OSError as exc:  # e.g. a data folder path too long for a Unix socket: the CLI then uses the store
        log.error("control socket unavailable (%s); `switchboard agent` changes apply at the next start", exc)
        return lambda: None
    ctx.provide(control=server)
    return server.stop
