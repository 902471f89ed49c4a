"""Modem lines from provisioning, each joined to the box as a trunk on 127.0.0.1, and their callback texts."""
from __future__ import annotations

import logging

from ..lines.modem_config import SETTINGS_KEY as MODEM_SETTINGS
from ..lines.modem_config import ModemConfig
from ..sip.transport import Peer
from ..store import directory
from . import Context, Teardown

log = logging.getLogger("switchboard.box")


async def setup(ctx: Context) -> Teardown:
    """Start every provisioned modem line (none: nothing to do, no pyserial loaded)."""
    configs = [ModemConfig.from_dict(d) for d in directory.get_setting(ctx.db, MODEM_SETTINGS, []) or []]
    if not configs:
        return lambda: None
    from ..lines.callback_texts import CallbackTexts
    from ..lines.modem_gateway import ModemGateway  # pyserial and the driver only when a modem is set up

    s = ctx.settings
    host = s.bind if s.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    for cfg in configs:
        line = ModemGateway(ctx.loop, cfg, Peer("UDP", host, ctx.transport.port), ctx.bus, host)
        await line.start()
        ctx.lines[cfg.name] = line
        log.info("modem line %s (%s) on %s: calls go to %s, dial out with %s", cfg.name, cfg.dialect,
                 cfg.port, cfg.inbound, cfg.outbound_prefix or "(no prefix)")
    texts = CallbackTexts(ctx.loop, ctx.bus, ctx.db, ctx.lines)
    ctx.provide(callback_texts=texts)

    async def teardown() -> None:
        texts.close()
        for line in ctx.lines.values():
            await line.stop()
    return teardown
