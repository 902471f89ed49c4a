"""IVR menu data (Action, IvrMenu) and the [[ivr]] and [prompts] tables of the provisioning file."""

from __future__ import annotations

import json

import pytest

from appliance.calls.ivr_config import ACTION_KINDS, DTMF_KEYS, Action, IvrMenu
from appliance.config import ConfigError, load_provisioning
from appliance.media import prompt_texts
from office_text import ANN_AND_BOB

EXTENSIONS = ANN_AND_BOB

HOURS = """
[[hours]]
name = "office"
timezone = "Europe/Paris"
mon = "09:00-12:30, 14:00-18:00"
"""

FULL = EXTENSIONS + HOURS + """
[[ivr]]
name = "main"
number = "500"
greeting = "greeting"
menu = "menu"
dial_by_extension = true
timeout = 5
digit_timeout = 2.5
max_retries = 2
fallback = "extension:201"
hours = "office"
night = "ivr:closed"
record = true
[ivr.options]
"1" = "queue:sales"
"2" = { to = "extension:202", label = "billing" }
"3" = "201"
"9" = "repeat"
"0" = "hangup"
"*" = "callback"
"#" = "ivr:closed"

[[ivr]]
name = "closed"
greeting = ""
menu = "closed"

[[queue]]
name = "sales"
members = ["201", "202"]

[prompts]
voice = "en-gb"
greeting = "Welcome to Acme."
"""

MENU = '[[ivr]]\nname = "main"\n'


def _load(tmp_path, body: str):
    path = tmp_path / "provision.toml"
    path.write_text(body)
    return load_provisioning(path)


# --- Action ---


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("extension:202", "extension", "202"),
        ("202", "extension", "202"),
        ("12345678", "extension", "12345678"),
        (" 202 ", "extension", "202"),
        ("queue:sales", "queue", "sales"),
        ("ivr:billing-2", "ivr", "billing-2"),
        ("ivr:Main_menu", "ivr", "Main_menu"),
        ("repeat", "repeat", ""),
        ("hangup", "hangup", ""),
        ("callback", "callback", ""),
    ],
)
def test_action_parse(text, kind, target):
    action = Action.parse(text, label="x")
    assert (action.kind, action.target, action.label) == (kind, target, "x")
    assert str(action) == (f"{kind}:{target}" if target else kind)
    assert Action.parse(str(action)) == Action(kind, target)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected"),
        ("2", "expected"),
        ("123456789", "expected"),
        ("voicemail:201", "expected"),
        ("Extension:202", "expected"),
        ("extension:", "expected"),
        ("extension", '"extension" needs a target'),
        ("queue", '"queue" needs a target'),
        ("extension:abc", "extension target must be 2-8 digits"),
        ("extension:2", "extension target must be 2-8 digits"),
        ("queue:has space", "queue name must be 1-32 letters"),
        ("ivr:" + "x" * 33, "ivr name must be 1-32 letters"),
        ("ivr:a:b", "ivr name must be 1-32 letters"),
        ("hangup:now", '"hangup" takes no target'),
        ("repeat:1", '"repeat" takes no target'),
    ],
)
def test_action_parse_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        Action.parse(text)


def test_action_constructor_validates():
    with pytest.raises(ValueError, match="unknown action"):
        Action("transfer", "202")
    with pytest.raises(ValueError, match="needs|must be"):
        Action("queue")
    assert set(ACTION_KINDS) == {"extension", "queue", "ivr", "repeat", "hangup", "callback"}


# --- IvrMenu ---


def test_menu_defaults():
    menu = IvrMenu("main")
    assert (menu.number, menu.greeting, menu.menu, dict(menu.options)) == (None, "greeting", "menu", {})
    assert (menu.timeout, menu.digit_timeout, menu.max_retries) == (5.0, 3.0, 3)
    assert menu.fallback == Action("hangup") and menu.night is None and menu.hours is None
    assert menu.dial_by_extension is False and menu.record is False


def test_menu_round_trips_through_json():
    menu = IvrMenu(
        "main", number="500", greeting=None, menu="menu",
        options={"1": Action("queue", "sales", "sales"), "#": Action("repeat"), "D": Action.parse("202")},
        dial_by_extension=True, timeout=7.5, digit_timeout=2.0, max_retries=0,
        fallback=Action("extension", "201"), hours="office", night=Action("ivr", "closed"), record=True,
    )
    data = json.loads(json.dumps(menu.to_dict()))
    assert data["options"]["1"] == {"kind": "queue", "target": "sales", "label": "sales"}
    assert data["night"] == {"kind": "ivr", "target": "closed", "label": ""}
    assert IvrMenu.from_dict(data) == menu
    assert IvrMenu.from_dict(IvrMenu("x").to_dict()) == IvrMenu("x")
    assert IvrMenu.from_dict({"name": "bare"}) == IvrMenu("bare")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "m", "colour": "red"}, "unknown menu field"),
        ({"name": "m", "options": {"1": {"kind": "queue", "target": "s", "x": 1}}}, "unknown action field"),
        ({"name": "m", "options": {"E": {"kind": "hangup"}}}, "option key"),
        ({"name": "m", "options": {"12": {"kind": "hangup"}}}, "option key"),
        ({"name": "m", "fallback": {"kind": "dance"}}, "unknown action"),
        ({"name": "bad name"}, "menu name"),
        ({"name": "m", "number": "5"}, "menu number"),
    ],
)
def test_menu_from_dict_rejects(data, message):
    with pytest.raises(ValueError, match=message):
        IvrMenu.from_dict(data)


def test_dtmf_keys():
    assert DTMF_KEYS == "0123456789*#ABCD"


# --- the [[ivr]] and [prompts] tables ---


def test_full_example_parses(tmp_path):
    prov = _load(tmp_path, FULL)
    main, closed = prov.ivrs
    assert main == IvrMenu(
        name="main", number="500", greeting="greeting", menu="menu",
        options={
            "1": Action("queue", "sales"),
            "2": Action("extension", "202", "billing"),
            "3": Action("extension", "201"),
            "9": Action("repeat"),
            "0": Action("hangup"),
            "*": Action("callback"),
            "#": Action("ivr", "closed"),
        },
        dial_by_extension=True, timeout=5.0, digit_timeout=2.5, max_retries=2,
        fallback=Action("extension", "201"), hours="office", night=Action("ivr", "closed"), record=True,
    )
    assert isinstance(main.timeout, float)
    assert closed == IvrMenu("closed", greeting=None, menu="closed")
    assert prov.prompt_voice == "en-gb"
    assert prov.prompt_texts == {"greeting": "Welcome to Acme."}
    assert [h.name for h in prov.hours] == ["office"]


def test_no_ivr_no_prompts(tmp_path):
    prov = _load(tmp_path, EXTENSIONS)
    assert (prov.ivrs, prov.hours, prov.prompt_voice, prov.prompt_texts) == ([], [], None, {})


def test_every_spoken_prompt_text_can_be_replaced(tmp_path):
    body = "[prompts]\n" + "".join(f'{name} = "Words for {name}."\n' for name in sorted(prompt_texts.TEXTS))
    prov = _load(tmp_path, body)
    assert prov.prompt_texts == {name: f"Words for {name}." for name in prompt_texts.TEXTS}
    assert prov.prompt_voice is None


def test_dial_by_extension_allows_option_keys_that_prefix_extensions(tmp_path):
    prov = _load(tmp_path, EXTENSIONS + MENU + 'dial_by_extension = true\n[ivr.options]\n"2" = "202"\n')
    assert prov.ivrs[0].dial_by_extension and prov.ivrs[0].options["2"] == Action("extension", "202")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('ivr = "main"\n', "ivr: expected an array of tables"),
        ("[[ivr]]\nnumber = \"500\"\n", "ivr[0].name: missing required key"),
        ('[[ivr]]\nname = "main menu"\n', "ivr[0].name: expected 1-32 letters"),
        (MENU + MENU, 'ivr[1].name: duplicate ivr "main" (also ivr[0])'),
        (MENU + 'colour = "red"\n', "ivr[0].colour: unknown key"),
        (MENU + "number = 500\n", "ivr[0].number: expected a quoted string of 2-8 digits"),
        (MENU + 'number = "201"\n', 'ivr[0].number: "201" is already an extension number'),
        (MENU + 'number = "500"\n' + MENU.replace("main", "other") + 'number = "500"\n',
         'ivr[1].number: "500" is already used by ivr[0]'),
        (MENU + 'greeting = "Hello!"\n', 'ivr[0].greeting: expected a prompt name such as greeting or menu'),
        (MENU + 'greeting = "Hello!"\n', 'or "" for none, got "Hello!"'),
        (MENU + 'menu = "greting"\n', 'ivr[0].menu: no prompt "greting" (did you mean greeting?)'),
        (MENU + "menu = 1\n", "ivr[0].menu: expected a prompt name"),
        (MENU + "dial_by_extension = 1\n", "ivr[0].dial_by_extension: expected true or false, got 1"),
        (MENU + "timeout = 0\n", "ivr[0].timeout: expected a number of seconds from 1 to 60, got 0"),
        (MENU + "timeout = 61\n", "ivr[0].timeout: expected a number of seconds from 1 to 60"),
        (MENU + "timeout = nan\n", "ivr[0].timeout: expected a number of seconds"),
        (MENU + 'timeout = "5"\n', "ivr[0].timeout: expected a number of seconds"),
        (MENU + "digit_timeout = 31\n", "ivr[0].digit_timeout: expected a number of seconds from 1 to 30"),
        (MENU + "digit_timeout = 0.5\n", "ivr[0].digit_timeout: expected a number of seconds from 1 to 30"),
        (MENU + "max_retries = 11\n", "ivr[0].max_retries: expected an integer 0-10, got 11"),
        (MENU + "max_retries = -1\n", "ivr[0].max_retries: expected an integer 0-10"),
        (MENU + "max_retries = 2.5\n", "ivr[0].max_retries: expected an integer 0-10"),
        (MENU + "record = \"yes\"\n", 'ivr[0].record: expected true or false, got "yes"'),
        # options
        (MENU + 'options = "1"\n', "ivr[0].options: expected a table of key = action"),
        (MENU + '[ivr.options]\n"10" = "hangup"\n', "ivr[0].options.10: expected a single DTMF key"),
        (MENU + '[ivr.options]\n"E" = "hangup"\n', "ivr[0].options.E: expected a single DTMF key"),
        (MENU + '[ivr.options]\n"a" = "hangup"\n', "ivr[0].options.a: expected a single DTMF key"),
        (MENU + '[ivr.options]\n"1" = "voicemail"\n', 'ivr[0].options.1: expected "extension:202"'),
        (MENU + '[ivr.options]\n"1" = 202\n', "ivr[0].options.1: expected"),
        (MENU + '[ivr.options]\n"1" = "queue"\n', 'ivr[0].options.1: "queue" needs a target'),
        (MENU + '[ivr.options]\n"1" = "queue:the sales"\n', "ivr[0].options.1: queue name must be"),
        (MENU + '[ivr.options]\n"1" = "ivr:nowhere"\n', 'ivr[0].options.1: no [[ivr]] named "nowhere"'),
        (MENU + '[ivr.options]\n"1" = "extension:299"\n', 'ivr[0].options.1: no extension "299" in [[extensions]]'),
        (MENU + '[ivr.options]\n"1" = "299"\n', 'ivr[0].options.1: no extension "299"'),
        (MENU + '[ivr.options]\n"1" = { label = "x" }\n', "ivr[0].options.1.to: missing required key"),
        (MENU + '[ivr.options]\n"1" = { to = "hangup", lable = "x" }\n', "ivr[0].options.1.lable: unknown key"),
        (MENU + '[ivr.options]\n"1" = { to = "bogus" }\n', "ivr[0].options.1.to: expected"),
        (MENU + '[ivr.options]\n"1" = { to = "hangup", label = "a\\"b" }\n', "ivr[0].options.1.label: expected 1-64"),
        # fallback and night
        (MENU + 'fallback = "repeat"\n', 'ivr[0].fallback: "repeat" is only a menu option'),
        (MENU + 'fallback = "ivr:main"\n', 'ivr[0].fallback: "ivr:main" is this menu itself'),
        (MENU + 'fallback = "ivr:other"\n', 'ivr[0].fallback: no [[ivr]] named "other"'),
        (MENU + 'fallback = "extension:299"\n', 'ivr[0].fallback: no extension "299"'),
        (MENU + 'fallback = "sideways"\n', "ivr[0].fallback: expected"),
        (HOURS + MENU + 'hours = "office"\nnight = "repeat"\n', 'ivr[0].night: "repeat" is only a menu option'),
        (HOURS + MENU + 'hours = "office"\nnight = "ivr:main"\n', 'ivr[0].night: "ivr:main" is this menu itself'),
        (HOURS + MENU + 'hours = "office"\nnight = "ivr:closed"\n', 'ivr[0].night: no [[ivr]] named "closed"'),
        (MENU + 'night = "hangup"\n', "ivr[0].night: has no effect without hours"),
        (MENU + 'hours = "weekend"\n', 'ivr[0].hours: no [[hours]] named "weekend"'),
        (MENU + 'hours = "has space"\n', "ivr[0].hours: expected 1-32 letters"),
        # [prompts]
        ('[prompts]\nvoice = "en gb"\n', 'prompts.voice: expected an espeak-ng voice name such as "en"'),
        ('[prompts]\nvoice = ""\n', "prompts.voice: expected an espeak-ng voice name"),
        ('[prompts]\ngreting = "Hi"\n', "prompts.greting: no menu or queue uses it (did you mean greeting?)"),
        ('[prompts]\nhold_music = "la la"\n', "prompts.hold_music: expected a prompt name"),
        ('[prompts]\ngreeting = ""\n', "prompts.greeting: expected a non-empty string"),
        ('[prompts]\ngreeting = 5\n', "prompts.greeting: expected a non-empty string"),
        (f'[prompts]\ngreeting = "{"a" * 1001}"\n', "prompts.greeting: longer than 1000 characters"),
        ('prompts = "loud"\n', "prompts: expected a table"),
    ],
)
def test_bad_ivr_or_prompts(tmp_path, body, message):
    path = tmp_path / "provision.toml"
    path.write_text(body + EXTENSIONS)  # top-level keys must come before any table
    with pytest.raises(ConfigError) as info:
        load_provisioning(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_references_may_point_forward(tmp_path):
    body = MENU + '[ivr.options]\n"1" = "ivr:later"\n' + MENU.replace("main", "later") + 'fallback = "ivr:main"\n'
    prov = _load(tmp_path, EXTENSIONS + body)
    assert [m.name for m in prov.ivrs] == ["main", "later"]
    assert prov.ivrs[1].fallback == Action("ivr", "main")


def test_menu_number_may_not_clash_with_extension_anywhere_in_the_file(tmp_path):
    # The [[ivr]] comes first in the file; the check still sees the later extension.
    body = MENU + 'number = "202"\n' + EXTENSIONS
    with pytest.raises(ConfigError, match='ivr\\[0\\].number: "202" is already an extension number'):
        _load(tmp_path, body)


def test_a_second_menu_has_its_own_spoken_words_or_none(tmp_path):
    """Issue 14, item 14: `menu = "support_menu"` and `menu = ""` used to be refused."""
    path = tmp_path / "provision.toml"
    path.write_text(EXTENSIONS + MENU + '[[ivr]]\nname = "support"\nmenu = "support_menu"\ngreeting = ""\n'
                    + '[[ivr]]\nname = "quiet"\nmenu = ""\n'
                    + '[prompts]\nsupport_menu = "For printers, press 1. For the network, press 2."\n')
    prov = load_provisioning(path)
    menus = {menu.name: menu for menu in prov.ivrs}
    assert (menus["support"].menu, menus["support"].greeting, menus["quiet"].menu) == ("support_menu", None, "")
    assert prov.prompt_texts == {"support_menu": "For printers, press 1. For the network, press 2."}
