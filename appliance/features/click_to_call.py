"""Click-to-call from the agent console: the agent's phone first, then the number, through the outbound policy."""
from __future__ import annotations

from ..calls.click_to_call import ClickToCall
from . import Context, Teardown


async def setup(ctx: Context) -> Teardown:
    """Let the web place calls for agents."""
    s = ctx.settings
    lines = ctx.trunk_directory
    ctx.provide(click_to_call=ClickToCall(ctx.b2bua, ctx.call_log, ctx.db, ctx.dial_plan, lines.by_name,
                                          lambda: ctx.crm.settings().region, s.international_prefixes[0],
                                          s.ringback, trunks=lines.rows))
    return lambda: None
