"""The modem layer's exception."""
from __future__ import annotations


class ModemError(Exception):
    """A modem command failed, timed out, or the line is not in a state to do it."""

    def __init__(self, message: str, final: str | None = None) -> None:
        super().__init__(message)
        self.final = final
