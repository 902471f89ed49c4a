"""APScheduler jobs that wake the queue when a callback falls due; rebuilt from SQLite at every start."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["CallbackScheduler"]


class CallbackScheduler:
    """One date job per waiting callback (due time or retry time) and a periodic tick, all on the box's loop.

    The jobs hold no state of their own: the callbacks table is the truth, so after a crash the
    box simply schedules again what the table says is pending.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_due: Callable[[str], None]) -> None:
        self._on_due = on_due
        self._scheduler = AsyncIOScheduler(event_loop=loop, timezone=timezone.utc)

    def start(self) -> None:
        """Start running jobs."""
        self._scheduler.start()

    def stop(self) -> None:
        """Drop every job (they are rebuilt from the store at the next start)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def at(self, callback_id: str, when: datetime) -> None:
        """Wake the queue for callback_id at when (replacing an earlier time)."""
        # Coroutine jobs run on the loop itself; plain functions would go to a thread pool.
        async def due() -> None:
            self._on_due(callback_id)

        self._scheduler.add_job(due, "date", run_date=when, id=_job_id(callback_id), replace_existing=True,
                                misfire_grace_time=None)

    def cancel(self, callback_id: str) -> None:
        """Forget callback_id's job, if any."""
        job = self._scheduler.get_job(_job_id(callback_id))
        if job is not None:
            job.remove()

    def every(self, seconds: float, tick: Callable[[], None], name: str) -> None:
        """Run tick on the loop every seconds (e.g. to notice that business hours have begun)."""
        async def run() -> None:
            tick()

        self._scheduler.add_job(run, "interval", seconds=seconds, id=name, replace_existing=True)

    def scheduled(self) -> list[str]:
        """Ids of the callbacks that have a job."""
        return [job.id.removeprefix("callback:") for job in self._scheduler.get_jobs() if job.id.startswith("callback:")]


def _job_id(callback_id: str) -> str:
    return f"callback:{callback_id}"
