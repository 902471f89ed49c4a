"""Where a caller the box holds can be handed next: the features that take callers register here.

The IVR sends callers to queues and asks them for callbacks; a queue sends callers back to a menu.
Neither is built first, so neither holds the other: each registers what it takes when it sets up,
and asks the handover for the rest (a feature that is not set up is simply not available).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("switchboard.calls")

QueueHandler = Callable[[Any, str], "str | None"]
"""(call, queue name) -> None when the queue took the caller for good, else why it could not."""

CallbackHandler = Callable[[Any, str, str, str], str]
"""(call info, number, queue name or "" for the default, source) -> the callback's id."""

MenuHandler = Callable[[Any, str], None]
"""(call, menu name): run a menu for a caller the box already holds."""


class Handover:
    """The registry of what takes callers: queues, callbacks and menus."""

    def __init__(self) -> None:
        self._queue: QueueHandler | None = None
        self._callback: CallbackHandler | None = None
        self._menu: MenuHandler | None = None

    def provide_queues(self, join: QueueHandler, callback: CallbackHandler) -> Callable[[], None]:
        """The queues take callers and run callbacks; returns the undo."""
        self._queue, self._callback = join, callback

        def undo() -> None:
            self._queue = self._callback = None
        return undo

    def provide_menus(self, enter: MenuHandler) -> Callable[[], None]:
        """The IVR runs menus for held callers; returns the undo."""
        self._menu = enter

        def undo() -> None:
            self._menu = None
        return undo

    @property
    def has_callbacks(self) -> bool:
        """Whether something stores and dials callbacks."""
        return self._callback is not None

    def to_queue(self, call: Any, name: str) -> str | None:
        """Hand a caller to queue `name`: None when it took them, else why not."""
        return "queues are not available" if self._queue is None else self._queue(call, name)

    def callback(self, info: Any, number: str, queue: str, source: str) -> str:
        """Store a callback request; its id. RuntimeError when no queue runs callbacks."""
        if self._callback is None:
            raise RuntimeError("no queue runs callbacks")
        return self._callback(info, number, queue, source)

    def to_menu(self, call: Any, menu: str) -> bool:
        """Run a menu for a held caller; False (nothing done) when no IVR runs."""
        if self._menu is None:
            return False
        self._menu(call, menu)
        return True
