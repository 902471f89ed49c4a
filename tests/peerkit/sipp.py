"""What SIPp needs from the tests and the benchmarks alike: its injection files."""
from __future__ import annotations

from pathlib import Path


def auth_injection(path: Path, users: dict[str, str]) -> Path:
    """A SIPp injection file: field0 = user, field1 = a whole [authentication] line (for -inf)."""
    lines = ["SEQUENTIAL"] + [f"{user};[authentication username={user} password={secret}]"
                              for user, secret in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
