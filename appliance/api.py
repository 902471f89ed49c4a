"""The thread-safe facade the web (and later the LEDs) use to read the core's live state."""
from __future__ import annotations

import asyncio
import re
import time
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Callable

from .store import calls as store_calls
from .store import directory, users
from .store.db import open_connection
from .crm.settings import CrmSettings, load_crm_settings
from .crm.wrapup import record_wrapup
from .store.wrapups import set_wrapup_callback
from .features.control import start_update
from .system import releases
from .system.backups import find_backup, list_backups
from .system.installer import MAX_UPDATE_BYTES

AGENT_ACTIONS = ("login", "logout", "pause", "unpause")

if TYPE_CHECKING:
    from .features import Context


class BoxApi:
    """Crosses from another thread into the box's loop; never touches core objects directly."""

    def __init__(self, box: "Context") -> None:
        self._box = box
        self.login_throttle: Any = None  # the web's LoginThrottle, set when the web starts

    @property
    def bus(self):  # type: ignore[no-untyped-def]
        """The event bus (thread-safe by itself)."""
        return self._box.bus

    @property
    def db(self):  # type: ignore[no-untyped-def]
        """The loop's own database connection; store functions lock it, so any thread may call them."""
        return self._box.db

    def open_connection(self):  # type: ignore[no-untyped-def]
        """A connection of the web's own (WAL: its reads never wait for the loop's writes, nor hold them up)."""
        path = self._box.settings.db_path
        return open_connection(path) if path.exists() else self._box.db

    @property
    def timezone(self) -> str:
        """The office's time zone ([box] timezone; "" for the system's)."""
        return self._box.settings.timezone

    @property
    def web_threads(self) -> int:
        """How many requests the web serves at once (open screen-pop streams included)."""
        return self._box.settings.web_threads

    def web_secret(self) -> str:
        """The key that signs the web's session cookies, kept in the store."""
        return users.secret_key(self._box.db)

    def setup_code(self) -> str | None:
        """The one-time code the first-admin page asks for; None once an admin exists."""
        return users.setup_code(self._box.db)

    def crm_settings(self) -> CrmSettings:
        """The office's CRM rules (region, outcomes, segments), as provisioned."""
        return load_crm_settings(self._box.db)

    def _in_loop(self, func: Callable[[], Any], timeout: float = 2.0) -> Any:
        async def run() -> Any:
            return func()
        return asyncio.run_coroutine_threadsafe(run(), self._box.loop).result(timeout)

    def alive(self) -> bool:
        """Whether the box's loop answers at once (for /healthz: no state read, nothing to leak)."""
        return bool(self._in_loop(lambda: True))

    def status(self) -> dict:
        """Registrations, trunks, calls in progress and the ban list, read inside the loop."""
        box = self._box

        def snapshot() -> dict:
            now = box.location.clock()
            registered = {aor: [{"contact": b.contact, "source": f"{b.source.transport.lower()}:{b.source.host}:{b.source.port}",
                                 "expires_in": b.expires_in(now), "user_agent": b.user_agent} for b in bindings]
                          for aor, bindings in box.location.registered().items()}
            trunks = {name: {"state": c.status.state, "error": c.status.last_error, "reachable": c.status.reachable}
                      for name, c in box.trunks.items()}
            return {"registered": registered, "trunks": trunks, "active_calls": len(box.b2bua.active),
                    "media_relays": box.media.active(), "bans": box.ban_keeper.listing(),
                    "sip": {"port": box.transport.port, "advertise": box.endpoint.host}}

        state = self._in_loop(snapshot)
        clock = box.services.get("clock")
        state["clock_synced"] = None if clock is None else clock.synced
        state["extensions"] = [{**ext, "contacts": state["registered"].get(ext["number"], [])}
                               for ext in directory.list_extensions(box.db)]
        return state

    def lift_ban(self, source: str) -> bool:
        """Lift a ban (an admin's button); True if there was one."""
        return self._in_loop(lambda: self._box.ban_keeper.lift(source))

    def recent_calls(self, limit: int = 20) -> list[dict]:
        """The latest call records."""
        return store_calls.recent_calls(self._box.db, limit)

    # --- the agent console ---------------------------------------------------------
    def agent_state(self, extension: str) -> dict:
        """The agent's live state: available, paused (with the reason), wrapup, on_call, logged_out."""
        queues = self._box.queues

        def read() -> dict:
            agent = queues.engine.agent(extension)
            member_of = sorted(cfg.name for cfg in queues.engine.queues.values() if cfg.member(extension))
            return {"extension": extension, "state": agent.state if agent else "logged_out",
                    "reason": agent.reason if agent else "", "queues": sorted(agent.queues) if agent else [],
                    "member_of": member_of}

        return self._in_loop(read)

    def agent_action(self, extension: str, action: str, reason: str = "") -> dict:
        """Log in, log out, pause or unpause the agent in all their queues; ValueError says why not."""
        if action not in AGENT_ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        self._in_loop(lambda: self._box.queues.agent_action(extension, action, None, reason))
        return self.agent_state(extension)

    def click_to_call(self, extension: str, number: str) -> str:
        """Ring the agent's phone, then dial `number`; the call record id. ValueError says why not."""
        return self._in_loop(lambda: self._box.click_to_call.start(extension, number))

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        """Cancel a pending callback; False if it was not pending."""
        return self._in_loop(lambda: self._box.queues.cancel_callback(callback_id, by))

    def queue_status(self) -> dict:
        """Queues, their agents and waiting callers, live."""
        return self._in_loop(lambda: self._box.queues.status())

    def save_wrapup(self, *, extension: str, user: str, call_id: str, outcome: str, moods: list[str],
                    note: str, callback_at: str | None) -> dict:
        """Store the agent's wrap-up; schedule the asked-for callback; alert supervisors when the mood calls for it."""
        db = self._box.db
        result = record_wrapup(db, self.crm_settings(), call_id=call_id, agent=extension, outcome=outcome,
                               moods=moods, note=note, callback_at=callback_at, saved_by=user)
        wrapup = result["wrapup"]
        callback_error = None
        if wrapup.get("callback_at"):
            try:
                callback_id = self._in_loop(
                    lambda: self._box.queues.callback_for_call(call_id, wrapup["callback_at"], extension))
            except ValueError as exc:  # the wrap-up stays saved; the agent is told the callback is not
                callback_error = str(exc)
            else:
                set_wrapup_callback(db, call_id, extension, callback_id)
                wrapup = {**wrapup, "callback_id": callback_id}
        self.bus.publish("wrapup.saved", call_id=call_id, agent=extension, outcome=outcome,
                         customer_id=wrapup.get("customer_id"))
        if result["alert"] is not None:
            self.bus.publish("crm.alert", **result["alert"])
        return {"wrapup": wrapup, "alert": result["alert"], "callback_error": callback_error}

    # --- looking after the box (admins) ------------------------------------------------
    def system_info(self) -> dict:
        """Version, the release in use, the last update, the clock and the backups."""
        box = self._box
        clock = box.services.get("clock")
        state = releases.read_state(box.settings.data_dir)
        return {"version": version("switchboard-pbx"),
                "release": releases.current_release(box.settings.data_dir) or "factory",
                "last_update": state, "clock_synced": None if clock is None else clock.synced,
                "backups": list_backups(box.backup_folder), "backup_keep": box.settings.backup_keep}

    @property
    def max_update_bytes(self) -> int:
        """The largest update file the box takes."""
        return MAX_UPDATE_BYTES

    def backup_now(self) -> str:
        """Make a backup now; the new file's name."""
        return asyncio.run_coroutine_threadsafe(self._box.backup_now(), self._box.loop).result(600)

    def backup_file(self, name: str):  # type: ignore[no-untyped-def]
        """The path of a backup by its exact name, or None."""
        return find_backup(self._box.backup_folder, name)

    def upload_path(self, filename: str):  # type: ignore[no-untyped-def]
        """Where an uploaded update file is kept until it is installed (inside the data folder)."""
        safe = re.sub(r"[^A-Za-z0-9_.+!-]", "_", filename)[-120:] or "update"
        return self._box.settings.data_dir / f"upload-{int(time.time())}-{safe}"

    def start_update(self, name: str) -> dict:
        """Install an uploaded update file; the box restarts into the new version when it is installed."""
        return self._in_loop(lambda: start_update(self._box, name))
