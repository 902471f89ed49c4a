"""A modem simulator on a pty for tests and demos (no hardware needed)."""
from __future__ import annotations

from .simulator import DIALECTS, ModemSimulator

__all__ = ["DIALECTS", "ModemSimulator"]
