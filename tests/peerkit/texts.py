"""Provisioning tables the tests and the benchmarks both write."""
from __future__ import annotations


def modem_line(port: str, dialect: str, inbound: str, *extra: str, name: str = "gsm") -> str:
    """A [[modems]] table for a (simulated) modem at port; the GSM dialects' audio is on port + "-audio"."""
    audio = f'audio_port = "{port}-audio"\n' if dialect != "v253" else ""  # V.253 carries audio on its one port
    lines = "".join(f"{line}\n" for line in extra)
    return (f'\n[[modems]]\nname = "{name}"\nport = "{port}"\n{audio}dialect = "{dialect}"\n'
            f'inbound = "{inbound}"\n{lines}')
