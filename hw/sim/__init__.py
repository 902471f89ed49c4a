"""A modem simulator on a pty for tests and demos (no hardware needed)."""
from __future__ import annotations

from .protocol import DIALECTS
from .simulator import ModemSimulator

__all__ = ["DIALECTS", "ModemSimulator"]
