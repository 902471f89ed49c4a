"""The store: the SQLite file (WAL, migrated), its checkpointer, and the provisioning file applied to it."""
from __future__ import annotations

import asyncio
import json
import logging

from ..config import load_provisioning
from ..provisioning import apply_provisioning
from ..store import calls as store_calls
from ..store.db import Checkpointer, open_database
from . import Context, Teardown

log = logging.getLogger("switchboard.box")


async def setup(ctx: Context) -> Teardown:
    """Open the database, close records an unclean stop left open, apply --provision."""
    s = ctx.settings
    db = open_database(s.db_path)
    checkpointer = Checkpointer(db, s.db_path).start()
    interrupted = store_calls.close_interrupted(db)
    if interrupted:
        log.warning("closed %d call records left open by an unclean stop", interrupted)
    if ctx.provision is not None:
        summary = apply_provisioning(db, load_provisioning(ctx.provision), s.realm)
        log.info("provisioned from %s: %s", ctx.provision, json.dumps(summary))
    ctx.provide(db=db, checkpointer=checkpointer)

    async def teardown() -> None:
        # CRM jobs (segment refresh, alerts) run on the default executor: let them finish first.
        await asyncio.get_running_loop().shutdown_default_executor()
        checkpointer.stop()
        db.conn.close()
    return teardown
