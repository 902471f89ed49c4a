"""Queues and callbacks: route kinds "queue" and "feature" (agents' star codes), callers the IVR hands over,
and the callbacks kept in the store (rescheduled at start)."""
from __future__ import annotations

from ..calls.queue_service import QueueService
from . import Context, Teardown


async def setup(ctx: Context) -> Teardown:
    """Run the queues."""
    s = ctx.settings
    queues = QueueService(ctx.loop, ctx.b2bua, ctx.db, ctx.prompts, ctx.bus, ctx.call_log, ctx.handover,
                          trunk_by_name=ctx.trunk_directory.by_name, policy=ctx.policy, ringback_region=s.ringback,
                          dtmf_inband=s.dtmf_inband, line_names=ctx.trunk_directory.names)
    ctx.provide(queues=queues)
    undo = [ctx.b2bua.add_destination("queue", queues), ctx.b2bua.add_destination("feature", queues.feature),
            ctx.handover.provide_queues(queues.join, queues.callback_from_ivr)]
    queues.start()  # set up after the trunks and lines: a due callback may dial out at once

    def teardown() -> None:
        queues.stop()
        for step in reversed(undo):
            step()
    return teardown

