"""The provisioning file's call flow: business hours, IVR menus, prompts and queues."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from appliance.calls.hours import DAY_NAMES, BusinessHours, parse_day, parse_holiday
from appliance.calls.ivr_config import DTMF_KEYS, Action, IvrMenu
from appliance.calls.queue_config import CALLBACK_KEYS, DESTINATION_KINDS, STRATEGIES, Member, QueueConfig
from appliance.media import prompt_texts

from .checks import (
    _check_keys,
    _record,
    _table_list,
    _timezone,
    _Where,
    _shown,
    _int,
    _seconds,
    _bool,
    _text,
    _choice,
    _pattern,
    _extension_number,
    _display_name,
    _name,
    _voice,
    MAX_PROMPT_TEXT,
)


# --- business hours, IVR menus and prompts ---


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
