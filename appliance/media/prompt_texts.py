"""Default wording of the voice prompts, spoken by espeak-ng until the owner records their own."""
from __future__ import annotations

__all__ = ["TEXTS", "LOOPED", "NAMES"]

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
    # Lead-ins: the IVR follows these with the number itself.
    "queue_position": "All of our team members are helping other callers. Your position in the queue is",
    "expected_wait": "Your expected wait time is about",
    "callback_offer": (
        "To keep your place in line and have us call you back, press 1. "
        "To keep holding, stay on the line."
    ),
    "callback_confirmed": "Thank you. We will call you back as soon as someone is available. Goodbye.",
}

# Prompts that repeat until stopped. Music has no spoken default: the owner supplies it
# (licensing), with `switchboard prompt set hold_music FILE.wav`.
LOOPED: frozenset[str] = frozenset({"hold_music"})

NAMES: frozenset[str] = frozenset(TEXTS) | LOOPED
