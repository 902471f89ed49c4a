"""SIP trunks: each registers (when asked) and is kept alive with OPTIONS; its state is saved for the CLI."""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

from ..sip.trunk import TrunkClient, TrunkStatus
from ..store import directory
from . import Context, Teardown

TRUNK_STATUS_KEY = "trunk_status:"


async def setup(ctx: Context) -> Teardown:
    """Start a client for each provisioned trunk."""
    db = ctx.db

    def save(status: TrunkStatus) -> None:
        directory.set_setting(db, TRUNK_STATUS_KEY + status.name, json.dumps(asdict(status)))

    for row in directory.list_trunks(db, include_secret=True):
        client = TrunkClient(ctx.loop, ctx.layer, ctx.endpoint, row, ctx.bus, save,
                             keepalive=ctx.settings.trunk_keepalive)
        ctx.trunks[row["name"]] = client
        await client.start()

    async def teardown() -> None:
        for client in ctx.trunks.values():
            client.stop()
        await asyncio.sleep(0.05)  # let un-REGISTERs leave
    return teardown
