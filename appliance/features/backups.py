"""The nightly backup: an APScheduler cron job rebuilt at every start, plus a catch-up if the night was missed."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..local_time import office_zone
from ..system.backups import backup_dir, list_backups, make_backup
from . import Context, Teardown

log = logging.getLogger("switchboard.backups")

CATCH_UP_AFTER = timedelta(hours=26)  # no backup for this long (the box was off at night): take one soon
CATCH_UP_DELAY = 120.0  # seconds after start, once the morning's first calls are not held up by it


async def setup(ctx: Context) -> Teardown:
    """Schedule the nightly backup at backup_time (office time) and offer `backup_now` to the web and the CLI."""
    s = ctx.settings
    folder = backup_dir(s.data_dir)
    running: set[asyncio.Future] = set()

    async def backup_now() -> str:
        """Take a backup off the loop (the copy reads the whole file); the new file's name."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, make_backup, s.db_path, folder, s.backup_keep)
        running.add(future)
        try:
            made = await future
        except Exception:
            log.exception("the backup failed")
            ctx.bus.publish("box.fault", fault="backup_failed", active=True)
            raise
        finally:
            running.discard(future)
        ctx.bus.publish("box.fault", fault="backup_failed", active=False)
        log.info("backup %s (%d bytes) in %s", made.name, made.size, folder)
        return made.name

    async def nightly() -> None:
        try:
            await backup_now()
        except Exception:  # noqa: BLE001 - logged and shown as a fault; the next night tries again
            pass

    hour, minute = (int(part) for part in s.backup_time.split(":"))
    scheduler = AsyncIOScheduler(event_loop=ctx.loop, timezone=office_zone(s.timezone))
    scheduler.add_job(nightly, "cron", hour=hour, minute=minute, id="backup", misfire_grace_time=3600,
                      coalesce=True)
    newest = list_backups(folder)[:1]
    now = datetime.now(timezone.utc)
    if not newest or now - newest[0].taken_at > CATCH_UP_AFTER:
        scheduler.add_job(nightly, "date", run_date=now + timedelta(seconds=CATCH_UP_DELAY), id="backup-catch-up")
    scheduler.start()
    ctx.provide(backup_now=backup_now, backup_folder=folder, backup_scheduler=scheduler)

    async def teardown() -> None:
        scheduler.shutdown(wait=False)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return teardown
