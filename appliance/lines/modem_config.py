"""A modem line as the provisioning file describes it."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from hw.modem import dialects

DIALECTS = tuple(dialects.DIALECTS)  # the modem driver's
SETTINGS_KEY = "lines.modems"  # the provisioned lines, as a JSON list in settings


@dataclass(frozen=True)
class ModemConfig:
    """One [[modems]] entry."""

    name: str
    port: str                      # a stable path, e.g. /dev/serial/by-id/usb-SimTech_...-if02-port0
    dialect: str                   # sim7600, ec25 or v253
    inbound: str = ""              # where its calls go, like a trunk's: "201", "ivr:main", "queue:sales"
    outbound_prefix: str | None = None
    audio_port: str | None = None  # the PCM port of a GSM module (sim7600, ec25)
    codec: str = "PCMU"            # what the line offers the box first
    # Texted to a caller on this line who asks for a callback (GSM only; "" sends nothing).
    callback_sms: str = "Thank you for calling. We will call you back as soon as someone is free."

    def to_dict(self) -> dict:
        """For the settings table."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModemConfig":
        """Back from the settings table (unknown keys from a newer box are ignored)."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
