"""Box-wide settings: defaults, then switchboard.toml [box], then the command line."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


from .checks import (
    _check_keys,
    _read_toml,
    _timezone,
    _Where,
    _int,
    _number,
    _bool,
    _text_path,
    _choice,
    _pattern,
    _ip,
    _port,
    _host,
    _voice,
    _algorithms,
    _networks,
    _prefixes,
    SETTINGS_FILE,
    SYSTEM_DATA_DIR,
    CLI,
    LOG_LEVELS,
    LOG_FORMATS,
    RECORD_CALLS,
    RINGBACKS,
    DTMF_INBAND,
    LED_PIN_FACTORIES,
)


# --- settings ---


def setting(default: Any, check: Callable[[_Where, Any], Any], cli: str | None = None) -> Any:
    """A Settings field with its checker and, if `cli` says what it does, a `switchboard run` flag."""
    return field(default=default, metadata={"check": check, "cli": cli})


@dataclass
class Settings:
    """Box-wide settings: defaults, then switchboard.toml [box], then the command line."""

    data_dir: Path
    bind: str = setting("0.0.0.0", _ip, cli='address to listen on (default 0.0.0.0)')
    advertise: str | None = setting(None, _host, cli='address put in SIP headers and SDP (default: derived from --bind)')
    sip_port: int = setting(5060, _port, cli='SIP port, UDP and TCP (default 5060)')
    http_port: int = setting(8080, _int(0, 65535), cli='web port (default 8080; 0: no web pages)')
    web_threads: int = setting(32, _int(4, 256))  # waitress workers; each open screen-pop stream holds one
    rtp_port_min: int = setting(10000, _port, cli='first RTP port (even)')
    rtp_port_max: int = setting(20000, _port, cli='last RTP port')
    # The realm is sent inside a quoted header parameter and hashed into every HA1.
    realm: str = setting("switchboard", _pattern(r"[A-Za-z0-9.@_-]{1,64}", "1-64 letters, digits or . @ _ -"))
    ring_timeout: float = setting(30.0, _number(0, 600), cli='seconds a call rings before it gives up')
    register_min_expires: int = setting(60, _int(10, 86400))
    register_max_expires: int = setting(3600, _int(10, 86400))
    register_default_expires: int = setting(600, _int(10, 86400))
    # Failed logins per source (and per account, from any number of sources) within ban_window.
    ban_max_failures: int = setting(10, _int(1, 1000))
    ban_account_failures: int = setting(20, _int(1, 10000))
    ban_window: float = setting(3600.0, _number(0, 86400))
    ban_seconds: float = setting(3600.0, _number(0, 31 * 86400))
    ban_exempt: tuple[str, ...] = setting((), _networks)  # networks never banned, e.g. ["192.168.1.0/24"]; trunks never are
    tcp_max_connections: int = setting(512, _int(1, 100_000))  # SIP over TCP, in all
    tcp_max_per_source: int = setting(32, _int(1, 10_000))  # SIP over TCP, from one address
    tcp_idle_timeout: float = setting(32.0, _number(1, 3600))  # close a connection that has sent no complete message for this long
    tcp_registered_idle: float = setting(600.0, _number(1, 86400))  # ... unless a phone registered over it
    max_calls_per_extension: int = setting(4, _int(1, 100))  # calls one extension may have going at once
    unanswered_media_share: float = setting(0.5, _number(0.05, 1.0))  # share of the RTP ports calls not yet answered and ACKed may hold
    nonce_lifetime: float = setting(300.0, _number(0, 86400))
    # MD5 only by default: SIPp and many phones answer only the first challenge, and libre-based
    # phones (baresip 1.0) give up when any challenge names SHA-256. Offer SHA-256 where all phones can.
    auth_algorithms: tuple[str, ...] = setting(("MD5",), _algorithms)
    log_level: str = setting("INFO", _choice(LOG_LEVELS, str.upper), cli='DEBUG, INFO, WARNING or ERROR')
    log_format: str = setting("json", _choice(LOG_FORMATS), cli='log format: json or text (default json)')
    allow_international: bool = setting(False, _bool)
    international_prefixes: tuple[str, ...] = setting(("00", "+"), _prefixes)
    national_prefix: str = setting("0", _pattern(r"[0-9]*", "a string of digits (may be empty)"))
    trunk_keepalive: float = setting(30.0, _number(0, 3600))  # seconds between OPTIONS pings to each trunk
    record_calls: str = setting("none", _choice(RECORD_CALLS))  # none, inbound or all
    ringback: str = setting("eu", _choice(RINGBACKS))  # the ringing tone callers hear: eu, us or uk
    dtmf_inband: str = setting("auto", _choice(DTMF_INBAND))  # listen for DTMF tones in the audio: auto (when not negotiated), always, never
    prompt_voice: str = setting("en", _voice)  # espeak-ng voice for generated prompts
    led_power_pin: int | None = setting(None, _int(0, 27))  # BCM GPIO numbers of the status LEDs; None: not fitted
    led_trunk_pin: int | None = setting(None, _int(0, 27))
    led_modem_pin: int | None = setting(None, _int(0, 27))
    led_calls_pin: int | None = setting(None, _int(0, 27))
    led_pin_factory: str = setting("auto", _choice(LED_PIN_FACTORIES))  # auto (gpiozero's default on a Pi, else mock), mock, or a gpiozero factory
    clock_check: bool = setting(False, _bool, cli='warn on the status page and the power LED until NTP has set the clock (the SD-card image turns it on)')
    setup_code_file: str = setting("", _text_path, cli='while no admin exists, keep the setup code in this file (the image: /run/switchboard/setup-code, copied to the SD card\'s boot partition)')
    backup_time: str = setting("03:15", _pattern(r"([01][0-9]|2[0-3]):[0-5][0-9]", "a time of day as HH:MM"))  # the nightly backup, office time
    backup_keep: int = setting(7, _int(1, 365))  # backups kept in the data folder's backups/
    boot_provision: str = setting("", _text_path, cli='a provisioning file to apply once (the image: the boot partition\'s switchboard.toml, handed over by switchboard-boot.service)')
    timezone: str = setting("", lambda where, value: _timezone(where, value) if value != "" else "")  # the office's IANA time zone for times people read; "" = the system's

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "switchboard.db"


def _box_keys() -> dict[str, Callable[[_Where, Any], Any]]:
    """Each [box] key and its checker, read off the Settings fields."""
    return {f.name: f.metadata["check"] for f in fields(Settings) if "check" in f.metadata}


_BOX_KEYS = _box_keys()


def add_cli_flags(parser: Any) -> None:
    """The settings `switchboard run` takes as flags (--sip-port...): the fields with a cli text."""
    for f in fields(Settings):
        help_text = f.metadata.get("cli")
        if help_text:
            flag = "--" + f.name.replace("_", "-")
            if isinstance(f.default, bool):
                parser.add_argument(flag, action="store_true", default=None, help=help_text)
                continue
            kind = type(f.default) if isinstance(f.default, (int, float)) else str
            parser.add_argument(flag, type=kind, help=help_text)


def cli_overrides(args: Any) -> dict[str, Any]:
    """The values of those flags in parsed arguments (None where a flag was not given)."""
    return {f.name: getattr(args, f.name, None) for f in fields(Settings) if f.metadata.get("cli")}


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
