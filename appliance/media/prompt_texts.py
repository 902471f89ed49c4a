"""Default wording of the voice prompts, spoken by espeak-ng until the owner records their own."""
from __future__ import annotations

import difflib
import re

__all__ = ["TEXTS", "LOOPED", "NAMES", "is_prompt_name", "near_miss"]

TEXTS: dict[str, str] = {
    "greeting": "Thank you for calling. Your call is important to us.",
    "menu": "For sales, press 1. For support, press 2. To reach the operator, press 0.",
    "invalid": "Sorry, that is not a valid choice. Please try again.",
    "no_input": "Sorry, we did not receive your choice. Please try again.",
    "goodbye": "Thank you for calling. Goodbye.",
    "unavailable": "Sorry, nobody can take your call there right now. Please choose again.",
    "closed": (
        "Thank you for calling. Our office is currently closed. "
        "Please call again during our business hours."
    ),
    # Lead-ins: the IVR or queue follows these with a number or a key, spoken on the fly.
    "queue_position": "All of our team members are helping other callers. Your position in the queue is",
    "expected_wait": "Your expected wait time is about",
    "minutes": "minutes",
    "callback_offer": "To keep your place in line and have us call you back, press",
    "callback_number": "We will call you back on",
    "callback_confirm": (
        "If this number is right, press 1. "
        "To give another number, type it now and finish with the hash key."
    ),
    "callback_enter": "Please type the number we should call you back on, then press the hash key.",
    "callback_confirmed": "Thank you. We will call you back as soon as someone is available. Goodbye.",
    "queue_full": "Sorry, all of our lines are busy right now.",
    "queue_timeout": "Sorry for the long wait.",
    "agent_logged_in": "You are logged in to your queues.",
    "agent_logged_out": "You are logged out of your queues.",
    "agent_paused": "You are paused.",
    "agent_unpaused": "You are available again.",
}

# Prompts that repeat until stopped. Music has no spoken default: until the owner sets their own
# (`switchboard prompt set hold_music FILE.wav`), the box plays hold_music.default_hold_music().
LOOPED: frozenset[str] = frozenset({"hold_music"})

NAMES: frozenset[str] = frozenset(TEXTS) | LOOPED

# The owner's own prompts (a second menu's words, say) take any such name: text under [prompts],
# or a recording set with `switchboard prompt set NAME FILE`.
_CUSTOM = re.compile(r"[a-z][a-z0-9_]{0,31}")


def is_prompt_name(name: object) -> bool:
    """Whether name is a prompt the box knows or a valid name for an owner's own prompt."""
    return isinstance(name, str) and (name in NAMES or _CUSTOM.fullmatch(name) is not None)


def near_miss(name: str) -> str | None:
    """The box's prompt that `name`, not one of them, is most likely a typo of (greting: greeting), if any."""
    if name in NAMES:
        return None
    close = difflib.get_close_matches(name, NAMES, 1, 0.8)
    return close[0] if close else None
