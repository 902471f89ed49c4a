"""The provisioning file: extensions, trunks, modems, security and the CRM, checked whole."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError

from appliance.calls.hours import BusinessHours
from appliance.calls.ivr_config import TARGET_KINDS, Action, IvrMenu
from appliance.calls.queue_config import QueueConfig
from appliance.calls.outbound_policy import CALLBACK_POLICIES
from appliance.crm.settings import RULE_SEGMENTS, CrmSettings, SegmentRule
from appliance.lines.modem_config import DIALECTS, ModemConfig
from appliance.store.users import WEAK_SECRETS

from .checks import (
    _check_keys,
    _read_toml,
    _record,
    _table_list,
    _Where,
    _shown,
    _int,
    _number,
    _bool,
    _text,
    _choice,
    _pattern,
    _port,
    _host,
    _digits,
    _extension_number,
    _display_name,
    _user,
    _name,
    TRANSPORTS,
)
from .settings import (
    _box_values,
)
from .call_flow import (
    _hours,
    _ivrs,
    _check_menu,
    _queues,
    _check_queue,
    _check_own_prompts,
    _prompts,
)


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
class AdminConfig:
    """[admin]: the first web admin, by name and argon2id hash (`switchboard admin hash` makes one)."""

    username: str
    password_hash: str


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
    admin: AdminConfig | None = None  # created if no user has that name yet; never changes an existing one


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


def _admin(where: _Where, table: Any) -> AdminConfig:
    """[admin] username and password_hash: an argon2id hash, never a password in clear on a card."""
    values = _record(where, table, {"username": _text, "password_hash": _text}, ("username", "password_hash"))
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", values["username"]):
        (where / "username").fail("expected 1-64 letters, digits or . _ -")
    try:
        kind = extract_parameters(values["password_hash"]).type
    except (InvalidHashError, ValueError):
        kind = None
    if kind is not Type.ID:
        (where / "password_hash").fail("expected an argon2id hash ($argon2id$...): make one with "
                                       "`switchboard admin hash`")
    return AdminConfig(values["username"], values["password_hash"])


def load_provisioning(path: Path) -> Provisioning:
    """Parse and validate a provisioning TOML file."""
    where = _Where(str(path))
    doc = _check_keys(
        where,
        _read_toml(Path(path)),
        ("extensions", "trunks", "security", "box", "hours", "ivr", "queue", "prompts", "crm", "modems", "admin"),
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
    admin = _admin(where / "admin", doc["admin"]) if "admin" in doc else None
    return Provisioning(
        admin=admin,
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
