"""The real box in-process, on its own loop thread, for tests that call into it (web client, OutboundCall)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr_peers import seed_prompts
from peers import LOCALHOST, free_port, free_rtp_range

from appliance.box import Box
from appliance.config import load_settings


class LiveBox:
    """Box started on a background asyncio loop; the test thread calls into it with call()."""

    def __init__(self, data_dir: Path, provision: str | None, **settings: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        seed_prompts(data_dir)
        path = None
        if provision is not None:
            path = data_dir / "provision.toml"
            path.write_text(provision)
        rtp_min, rtp_max = free_rtp_range()
        self.sip_port = free_port()
        values = {"bind": LOCALHOST, "sip_port": self.sip_port, "http_port": 0,
                  "rtp_port_min": rtp_min, "rtp_port_max": rtp_max, "trunk_keepalive": 3600, **settings}
        self.box = Box(load_settings(data_dir, values), path)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="box-loop", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.box.start(), self.loop).result(30)

    @property
    def db(self):  # type: ignore[no-untyped-def]
        """The box's database (store functions lock it, so any thread may use them)."""
        return self.box.db

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the box's loop and return its result."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # handed to the test thread
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(10)

    def stop(self) -> None:
        """Stop the box and its loop."""
        asyncio.run_coroutine_threadsafe(self.box.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
