"""What the box says in a queue: prompt names and spoken text joined into one prompt, rendered off the loop."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.media.prompts import Prompt, PromptError, PromptLibrary, join

__all__ = ["Spoken", "Speech", "key_words"]

log = logging.getLogger("switchboard.speech")

_KEY_WORDS = {"*": "star", "#": "hash"}


@dataclass(frozen=True)
class Spoken:
    """Text the box speaks with espeak-ng (a number, a caller's digits)."""

    text: str


Part = str | Spoken


def key_words(key: str) -> str:
    """How a key is said: "1", "star", "hash"."""
    return _KEY_WORDS.get(key, key)


class Speech:
    """Builds announcements; anything not yet rendered is rendered on a worker thread, never on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prompts: PromptLibrary) -> None:
        self.loop = loop
        self.prompts = prompts
        self._render = threading.Lock()  # one espeak-ng at a time: a burst of callers must not fork dozens

    def ready(self, parts: Sequence[Part]) -> bool:
        """Whether every part is already in memory."""
        return all(self.prompts.spoken_cached(p.text) if isinstance(p, Spoken) else self.prompts.cached(p)
                   for p in parts)

    def build(self, parts: Sequence[Part]) -> Prompt:
        """The parts as one prompt (may render: call off the loop unless ready())."""
        loaded = [self.prompts.speak(p.text) if isinstance(p, Spoken) else self.prompts.get(p) for p in parts]
        return loaded[0] if len(loaded) == 1 else join("announcement", loaded)

    def say(self, parts: Sequence[Part], then: Callable[[Prompt | None], None]) -> None:
        """then(prompt) on the loop once the parts are ready; then(None) when they cannot be."""
        if self.ready(parts):
            then(self._safe_build(parts))
            return
        future = self.loop.run_in_executor(None, self._build_locked, list(parts))
        future.add_done_callback(lambda f: then(None if f.exception() else f.result()))

    def _build_locked(self, parts: list[Part]) -> Prompt | None:
        with self._render:
            return self._safe_build(parts)

    def _safe_build(self, parts: Sequence[Part]) -> Prompt | None:
        try:
            return self.build(parts)
        except (PromptError, ValueError, OSError) as exc:
            log.error("cannot say %s: %s", parts, exc)
            return None
