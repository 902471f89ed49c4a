"""Updates: a release on trial confirms itself once SIP answers; installing one restarts the box into it."""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path

from ..system import installer, releases
from ..system.launcher import FACTORY_ENV
from . import Context, Teardown

log = logging.getLogger("switchboard.updates")

PROBE_TIMEOUT = 5.0


async def setup(ctx: Context) -> Teardown:
    """Confirm a trial after a SIP self-check; offer install_update(path) to the web and the control socket."""
    s = ctx.settings
    state = releases.read_state(s.data_dir)
    if state is not None and state.state == "trial":
        if await sip_answers(ctx):
            done = releases.confirm(s.data_dir, Path(sys.prefix))
            if done is not None:
                log.info("update to version %s confirmed: the box is healthy", done.version)
        else:
            # Not confirmed: the launcher rolls back at the next start after the trial's 60 s.
            log.error("update on trial: SIP did not answer the box's own OPTIONS; it will be rolled back")
    installing: set[asyncio.Future] = set()

    async def install_update(path: Path) -> releases.UpdateState:
        """Install an update file off the loop, then stop the box so systemd starts the new version."""
        if installing:
            raise ValueError("an update is being installed already")
        future = ctx.loop.run_in_executor(None, lambda: installer.install(path, s.data_dir, _factory(), say=log.info))
        installing.add(future)
        try:
            new_state = await future
        finally:
            installing.discard(future)
        log.warning("restarting into version %s (on trial for %.0f s)", new_state.version, releases.TRIAL_SECONDS)
        ctx.loop.call_later(0.5, ctx.restart.set)  # let the web page answer first
        return new_state

    ctx.provide(install_update=install_update)

    async def teardown() -> None:
        if installing:
            await asyncio.gather(*installing, return_exceptions=True)
    return teardown


def _factory() -> Path:
    """The factory environment: the launcher's (it says which), else this one (the box was started directly)."""
    return Path(os.environ.get(FACTORY_ENV) or sys.prefix)


async def sip_answers(ctx: Context) -> bool:
    """Whether the box's own SIP port answers an OPTIONS over UDP (any response will do)."""
    s = ctx.settings
    host = "127.0.0.1" if s.bind in ("0.0.0.0", "::") else s.bind
    port = ctx.transport.port
    call_id = secrets.token_hex(8)
    branch = "z9hG4bK" + secrets.token_hex(8)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bool] = loop.create_future()

    class Probe(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            local = transport.get_extra_info("sockname")
            request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch}\r\n"
                       f"Max-Forwards: 70\r\nFrom: <sip:self-check@{host}>;tag={secrets.token_hex(4)}\r\n"
                       f"To: <sip:{host}:{port}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            transport.sendto(request.encode())  # type: ignore[attr-defined]

        def datagram_received(self, data: bytes, addr: tuple) -> None:
            if data.startswith(b"SIP/2.0 ") and call_id.encode() in data and not answered.done():
                answered.set_result(True)

    transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=(host, port))
    try:
        return await asyncio.wait_for(answered, PROBE_TIMEOUT)
    except TimeoutError:
        return False
    finally:
        transport.close()
