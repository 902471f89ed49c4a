"""First run: a provisioning file handed over once (an installer's SD card), and "setup pending" until an admin exists."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from pathlib import Path

from ..config import ConfigError, load_provisioning
from ..provisioning import apply_provisioning
from ..store import directory, users
from . import Context, Teardown

log = logging.getLogger("switchboard.box")

APPLIED_KEY = "boot.provision_sha256"  # the last boot provisioning file applied, so each is applied once
SETUP_CHECK_EVERY = 5.0  # seconds: an admin may be made by the web or by `switchboard admin create`


async def setup(ctx: Context) -> Teardown:
    """Apply --boot-provision if it is new; publish box.setup {pending} and keep the setup code file true."""
    s = ctx.settings
    if s.boot_provision:
        apply_boot_provisioning(ctx, Path(s.boot_provision))
    code_file = Path(s.setup_code_file) if s.setup_code_file else None
    pending: bool | None = None
    handle: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal pending, handle
        code = users.setup_code(ctx.db)
        now_pending = code is not None
        if now_pending != pending:
            pending = now_pending
            ctx.bus.publish("box.setup", pending=pending)
            if code_file is not None:
                _write_code(code_file, code)
        handle = ctx.loop.call_later(SETUP_CHECK_EVERY, check) if pending else None

    check()

    def teardown() -> None:
        if handle:
            handle.cancel()
    return teardown


def apply_boot_provisioning(ctx: Context, path: Path) -> None:
    """Apply a provisioning file once per content; an empty or missing file is nothing to do."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    if not data.strip():
        return
    digest = hashlib.sha256(data).hexdigest()
    if directory.get_setting(ctx.db, APPLIED_KEY) == digest:
        return
    try:
        summary = apply_provisioning(ctx.db, load_provisioning(path), ctx.settings.realm)
    except (ConfigError, users.UserError) as exc:
        # The box still starts: the owner sees the fault and fixes it from the web or a new card.
        log.error("the boot provisioning file was not applied: %s", exc)
        ctx.bus.publish("box.fault", fault="boot_provisioning_invalid", active=True)
        return
    directory.set_setting(ctx.db, APPLIED_KEY, digest)
    log.info("applied the boot provisioning file: %s", json.dumps(summary))


def _write_code(path: Path, code: str | None) -> None:
    """Write the code (readable by its owner only) or remove the file once setup is done."""
    try:
        if code is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(code + "\n")
        os.replace(path.with_suffix(".tmp"), path)
    except OSError as exc:
        log.error("could not write the setup code to %s: %s", path, exc)
