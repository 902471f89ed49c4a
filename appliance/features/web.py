"""The web pages: BoxApi (the web threads' only door into the core) and Flask on waitress threads."""
from __future__ import annotations

import logging

from ..api import BoxApi
from . import Context, Teardown

log = logging.getLogger("switchboard.box")


async def setup(ctx: Context) -> Teardown:
    """Serve the web unless http_port is 0; say where to find the first-run setup page."""
    s = ctx.settings
    api = BoxApi(ctx)
    ctx.provide(api=api)
    if not s.http_port:
        return lambda: None
    if (code := api.setup_code()) is not None:
        host = ctx.endpoint.host if s.bind in ("0.0.0.0", "::") else s.bind
        log.warning("no admin yet: open http://%s:%s/setup and enter the setup code %s"
                    " (or run `switchboard admin create NAME`)", host, s.http_port, code)
    from web.app import create_app  # Flask loads only when the web is on
    from web.server import WebServer

    server = WebServer(create_app(api), s.bind, s.http_port, s.web_threads)
    server.start()
    ctx.provide(web=server)
    return server.stop
