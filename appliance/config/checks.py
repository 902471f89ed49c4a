"""What every part of the configuration shares: ConfigError, where a value came from, and value checkers."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
import tomllib

from hw import leds

from appliance import logs
from appliance.calls import answering
from appliance.calls.recording import RECORD_CHOICES
from appliance.local_time import zone
from appliance.media.tones import RINGBACK_REGIONS


SETTINGS_FILE = "switchboard.toml"
SYSTEM_DATA_DIR = Path("/var/lib/switchboard")
CLI = "command line"

TRANSPORTS = ("udp", "tcp", "tls")
# Allowed values come from the modules that act on them.
LOG_LEVELS, LOG_FORMATS = logs.LEVELS, logs.FORMATS
RECORD_CALLS = RECORD_CHOICES
RINGBACKS = tuple(RINGBACK_REGIONS)
DTMF_INBAND = answering.DTMF_INBAND
LED_PIN_FACTORIES = leds.FACTORIES
MAX_PROMPT_TEXT = 1000


class ConfigError(ValueError):
    """A configuration problem: `file: key.path: problem`."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


@dataclass(frozen=True)
class _Where:
    """A position in a config source, for error messages."""

    file: str
    path: str = ""

    def __truediv__(self, part: str | int) -> _Where:
        if isinstance(part, int):
            return _Where(self.file, f"{self.path}[{part}]")
        return _Where(self.file, f"{self.path}.{part}" if self.path else part)

    def fail(self, problem: str) -> NoReturn:
        raise ConfigError(self.file, self.path, problem)


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


# --- value checkers: each takes (where, value) and returns the clean value ---


def _int(lo: int, hi: int) -> Callable[[_Where, Any], int]:
    def check(where: _Where, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            where.fail(f"expected an integer {lo}-{hi}, got {_shown(value)}")
        return value

    return check


def _number(lo: float, hi: float) -> Callable[[_Where, Any], float]:
    def check(where: _Where, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
            where.fail(f"expected a number greater than {lo:g} and at most {hi:g}, got {_shown(value)}")
        return float(value)

    return check


def _seconds(lo: float, hi: float) -> Callable[[_Where, Any], float]:
    def check(where: _Where, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            where.fail(f"expected a number of seconds from {lo:g} to {hi:g}, got {_shown(value)}")
        return float(value)

    return check


def _bool(where: _Where, value: Any) -> bool:
    if not isinstance(value, bool):
        where.fail(f"expected true or false, got {_shown(value)}")
    return value


def _text_path(where: _Where, value: Any) -> str:
    if not isinstance(value, str):
        where.fail(f"expected a path as a string (\"\" for none), got {_shown(value)}")
    return value


def _text(where: _Where, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        where.fail(f"expected a non-empty string, got {_shown(value)}")
    return value


def _choice(options: tuple[str, ...], fold: Callable[[str], str] = str.lower) -> Callable[[_Where, Any], str]:
    def check(where: _Where, value: Any) -> str:
        if not isinstance(value, str) or fold(value) not in options:
            where.fail(f"expected one of {', '.join(options)}, got {_shown(value)}")
        return fold(value)

    return check


def _pattern(regex: str, description: str) -> Callable[[_Where, Any], str]:
    compiled = re.compile(regex)

    def check(where: _Where, value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            where.fail(f"expected {description}, got {_shown(value)}")
        return value

    return check


def _ip(where: _Where, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        where.fail(f"expected an IP address such as 0.0.0.0, got {_shown(value)}")


_port = _int(1, 65535)
_host = _pattern(r"[A-Za-z0-9.:\[\]_-]+", "a host name or IP address")
_digits = _pattern(r"[0-9]+", "a string of digits")
_extension_number = _pattern(r"[0-9]{2,8}", 'a quoted string of 2-8 digits, e.g. "201"')
# Names and user names end up in SIP headers: no quotes, backslashes or line breaks.
_display_name = _pattern(
    r'[^\x00-\x1f\x7f"\\]{1,64}', "1-64 characters without quotes, backslashes or control characters"
)
_prefix = _pattern(r"\+?[0-9]+|\+", 'a dial prefix like "00" or "+"')
_user = _pattern(r'[^\s"\\:@]{1,64}', "1-64 characters without spaces, quotes, backslashes, : or @")
_name = _pattern(r"[A-Za-z0-9_-]{1,32}", "1-32 letters, digits, _ or -")
_voice = _pattern(r"[A-Za-z0-9_+-]{1,32}", 'an espeak-ng voice name such as "en" or "en-gb"')


def _algorithms(where: _Where, value: Any) -> tuple[str, ...]:
    options = ("MD5", "SHA-256")
    if not isinstance(value, (list, tuple)) or not value or len(set(value)) != len(value):
        where.fail(f'expected a list of digest algorithms like ["MD5", "SHA-256"], got {_shown(value)}')
    return tuple(_choice(options, str.upper)(where / i, a) for i, a in enumerate(value))


def _networks(where: _Where, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        where.fail(f'expected a list of networks like ["192.168.1.0/24"], got {_shown(value)}')
    found = []
    for i, item in enumerate(value):
        try:
            found.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            (where / i).fail(f"expected a network such as 192.168.1.0/24 or an address, got {_shown(item)}")
    return tuple(found)


def _prefixes(where: _Where, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        where.fail(f'expected a non-empty list of dial prefixes like ["00", "+"], got {_shown(value)}')
    return tuple(_prefix(where / i, p) for i, p in enumerate(value))


def _table_list(where: _Where, value: Any) -> list:
    if not isinstance(value, list):
        where.fail(f"expected an array of tables ([[{where.path}]]), got {_shown(value)}")
    return value


def _record(where: _Where, table: Any, keys: dict, required: tuple[str, ...]) -> dict:
    _check_keys(where, table, keys, required)
    return {key: keys[key](where / key, value) for key, value in table.items()}


def _timezone(where: _Where, value: Any) -> str:
    try:
        zone(_text(where, value))
    except ValueError as e:
        where.fail(str(e))
    return value


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None


def _check_keys(where: _Where, table: Any, allowed: tuple[str, ...] | dict, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(table, dict):
        where.fail(f"expected a table, got {_shown(table)}")
    for key in table:
        if key not in allowed:
            (where / key).fail(f"unknown key (expected one of {', '.join(allowed)})")
    for key in required:
        if key not in table:
            (where / key).fail("missing required key")
    return table
