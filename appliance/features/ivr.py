"""IVR menus: route kind "ivr", and held callers a queue sends back to a menu."""
from __future__ import annotations

from ..calls.ivr_calls import IvrDestination
from . import Context, Teardown


async def setup(ctx: Context) -> Teardown:
    """Answer calls routed to a menu."""
    s = ctx.settings
    ivr = IvrDestination(ctx.loop, ctx.b2bua, ctx.db, ctx.prompts, ctx.recording, ctx.handover,
                         ringback_region=s.ringback, dtmf_inband=s.dtmf_inband)
    ctx.provide(ivr=ivr)
    remove = ctx.b2bua.add_destination("ivr", ivr)
    withdraw = ctx.handover.provide_menus(ivr.enter)

    def teardown() -> None:
        withdraw()
        remove()
    return teardown
