"""Box settings and the provisioning file, parsed from TOML and validated strictly.

Storage-free on purpose: applying a Provisioning to the database lives in
appliance.store.provision. Every problem raises ConfigError naming the file, the
key path and what was wrong; unknown keys are errors so typos never pass silently.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from appliance.calls.hours import DAY_NAMES, BusinessHours, parse_day, parse_holiday, zone
from appliance.calls.ivr_config import DTMF_KEYS, TARGET_KINDS, Action, IvrMenu
from appliance.calls.queue_config import CALLBACK_KEYS, DESTINATION_KINDS, STRATEGIES, Member, QueueConfig
from appliance.calls.outbound_policy import CALLBACK_POLICIES
from appliance.crm.settings import RULE_SEGMENTS, CrmSettings, SegmentRule
from appliance.lines.modem_config import DIALECTS, ModemConfig
from appliance.media import prompt_texts
from appliance.store.users import WEAK_SECRETS

SETTINGS_FILE = "switchboard.toml"
SYSTEM_DATA_DIR = Path("/var/lib/switchboard")
CLI = "command line"

TRANSPORTS = ("udp", "tcp", "tls")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
RECORD_CALLS = ("none", "inbound", "all")
RINGBACKS = ("eu", "us", "uk")
DTMF_INBAND = ("auto", "always", "never")
LED_PIN_FACTORIES = ("auto", "mock", "native", "lgpio", "rpigpio", "pigpio")
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


# --- settings ---


@dataclass
class Settings:
    """Box-wide settings: defaults, then switchboard.toml [box], then the command line."""

    data_dir: Path
    bind: str = "0.0.0.0"
    advertise: str | None = None
    sip_port: int = 5060
    http_port: int = 8080
    web_threads: int = 32  # waitress workers; each open screen-pop stream holds one
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    realm: str = "switchboard"
    ring_timeout: float = 30.0
    register_min_expires: int = 60
    register_max_expires: int = 3600
    register_default_expires: int = 600
    # Failed logins per source (and per account, from any number of sources) within ban_window.
    ban_max_failures: int = 10
    ban_account_failures: int = 20
    ban_window: float = 3600.0
    ban_seconds: float = 3600.0
    ban_exempt: tuple[str, ...] = ()  # networks never banned, e.g. ["192.168.1.0/24"]; trunks never are
    tcp_max_connections: int = 512  # SIP over TCP, in all
    tcp_max_per_source: int = 32  # SIP over TCP, from one address
    tcp_idle_timeout: float = 32.0  # close a connection that has sent no complete message for this long
    tcp_registered_idle: float = 600.0  # ... unless a phone registered over it
    max_calls_per_extension: int = 4  # calls one extension may have going at once
    unanswered_media_share: float = 0.5  # share of the RTP ports calls not yet answered and ACKed may hold
    nonce_lifetime: float = 300.0
    # MD5 only by default: SIPp and many phones answer only the first challenge, and libre-based
    # phones (baresip 1.0) give up when any challenge names SHA-256. Offer SHA-256 where all phones can.
    auth_algorithms: tuple[str, ...] = ("MD5",)
    log_level: str = "INFO"
    log_format: str = "json"
    allow_international: bool = False
    international_prefixes: tuple[str, ...] = ("00", "+")
    national_prefix: str = "0"
    trunk_keepalive: float = 30.0  # seconds between OPTIONS pings to each trunk
    record_calls: str = "none"  # none, inbound or all
    ringback: str = "eu"  # the ringing tone callers hear: eu, us or uk
    dtmf_inband: str = "auto"  # listen for DTMF tones in the audio: auto (when not negotiated), always, never
    prompt_voice: str = "en"  # espeak-ng voice for generated prompts
    led_power_pin: int | None = None  # BCM GPIO numbers of the status LEDs; None: not fitted
    led_trunk_pin: int | None = None
    led_modem_pin: int | None = None
    led_calls_pin: int | None = None
    led_pin_factory: str = "auto"  # auto (gpiozero's default on a Pi, else mock), mock, or a gpiozero factory
    timezone: str = ""  # the office's IANA time zone for times people read; "" = the system's

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "switchboard.db"


_BOX_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "bind": _ip,
    "advertise": _host,
    "sip_port": _port,
    "http_port": _int(0, 65535),  # 0: no web pages
    "web_threads": _int(4, 256),
    "rtp_port_min": _port,
    "rtp_port_max": _port,
    # The realm is sent inside a quoted header parameter and hashed into every HA1.
    "realm": _pattern(r"[A-Za-z0-9.@_-]{1,64}", "1-64 letters, digits or . @ _ -"),
    "ring_timeout": _number(0, 600),
    "register_min_expires": _int(10, 86400),
    "register_max_expires": _int(10, 86400),
    "register_default_expires": _int(10, 86400),
    "ban_max_failures": _int(1, 1000),
    "ban_account_failures": _int(1, 10000),
    "ban_window": _number(0, 86400),
    "ban_seconds": _number(0, 31 * 86400),
    "ban_exempt": _networks,
    "tcp_max_connections": _int(1, 100_000),
    "tcp_max_per_source": _int(1, 10_000),
    "tcp_idle_timeout": _number(1, 3600),
    "tcp_registered_idle": _number(1, 86400),
    "max_calls_per_extension": _int(1, 100),
    "unanswered_media_share": _number(0.05, 1.0),
    "nonce_lifetime": _number(0, 86400),
    "auth_algorithms": _algorithms,
    "log_level": _choice(LOG_LEVELS, str.upper),
    "log_format": _choice(LOG_FORMATS),
    "allow_international": _bool,
    "international_prefixes": _prefixes,
    "national_prefix": _pattern(r"[0-9]*", "a string of digits (may be empty)"),
    "trunk_keepalive": _number(0, 3600),
    "record_calls": _choice(RECORD_CALLS),
    "ringback": _choice(RINGBACKS),
    "dtmf_inband": _choice(DTMF_INBAND),
    "prompt_voice": _voice,
    "led_power_pin": _int(0, 27),
    "led_trunk_pin": _int(0, 27),
    "led_modem_pin": _int(0, 27),
    "led_calls_pin": _int(0, 27),
    "led_pin_factory": _choice(LED_PIN_FACTORIES),
    "timezone": lambda where, value: _timezone(where, value) if value != "" else "",
}


def default_data_dir() -> Path:
    """Where state lives: systemd's StateDirectory, /var/lib/switchboard as a service, else the user's data dir."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])  # systemd joins several directories with ':'
    if os.environ.get("INVOCATION_ID") and _writable(SYSTEM_DATA_DIR):
        return SYSTEM_DATA_DIR
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "switchboard"


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK)


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


def _box_values(where: _Where, table: Any) -> tuple[dict, dict[str, _Where]]:
    """Validated box keys from one source, and where each came from."""
    _check_keys(where, table, _BOX_KEYS)
    values, origins = {}, {}
    for key, value in table.items():
        values[key] = _BOX_KEYS[key](where / key, value)
        origins[key] = where / key
    return values, origins


def load_settings(data_dir: Path, overrides: dict | None = None) -> Settings:
    """Defaults, then data_dir/switchboard.toml [box], then non-None `overrides` (typed CLI values)."""
    data_dir = Path(data_dir)
    values: dict[str, Any] = {}
    origins: dict[str, _Where] = {}
    path = data_dir / SETTINGS_FILE
    if path.exists():
        doc = _read_toml(path)
        _check_keys(_Where(str(path)), doc, ("box",))
        if "box" in doc:
            values, origins = _box_values(_Where(str(path), "box"), doc["box"])
    cli = {k.replace("-", "_"): v for k, v in (overrides or {}).items() if v is not None}
    for key, value in cli.items():
        where = _Where(CLI, "--" + key.replace("_", "-"))
        if key not in _BOX_KEYS:
            where.fail("unknown setting")
        values[key] = _BOX_KEYS[key](where, value)
        origins[key] = where
    settings = Settings(data_dir=data_dir, **values)
    _check_settings(settings, lambda key: origins.get(key, _Where("defaults", key)))
    return settings


def _check_settings(s: Settings, at: Callable[[str], _Where]) -> None:
    if s.rtp_port_min % 2:
        at("rtp_port_min").fail(f"must be even (RTP takes even ports, RTCP the odd one above), got {s.rtp_port_min}")
    if s.rtp_port_max <= s.rtp_port_min:
        at("rtp_port_max").fail(f"must be greater than rtp_port_min ({s.rtp_port_min}), got {s.rtp_port_max}")
    if s.sip_port == s.http_port:
        at("http_port").fail(f"must differ from sip_port ({s.sip_port})")
    for key in ("sip_port", "http_port"):
        if getattr(s, key) and s.rtp_port_min <= getattr(s, key) <= s.rtp_port_max:
            at(key).fail(f"{getattr(s, key)} lies inside the RTP range {s.rtp_port_min}-{s.rtp_port_max}")
    if not s.register_min_expires <= s.register_default_expires <= s.register_max_expires:
        at("register_default_expires").fail(
            f"need register_min_expires ({s.register_min_expires}) <= register_default_expires "
            f"({s.register_default_expires}) <= register_max_expires ({s.register_max_expires})"
        )
    led_pins: dict[int, str] = {}
    for key in ("led_power_pin", "led_trunk_pin", "led_modem_pin", "led_calls_pin"):
        pin = getattr(s, key)
        if pin is not None and led_pins.setdefault(pin, key) != key:
            at(key).fail(f"GPIO{pin} is already {led_pins[pin]}")


# --- provisioning ---


@dataclass
class ExtensionConfig:
    """One phone extension from the provisioning file."""

    number: str
    name: str
    secret: str
    allow_external: bool = True
    allow_international: bool = False


@dataclass
class TrunkConfig:
    """One ITSP trunk from the provisioning file."""

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    secret: str | None = None
    register: bool = False
    inbound: str | None = None
    outbound_prefix: str | None = None
    expires: int = 300
    from_domain: str | None = None


@dataclass
class SecurityConfig:
    """Box-wide call restrictions: the outbound policy every dialled and box-dialled number passes."""

    allow_international: bool = False
    allow_premium: bool = False
    allow_satellite: bool = False
    callbacks: str = "national"  # national, international or off: what the box dials back for outside callers


@dataclass
class Provisioning:
    """Everything in a provisioning file; `box` holds validated [box] settings, if any."""

    extensions: list[ExtensionConfig] = field(default_factory=list)
    trunks: list[TrunkConfig] = field(default_factory=list)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    box: dict = field(default_factory=dict)
    ivrs: list[IvrMenu] = field(default_factory=list)
    hours: list[BusinessHours] = field(default_factory=list)
    prompt_voice: str | None = None
    prompt_texts: dict[str, str] = field(default_factory=dict)
    queues: list[QueueConfig] = field(default_factory=list)
    crm: CrmSettings | None = None  # None: no [crm] table, the defaults apply
    modems: list[ModemConfig] = field(default_factory=list)


_EXTENSION_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "number": _extension_number,
    "name": _display_name,
    "secret": _text,
    "allow_external": _bool,
    "allow_international": _bool,
}


def _inbound(where: _Where, value: Any) -> str:
    """A bare extension number, or a KIND:NAME target (extension:, queue:, ivr:)."""
    _pattern(r"[0-9]{2,8}|[a-z]+:[A-Za-z0-9_-]+", 'an extension number like "201" or a target like "ivr:main"')(
        where, value
    )
    kind = value.partition(":")[0]
    if ":" in value and kind not in TARGET_KINDS:
        where.fail(f'unknown target kind "{kind}" (expected {", ".join(k + ":" for k in TARGET_KINDS)})')
    try:
        Action.parse(value)
    except ValueError as e:
        where.fail(str(e))
    return value


_TRUNK_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "name": _name,
    "host": _host,
    "port": _port,
    "transport": _choice(TRANSPORTS),
    "username": _user,
    "secret": _text,
    "register": _bool,
    "inbound": _inbound,
    "outbound_prefix": _digits,
    "expires": _int(60, 86400),
    "from_domain": _host,
}


def weak_secret_reason(secret: str, number: str, name: str = "") -> str | None:
    """Why an extension secret is too weak to accept, or None if it is acceptable."""
    lowered = secret.lower()
    if len(secret) < 8:
        return "must be at least 8 characters"
    if lowered == name.lower() or not secret.replace(number, ""):
        return "must not be the extension number or name"
    if lowered in WEAK_SECRETS:
        return "is a well-known password"
    if any(lowered == lowered[:n] * (len(lowered) // n) for n in range(1, 5) if len(lowered) % n == 0):
        return "must not be one short pattern repeated"
    steps = {ord(b) - ord(a) for a, b in zip(lowered, lowered[1:])}
    if steps in ({1}, {-1}):
        return "must not be a simple sequence"
    return None


def _table_list(where: _Where, value: Any) -> list:
    if not isinstance(value, list):
        where.fail(f"expected an array of tables ([[{where.path}]]), got {_shown(value)}")
    return value


def _record(where: _Where, table: Any, keys: dict, required: tuple[str, ...]) -> dict:
    _check_keys(where, table, keys, required)
    return {key: keys[key](where / key, value) for key, value in table.items()}


def _extensions(where: _Where, value: Any) -> list[ExtensionConfig]:
    result: list[ExtensionConfig] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        ext = ExtensionConfig(**_record(at, table, _EXTENSION_KEYS, ("number", "name", "secret")))
        if ext.number in seen:
            (at / "number").fail(f'duplicate extension "{ext.number}" (also {where.path}[{seen[ext.number]}])')
        seen[ext.number] = i
        reason = weak_secret_reason(ext.secret, ext.number, ext.name)
        if reason:
            (at / "secret").fail(f"too weak: {reason} (there are no default passwords)")
        result.append(ext)
    return result


def _trunks(where: _Where, value: Any) -> list[TrunkConfig]:
    result: list[TrunkConfig] = []
    names: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        trunk = TrunkConfig(**_record(at, table, _TRUNK_KEYS, ("name", "host", "inbound")))
        if trunk.name in names:
            (at / "name").fail(f'duplicate trunk "{trunk.name}" (also {where.path}[{names[trunk.name]}])')
        names[trunk.name] = i
        if trunk.outbound_prefix is not None:
            if trunk.outbound_prefix in prefixes:
                (at / "outbound_prefix").fail(
                    f'"{trunk.outbound_prefix}" is already used by {where.path}[{prefixes[trunk.outbound_prefix]}]'
                )
            prefixes[trunk.outbound_prefix] = i
        if trunk.register:
            for key in ("username", "secret"):
                if getattr(trunk, key) is None:
                    (at / key).fail("required when register = true")
        result.append(trunk)
    return result


def _sms_text(where: _Where, value: Any) -> str:
    """A text message short enough for one SMS (160 GSM characters); empty sends none."""
    text = _text(where, value) if value != "" else ""
    if len(text) > 160:
        where.fail(f"at most 160 characters fit in one text message, got {len(text)}")
    return text


_MODEM_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "name": _name,
    "port": _text,
    "audio_port": _text,
    "dialect": _choice(DIALECTS),
    "inbound": _inbound,
    "outbound_prefix": _digits,
    "codec": _choice(("PCMU", "PCMA"), str.upper),
    "callback_sms": _sms_text,
}



def _modems(where: _Where, value: Any, trunks: list[TrunkConfig]) -> list[ModemConfig]:
    """[[modems]]: GSM or FXO lines, named and prefixed apart from the trunks."""
    names = {trunk.name: "a [[trunks]] entry" for trunk in trunks}
    prefixes = {trunk.outbound_prefix: f'trunk "{trunk.name}"' for trunk in trunks if trunk.outbound_prefix}
    result: list[ModemConfig] = []
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        modem = ModemConfig(**_record(at, table, _MODEM_KEYS, ("name", "port", "dialect", "inbound")))
        if modem.name in names:
            (at / "name").fail(f'"{modem.name}" is already the name of {names[modem.name]}')
        names[modem.name] = f"{where.path}[{i}]"
        if modem.outbound_prefix is not None:
            if modem.outbound_prefix in prefixes:
                (at / "outbound_prefix").fail(f'"{modem.outbound_prefix}" is already used by {prefixes[modem.outbound_prefix]}')
            prefixes[modem.outbound_prefix] = f"{where.path}[{i}]"
        result.append(modem)
    return result


# --- business hours, IVR menus and prompts ---


def _timezone(where: _Where, value: Any) -> str:
    try:
        zone(_text(where, value))
    except ValueError as e:
        where.fail(str(e))
    return value


def _day(where: _Where, value: Any) -> tuple:
    try:
        return parse_day(value)
    except ValueError as e:
        where.fail(str(e))


def _holidays(where: _Where, value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        where.fail(f'expected a list of dates like ["2026-12-25", "01-01"], got {_shown(value)}')
    for i, day in enumerate(value):
        try:
            parse_holiday(day)
        except ValueError as e:
            (where / i).fail(str(e))
    return frozenset(value)


_HOURS_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "name": _name,
    "timezone": _timezone,
    **{day: _day for day in DAY_NAMES},
    "holidays": _holidays,
}


def _hours(where: _Where, value: Any) -> list[BusinessHours]:
    result: list[BusinessHours] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        values = _record(at, table, _HOURS_KEYS, ("name", "timezone"))
        if values["name"] in seen:
            (at / "name").fail(f'duplicate hours "{values["name"]}" (also {where.path}[{seen[values["name"]]}])')
        seen[values["name"]] = i
        week = {n: values[day] for n, day in enumerate(DAY_NAMES) if values.get(day)}
        result.append(BusinessHours(values["name"], values["timezone"], week, values.get("holidays", frozenset())))
    return result


def _prompt(empty: str | None) -> Callable[[_Where, Any], str | None]:
    """A prompt name: one of the box's, or the owner's own (lower-case letters, digits, _); "" gives `empty`."""
    def check(where: _Where, value: Any) -> str | None:
        if value == "":
            return empty
        if not prompt_texts.is_prompt_name(value):
            where.fail(f"expected a prompt name such as greeting or menu, or your own (lower-case letters, digits "
                       f'and _, e.g. "support_menu", with its words under [prompts]), or "" for none, '
                       f"got {_shown(value)}")
        return value

    return check


def _action(where: _Where, value: Any) -> Action:
    """An action from "queue:sales" or from { to = "extension:202", label = "billing" }."""
    label = ""
    if isinstance(value, dict):
        _check_keys(where, value, ("to", "label"), ("to",))
        if "label" in value:
            label = _display_name(where / "label", value["label"])
        where, value = where / "to", value["to"]
    try:
        return Action.parse(value, label)
    except ValueError as e:
        where.fail(str(e))


def _options(where: _Where, value: Any) -> dict[str, Action]:
    if not isinstance(value, dict):
        where.fail(f'expected a table of key = action, e.g. "1" = "queue:sales", got {_shown(value)}')
    for key in value:
        if len(key) != 1 or key not in DTMF_KEYS:
            (where / key).fail("expected a single DTMF key: 0-9, *, # or A-D")
    return {key: _action(where / key, action) for key, action in value.items()}


_IVR_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "name": _name,
    "number": _extension_number,
    "greeting": _prompt(empty=None),
    "menu": _prompt(empty=""),
    "options": _options,
    "dial_by_extension": _bool,
    "timeout": _seconds(1, 60),
    "digit_timeout": _seconds(1, 30),
    "max_retries": _int(0, 10),
    "fallback": _action,
    "hours": _name,
    "night": _action,
    "record": _bool,
}


def _ivrs(where: _Where, value: Any, extensions: set[str]) -> list[IvrMenu]:
    """Menus with names and numbers checked; references are checked once everything is parsed."""
    result: list[IvrMenu] = []
    names: dict[str, int] = {}
    numbers: dict[str, int] = {}
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        menu = IvrMenu(**_record(at, table, _IVR_KEYS, ("name",)))
        if menu.name in names:
            (at / "name").fail(f'duplicate ivr "{menu.name}" (also {where.path}[{names[menu.name]}])')
        names[menu.name] = i
        if menu.number is not None:
            if menu.number in extensions:
                (at / "number").fail(f'"{menu.number}" is already an extension number')
            if menu.number in numbers:
                (at / "number").fail(f'"{menu.number}" is already used by {where.path}[{numbers[menu.number]}]')
            numbers[menu.number] = i
        result.append(menu)
    return result


def _check_target(where: _Where, action: Action, ivrs: set[str], extensions: set[str], queues: set[str]) -> None:
    if action.kind == "ivr" and action.target not in ivrs:
        where.fail(f'no [[ivr]] named "{action.target}"')
    if action.kind in ("queue", "callback") and action.target and action.target not in queues:
        where.fail(f'no [[queue]] named "{action.target}"')
    if action.kind == "extension" and action.target not in extensions:
        where.fail(f'no extension "{action.target}" in [[extensions]]')


def _check_menu(
    at: _Where, menu: IvrMenu, ivrs: set[str], hours: set[str], extensions: set[str], queues: set[str]
) -> None:
    for key, action in menu.options.items():
        _check_target(at / "options" / key, action, ivrs, extensions, queues)
    # Neither is a key press: "repeat" or the menu itself would replay it to a silent caller forever.
    for key in ("fallback", "night"):
        action = getattr(menu, key)
        if action is None:
            continue
        if action.kind == "repeat":
            (at / key).fail('"repeat" is only a menu option; use hangup or a destination')
        if action.kind == "ivr" and action.target == menu.name:
            (at / key).fail(f'"ivr:{menu.name}" is this menu itself and would loop forever')
        _check_target(at / key, action, ivrs, extensions, queues)
    if menu.hours is not None and menu.hours not in hours:
        (at / "hours").fail(f'no [[hours]] named "{menu.hours}"')
    if menu.night is not None and menu.hours is None:
        (at / "night").fail("has no effect without hours (the menu is always open)")


# --- queues ---


def _announce_every(where: _Where, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value == 0 or 10 <= value <= 3600):
        where.fail(f"expected 0 (never) or a number of seconds from 10 to 3600, got {_shown(value)}")
    return float(value)


def _destination(where: _Where, value: Any) -> Action:
    """Where a queue sends a caller it cannot keep: hangup, callback, extension:N, ivr:NAME or queue:NAME."""
    try:
        action = Action.parse(value)
    except ValueError as e:
        where.fail(str(e))
    if action.kind not in DESTINATION_KINDS:
        where.fail(f'expected hangup, callback, extension:N, ivr:NAME or queue:NAME, got {_shown(value)}')
    return action


def _member(where: _Where, value: Any) -> Member:
    """A member: "201", or { extension = "202", tier = 2 }."""
    if isinstance(value, dict):
        _check_keys(where, value, ("extension", "tier"), ("extension",))
        extension = _extension_number(where / "extension", value["extension"])
        tier = _int(1, 9)(where / "tier", value["tier"]) if "tier" in value else 1
        return Member(extension, tier)
    if not isinstance(value, str):
        where.fail(f'expected an extension like "201" or a table like {{ extension = "202", tier = 2 }}, '
                   f"got {_shown(value)}")
    return Member(_extension_number(where, value))


def _members(where: _Where, value: Any) -> tuple[Member, ...]:
    if not isinstance(value, list):
        where.fail(f'expected a list like ["201", {{ extension = "202", tier = 2 }}], got {_shown(value)}')
    result: list[Member] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        member = _member(where / i, item)
        if member.extension in seen:
            (where / i).fail(f'duplicate member "{member.extension}" (also {where.path}[{seen[member.extension]}])')
        seen[member.extension] = i
        result.append(member)
    return tuple(result)


_QUEUE_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "name": _name,
    "number": _extension_number,
    "strategy": _choice(STRATEGIES),
    "members": _members,
    "ring_timeout": _seconds(1, 300),
    "wrapup": _seconds(0, 3600),
    "max_wait": _seconds(10, 86400),
    "max_length": _int(1, 1000),
    "hold_music": _prompt(empty="hold_music"),
    "announce_every": _announce_every,
    "announce_position": _bool,
    "announce_wait": _bool,
    "callback_key": _pattern(f"[{re.escape(CALLBACK_KEYS)}]?", f'one of {CALLBACK_KEYS} or "" for none'),
    "callback_attempts": _int(1, 10),
    "callback_retry": _seconds(5, 86400),
    "service_level": _seconds(1, 3600),
    "max_misses": _int(0, 100),
    "vip_priority": _bool,
    "vip_tier": _int(1, 9),
    "hours": _name,
    "closed": _destination,
    "empty": _destination,
    "timeout": _destination,
    "full": _destination,
}


def _queues(where: _Where, value: Any, extensions: set[str], ivrs: list[IvrMenu]) -> list[QueueConfig]:
    """Queues with names, numbers and members checked; destinations are checked once everything is parsed."""
    ivr_numbers = {menu.number: i for i, menu in enumerate(ivrs) if menu.number is not None}
    result: list[QueueConfig] = []
    names: dict[str, int] = {}
    numbers: dict[str, int] = {}
    for i, table in enumerate(_table_list(where, value)):
        at = where / i
        values = _record(at, table, _QUEUE_KEYS, ("name",))
        name = values["name"]
        if name in names:
            (at / "name").fail(f'duplicate queue "{name}" (also {where.path}[{names[name]}])')
        names[name] = i
        number = values.get("number")
        if number is not None:
            if number in extensions:
                (at / "number").fail(f'"{number}" is already an extension number')
            if number in ivr_numbers:
                (at / "number").fail(f'"{number}" is already used by ivr[{ivr_numbers[number]}]')
            if number in numbers:
                (at / "number").fail(f'"{number}" is already used by {where.path}[{numbers[number]}]')
            numbers[number] = i
        for j, item in enumerate(table.get("members", [])):
            if values["members"][j].extension not in extensions:
                spot = at / "members" / j
                (spot / "extension" if isinstance(item, dict) else spot).fail(
                    f'no extension "{values["members"][j].extension}" in [[extensions]]'
                )
        for key in ("closed", "empty", "timeout", "full"):
            action = values.get(key)
            if action is not None and action.kind == "queue" and action.target == name:
                (at / key).fail(f'"queue:{name}" is this queue itself and would loop forever')
        try:
            result.append(QueueConfig(**values))
        except ValueError as e:  # everything is checked above; this is a safety net
            at.fail(str(e))
    return result


def _check_queue(
    at: _Where, queue: QueueConfig, ivrs: set[str], hours: set[str], extensions: set[str], queues: set[str]
) -> None:
    for key in ("closed", "empty", "timeout", "full"):
        _check_target(at / key, getattr(queue, key), ivrs, extensions, queues)
    if queue.hours is not None and queue.hours not in hours:
        (at / "hours").fail(f'no [[hours]] named "{queue.hours}"')


def _check_own_prompts(where: _Where, ivrs: list[IvrMenu], queues: list[QueueConfig], texts: dict[str, str]) -> None:
    """The owner's own prompt names: a near miss of one of the box's is a typo, and words nobody plays are one too."""
    used: dict[str, _Where] = {}
    for i, menu in enumerate(ivrs):
        for key in ("greeting", "menu"):
            name = getattr(menu, key)
            if name:
                used.setdefault(name, where / "ivr" / i / key)
    for i, queue in enumerate(queues):
        used.setdefault(queue.hold_music, where / "queue" / i / "hold_music")
    for name, at in used.items():
        typo = prompt_texts.near_miss(name)
        if typo is not None and name not in texts:
            # a recording set with `prompt set` may carry any name, but not one a letter off the box's
            at.fail(f'no prompt "{name}" (did you mean {typo}?)')
    for name in texts:
        if name not in prompt_texts.NAMES and name not in used:
            typo = prompt_texts.near_miss(name)
            hint = f" (did you mean {typo}?)" if typo else ""
            (where / "prompts" / name).fail(f"no menu or queue uses it{hint}")


def _prompts(where: _Where, table: Any) -> tuple[str | None, dict[str, str]]:
    """[prompts]: the espeak-ng voice, new wording for the box's prompts, and words for the owner's own."""
    if not isinstance(table, dict):
        where.fail(f"expected a table, got {_shown(table)}")
    voice = _voice(where / "voice", table["voice"]) if "voice" in table else None
    texts: dict[str, str] = {}
    for key, value in table.items():
        if key == "voice":
            continue
        if key in prompt_texts.LOOPED or not prompt_texts.is_prompt_name(key):
            (where / key).fail("expected a prompt name: one of the box's (greeting, menu, ...) or your own in "
                               "lower-case letters, digits and _ (music is set with `switchboard prompt set`)")
        text = _text(where / key, value).strip()
        if len(text) > MAX_PROMPT_TEXT:
            (where / key).fail(f"longer than {MAX_PROMPT_TEXT} characters")
        texts[key] = text
    return voice, texts


# --- CRM ---


def _region(where: _Where, value: Any) -> str:
    import phonenumbers  # only provisioning needs the list of regions

    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        where.fail(f'expected a two-letter country code such as "US", "GB" or "FR", got {_shown(value)}')
    return value.upper()


_outcome = _pattern(r'[^\x00-\x1f\x7f"\\]{1,40}', "1-40 characters without quotes, backslashes or control characters")


def _outcomes(where: _Where, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        where.fail(f'expected a non-empty list like ["resolved", "sale"], got {_shown(value)}')
    result: list[str] = []
    for i, item in enumerate(value):
        outcome = _outcome(where / i, item).strip()
        if not outcome:
            (where / i).fail("expected some text, got only spaces")
        if outcome.lower() in (o.lower() for o in result):
            (where / i).fail(f'duplicate outcome "{outcome}"')
        result.append(outcome)
    return tuple(result)


def _segment_rules(where: _Where, value: Any) -> tuple[SegmentRule, ...]:
    """[crm.segments]: regular = { calls = 3, days = 90 }; the first rule met wins, highest segment first."""
    _check_keys(where, value, RULE_SEGMENTS)
    rules = []
    for segment in RULE_SEGMENTS:
        if segment in value:
            rule = _record(where / segment, value[segment], {"calls": _int(1, 10000), "days": _int(1, 3650)},
                           ("calls", "days"))
            rules.append(SegmentRule(segment, rule["calls"], rule["days"]))
    return tuple(rules)


_CRM_KEYS: dict[str, Callable[[_Where, Any], Any]] = {
    "region": _region,
    "outcomes": _outcomes,
    "settled": _outcomes,
    "new_days": _int(0, 3650),
    "repeat_calls": _int(2, 100),
    "repeat_days": _int(1, 365),
    "recent_calls": _int(2, 100),
    "calm_share": _number(0, 1),
    "segments": _segment_rules,
}


def _crm(where: _Where, table: Any) -> CrmSettings:
    """[crm]: region, wrap-up outcomes, segment rules and alert thresholds."""
    values = _record(where, table, _CRM_KEYS, ())
    outcomes = values.get("outcomes", CrmSettings.outcomes)
    if "settled" not in values:
        values["settled"] = tuple(o for o in CrmSettings.settled if o in outcomes) or outcomes[:1]
    unknown = [o for o in values["settled"] if o not in outcomes]
    if unknown:
        (where / "settled").fail(f'not in outcomes: {", ".join(unknown)} (settled must be some of the outcomes)')
    if "segments" in values:
        values["rules"] = values.pop("segments")
    return CrmSettings(**values)


_SECURITY_KEYS = {"allow_international": _bool, "allow_premium": _bool, "allow_satellite": _bool,
                  "callbacks": _choice(CALLBACK_POLICIES)}


def load_provisioning(path: Path) -> Provisioning:
    """Parse and validate a provisioning TOML file."""
    where = _Where(str(path))
    doc = _check_keys(
        where,
        _read_toml(Path(path)),
        ("extensions", "trunks", "security", "box", "hours", "ivr", "queue", "prompts", "crm", "modems"),
    )
    security = _record(where / "security", doc.get("security", {}), _SECURITY_KEYS, ())
    box, _ = _box_values(where / "box", doc.get("box", {}))
    extensions = _extensions(where / "extensions", doc.get("extensions", []))
    trunks = _trunks(where / "trunks", doc.get("trunks", []))
    hours = _hours(where / "hours", doc.get("hours", []))
    numbers = {ext.number for ext in extensions}
    ivrs = _ivrs(where / "ivr", doc.get("ivr", []), numbers)
    queues = _queues(where / "queue", doc.get("queue", []), numbers, ivrs)
    ivr_names = {menu.name for menu in ivrs}
    hour_names = {h.name for h in hours}
    queue_names = {queue.name for queue in queues}
    for i, menu in enumerate(ivrs):
        _check_menu(where / "ivr" / i, menu, ivr_names, hour_names, numbers, queue_names)
    for i, queue in enumerate(queues):
        _check_queue(where / "queue" / i, queue, ivr_names, hour_names, numbers, queue_names)
    modems = _modems(where / "modems", doc.get("modems", []), trunks)
    for table, lines in (("trunks", trunks), ("modems", modems)):
        for i, line in enumerate(lines):
            kind, _, target = (line.inbound or "").partition(":")
            if kind == "ivr" and target not in ivr_names:
                (where / table / i / "inbound").fail(f'no [[ivr]] named "{target}"')
            if kind == "queue" and target not in queue_names:
                (where / table / i / "inbound").fail(f'no [[queue]] named "{target}"')
    voice, texts = _prompts(where / "prompts", doc.get("prompts", {}))
    _check_own_prompts(where, ivrs, queues, texts)
    crm = _crm(where / "crm", doc["crm"]) if "crm" in doc else None
    return Provisioning(
        extensions=extensions,
        trunks=trunks,
        security=SecurityConfig(**security),
        box=box,
        ivrs=ivrs,
        hours=hours,
        prompt_voice=voice,
        prompt_texts=texts,
        queues=queues,
        crm=crm,
        modems=modems,
    )
