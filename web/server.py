"""Runs the web app on a waitress thread inside the box's process."""
from __future__ import annotations

import logging
import threading

from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger("switchboard.web")


class WebServer:
    """A waitress server on its own thread; the asyncio loop stays the core's."""

    def __init__(self, app, host: str, port: int, threads: int = 32) -> None:  # type: ignore[no-untyped-def]
        try:
            # Each open screen-pop stream (SSE) holds a worker thread for as long as it is open.
            self._server = create_server(app, host=host, port=port, threads=threads, ident="switchboard")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve the web on {host}:{port}: {exc.strerror}") from None
        self.port = self._server.effective_port  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run()
        except OSError:  # closed while stopping
            pass

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: at once, not at the next tick of waitress's one-second poll."""
        server = self._server
        if self._thread.is_alive():
            # Closing the sockets from the loop's own thread empties its map, so run() returns now.
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
            self._thread.join(2)
        server.close()
        server.task_dispatcher.shutdown(timeout=2)  # type: ignore[union-attr]
