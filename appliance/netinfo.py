"""The box's own addresses, read from the kernel without sending any packet."""
from __future__ import annotations

import fcntl
import socket
import struct

_SIOCGIFADDR = 0x8915


def interface_addresses() -> dict[str, str]:
    """IPv4 address of each configured interface, by name."""
    found: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # interface without an IPv4 address
            found[name] = socket.inet_ntoa(packed[20:24])
    return found


def primary_address() -> str:
    """The address phones should use: the first non-loopback interface's, else 127.0.0.1."""
    for name, address in sorted(interface_addresses().items()):
        if name != "lo" and not address.startswith("127."):
            return address
    return "127.0.0.1"
