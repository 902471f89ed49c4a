"""Modem lines: SIMCom SIM7600, Quectel EC2x and V.253 voice modems behind one ModemLine."""
from __future__ import annotations

from .dialects import DIALECTS, Dialect
from .errors import ModemError
from .line import STATES, LineEvent, ModemLine

__all__ = ["DIALECTS", "Dialect", "LineEvent", "ModemError", "ModemLine", "STATES"]
