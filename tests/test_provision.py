from __future__ import annotations

import hashlib

import pytest

from appliance.calls.hours import BusinessHours
from appliance.calls.ivr_config import Action, IvrMenu
from appliance.config import ConfigError, ExtensionConfig, Provisioning, TrunkConfig, load_provisioning
from appliance import provisioning as provision
from appliance.calls import ivr_definitions as ivr
from appliance.store import directory
from appliance.provisioning import apply_provisioning
from office_text import ANN_AND_BOB

EXAMPLE = ANN_AND_BOB + """allow_international = true

[[trunks]]
name = "itsp"
host = "127.0.0.1"
port = 5070
username = "office"
secret = "trunk-secret"
register = true
inbound = "201"
outbound_prefix = "0"

[security]
allow_international = false
"""

EXT = '[[extensions]]\nnumber = "201"\nname = "Ann"\nsecret = "s3cret-201"\n'
TRUNK = '[[trunks]]\nname = "itsp"\nhost = "127.0.0.1"\ninbound = "201"\n'


def _write(tmp_path, body: str):
    path = tmp_path / "provision.toml"
    path.write_text(body)
    return path


def test_example_file_parses(tmp_path):
    prov = load_provisioning(_write(tmp_path, EXAMPLE))
    assert prov.extensions[0] == ExtensionConfig("201", "Ann", "s3cret-201")
    assert prov.extensions[1].allow_international is True
    assert prov.trunks == [
        TrunkConfig(
            name="itsp", host="127.0.0.1", port=5070, username="office", secret="trunk-secret",
            register=True, inbound="201", outbound_prefix="0",
        )
    ]
    assert prov.security.allow_international is False
    assert prov.box == {}


def test_empty_file_is_valid(tmp_path):
    assert load_provisioning(_write(tmp_path, "")) == Provisioning()


def test_box_table_is_validated_like_settings(tmp_path):
    prov = load_provisioning(_write(tmp_path, '[box]\nrealm = "office"\nsip_port = 5062\n'))
    assert prov.box == {"realm": "office", "sip_port": 5062}
    with pytest.raises(ConfigError, match=r"box\.sip_port: expected an integer"):
        load_provisioning(_write(tmp_path, '[box]\nsip_port = "x"\n'))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # file level
        ("[[extensions]]\nnumber = ", "invalid TOML"),
        ("[phones]\nx = 1\n", "phones: unknown key"),
        ('extensions = "201"\n', "extensions: expected an array of tables"),
        # extensions
        (EXT.replace('number = "201"', "number = 201"), 'extensions[0].number: expected a quoted string of 2-8 digits, e.g. "201", got 201'),
        (EXT.replace('"201"', '"2"', 1), "extensions[0].number: expected a quoted string of 2-8 digits"),
        (EXT.replace('"201"', '"123456789"', 1), "extensions[0].number: expected a quoted string of 2-8 digits"),
        (EXT.replace('"201"', '"20a"', 1), "extensions[0].number: expected a quoted string of 2-8 digits"),
        (EXT + EXT.replace("Ann", "Ann2").replace("s3cret-201", "another-good-1"), 'extensions[1].number: duplicate extension "201" (also extensions[0])'),
        (EXT.replace('secret = "s3cret-201"\n', ""), "extensions[0].secret: missing required key"),
        (EXT.replace('name = "Ann"\n', ""), "extensions[0].name: missing required key"),
        (EXT.replace('name = "Ann"', 'name = "Ann\\r\\nVia: x"'), "extensions[0].name: expected 1-64 characters without quotes"),
        (EXT.replace("s3cret-201", ""), "extensions[0].secret: expected a non-empty string"),
        (EXT.replace("s3cret-201", "s3cret"), "extensions[0].secret: too weak: must be at least 8 characters"),
        (EXT.replace("s3cret-201", "password"), "extensions[0].secret: too weak: is a well-known password"),
        (EXT.replace("s3cret-201", "12345678"), "extensions[0].secret: too weak"),
        (EXT.replace("s3cret-201", "xxxxxxxx"), "extensions[0].secret: too weak: must not be one short pattern repeated"),
        (EXT.replace("s3cret-201", "201201201"), "extensions[0].secret: too weak: must not be the extension number"),
        (EXT + "allow_external = \"yes\"\n", 'extensions[0].allow_external: expected true or false, got "yes"'),
        (EXT + "secert = \"typo-typo-1\"\n", "extensions[0].secert: unknown key"),
        # trunks
        (TRUNK.replace('name = "itsp"\n', ""), "trunks[0].name: missing required key"),
        (TRUNK.replace('"itsp"', '"my trunk"'), "trunks[0].name: expected 1-32 letters"),
        (TRUNK + TRUNK, 'trunks[1].name: duplicate trunk "itsp" (also trunks[0])'),
        (TRUNK.replace('"127.0.0.1"', '""'), "trunks[0].host: expected a host name or IP address"),
        (TRUNK.replace('host = "127.0.0.1"\n', ""), "trunks[0].host: missing required key"),
        (TRUNK + 'port = "abc"\n', 'trunks[0].port: expected an integer 1-65535, got "abc"'),
        (TRUNK + "port = 0\n", "trunks[0].port: expected an integer 1-65535, got 0"),
        (TRUNK + 'transport = "sctp"\n', "trunks[0].transport: expected one of udp, tcp, tls"),
        (TRUNK.replace('inbound = "201"\n', ""), "trunks[0].inbound: missing required key"),
        (TRUNK.replace('"201"', "201"), "trunks[0].inbound: expected an extension number"),
        (TRUNK.replace('"201"', '"reception"'), "trunks[0].inbound: expected an extension number"),
        (TRUNK + 'outbound_prefix = "9a"\n', 'trunks[0].outbound_prefix: expected a string of digits, got "9a"'),
        (
            TRUNK + 'outbound_prefix = "0"\n' + TRUNK.replace("itsp", "backup") + 'outbound_prefix = "0"\n',
            'trunks[1].outbound_prefix: "0" is already used by trunks[0]',
        ),
        (TRUNK + "register = true\nsecret = \"trunk-secret\"\n", "trunks[0].username: required when register = true"),
        (TRUNK + "register = true\nusername = \"office\"\n", "trunks[0].secret: required when register = true"),
        (TRUNK + 'username = "off ice"\n', "trunks[0].username: expected 1-64 characters without spaces"),
        (TRUNK + "expires = 5\n", "trunks[0].expires: expected an integer 60-86400, got 5"),
        (TRUNK + 'regsiter = true\n', "trunks[0].regsiter: unknown key"),
        # security
        ("[security]\nallow_international = \"no\"\n", "security.allow_international: expected true or false"),
        ("[security]\nallow_intl = false\n", "security.allow_intl: unknown key"),
    ],
)
def test_bad_provisioning_file(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_provisioning(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_provisioning(tmp_path / "nope.toml")


def test_toml_error_reports_line(tmp_path):
    with pytest.raises(ConfigError, match="line 5, column 8"):
        load_provisioning(_write(tmp_path, EXT + "name = = 1\n"))


def test_inbound_accepts_targets(tmp_path):
    prov = load_provisioning(_write(tmp_path, TRUNK.replace('"201"', '"ivr:main"') + '[[ivr]]\nname = "main"\n'))
    assert prov.trunks[0].inbound == "ivr:main"
    prov = load_provisioning(_write(tmp_path, TRUNK.replace('"201"', '"queue:sales"')
                                    + '[[queue]]\nname = "sales"\n'))
    assert prov.trunks[0].inbound == "queue:sales"


@pytest.mark.parametrize(
    ("inbound", "message"),
    [
        ("ivr:main", 'trunks[0].inbound: no [[ivr]] named "main"'),
        ("voicemail:201", 'trunks[0].inbound: unknown target kind "voicemail"'),
        ("extension:2", "trunks[0].inbound: extension target must be 2-8 digits"),
    ],
)
def test_inbound_target_must_exist(tmp_path, inbound, message):
    with pytest.raises(ConfigError) as info:
        load_provisioning(_write(tmp_path, TRUNK.replace('"201"', f'"{inbound}"')))
    assert message in str(info.value)


def test_apply_twice_is_unchanged(tmp_path, db):
    prov = load_provisioning(_write(tmp_path, EXAMPLE))
    first = apply_provisioning(db, prov, "switchboard")
    assert first == {
        "extensions": {"added": 2, "updated": 0, "removed": 0, "unchanged": 0},
        "trunks": {"added": 1, "updated": 0, "removed": 0, "unchanged": 0},
        "ivr": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "hours": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "queues": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
    }
    second = apply_provisioning(db, load_provisioning(tmp_path / "provision.toml"), "switchboard")
    assert second == {
        "extensions": {"added": 0, "updated": 0, "removed": 0, "unchanged": 2},
        "trunks": {"added": 0, "updated": 0, "removed": 0, "unchanged": 1},
        "ivr": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "hours": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "queues": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
    }


def test_apply_stores_everything(tmp_path, db):
    apply_provisioning(db, load_provisioning(_write(tmp_path, EXAMPLE)), "office")
    assert directory.get_ha1(db, "201", "MD5") == hashlib.md5(b"201:office:s3cret-201").hexdigest()
    bob = directory.get_extension(db, "202")
    assert bob["allow_international"] is True and bob["source"] == "provision" and bob["realm"] == "office"
    trunk = directory.get_trunk(db, "itsp", include_secret=True)
    assert trunk["secret"] == "trunk-secret"  # plain: the box answers the ITSP's challenge with it
    assert (trunk["port"], trunk["register"], trunk["inbound"], trunk["outbound_prefix"]) == (5070, True, "201", "0")
    assert directory.get_setting(db, provision.ALLOW_INTERNATIONAL) is False


def test_apply_detects_changes_and_removals(tmp_path, db):
    directory.upsert_extension(db, "299", "Front desk", "web-made-secret", "switchboard", source="web")
    directory.upsert_trunk(db, name="manual", host="sip.example", inbound="299", source="web")
    apply_provisioning(db, load_provisioning(_write(tmp_path, EXAMPLE)), "switchboard")

    edited = (
        EXAMPLE.replace('name = "Ann"', 'name = "Ann Smith"')
        .replace('number = "202"\nname = "Bob"\nsecret = "b0b-likes-tea"\nallow_international = true\n', 'number = "203"\nname = "Cy"\nsecret = "cy-secret-9"\n')
        .replace("port = 5070", "port = 5080")
        .replace("allow_international = false", "allow_international = true")
    )
    summary = apply_provisioning(db, load_provisioning(_write(tmp_path, edited)), "switchboard")
    assert summary == {
        "extensions": {"added": 1, "updated": 1, "removed": 1, "unchanged": 0},
        "trunks": {"added": 0, "updated": 1, "removed": 0, "unchanged": 0},
        "ivr": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "hours": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
        "queues": {"added": 0, "updated": 0, "removed": 0, "unchanged": 0},
    }
    assert [e["number"] for e in directory.list_extensions(db)] == ["201", "203", "299"]
    assert directory.get_extension(db, "201")["name"] == "Ann Smith"
    assert directory.get_extension(db, "299")["source"] == "web"  # not the file's to remove
    assert {t["name"] for t in directory.list_trunks(db)} == {"itsp", "manual"}
    assert directory.get_trunk(db, "itsp")["port"] == 5080
    assert directory.get_setting(db, provision.ALLOW_INTERNATIONAL) is True

    summary = apply_provisioning(db, Provisioning(), "switchboard")
    assert summary["extensions"]["removed"] == 2 and summary["trunks"]["removed"] == 1
    assert [e["number"] for e in directory.list_extensions(db)] == ["299"]
    assert [t["name"] for t in directory.list_trunks(db)] == ["manual"]


def test_realm_change_rehashes(tmp_path, db):
    prov = load_provisioning(_write(tmp_path, EXAMPLE))
    apply_provisioning(db, prov, "old")
    summary = apply_provisioning(db, prov, "new")
    assert summary["extensions"]["updated"] == 2
    assert directory.get_ha1(db, "201", "SHA-256") == hashlib.sha256(b"201:new:s3cret-201").hexdigest()


def test_file_takes_over_a_web_extension(tmp_path, db):
    directory.upsert_extension(db, "201", "Ann", "s3cret-201", "switchboard", source="web")
    summary = apply_provisioning(db, load_provisioning(_write(tmp_path, EXAMPLE)), "switchboard")
    assert summary["extensions"]["updated"] == 1
    assert directory.get_extension(db, "201")["source"] == "provision"


def test_apply_is_all_or_nothing(tmp_path, db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(provision, "upsert_trunk", broken)
    with pytest.raises(RuntimeError):
        apply_provisioning(db, load_provisioning(_write(tmp_path, EXAMPLE)), "switchboard")
    assert directory.list_extensions(db) == []
    assert directory.get_setting(db, provision.ALLOW_INTERNATIONAL) is None


# --- IVR menus, business hours and prompts ---

IVR_FILE = EXAMPLE + """
[[queue]]
name = "support"
[[hours]]
name = "office"
timezone = "Europe/Paris"
mon = "09:00-17:00"

[[hours]]
name = "weekend"
timezone = "Europe/Paris"
sat = "10:00-12:00"

[[ivr]]
name = "main"
number = "500"
hours = "office"
night = "ivr:closed"
[ivr.options]
"1" = "201"
"2" = { to = "queue:support", label = "support" }

[[ivr]]
name = "closed"
number = "501"
menu = "closed"

[prompts]
voice = "en-gb"
greeting = "Welcome to Acme."
"""


def test_apply_stores_menus_hours_and_prompts(tmp_path, db):
    prov = load_provisioning(_write(tmp_path, IVR_FILE))
    summary = apply_provisioning(db, prov, "switchboard")
    assert summary["ivr"] == {"added": 2, "updated": 0, "removed": 0, "unchanged": 0}
    assert summary["hours"] == {"added": 2, "updated": 0, "removed": 0, "unchanged": 0}
    assert ivr.get_menu(db, "main") == prov.ivrs[0]
    assert ivr.menu_by_number(db, "501").name == "closed"
    assert ivr.get_hours(db, "office") == prov.hours[0]
    assert directory.get_setting(db, provision.PROMPT_VOICE) == "en-gb"
    assert directory.get_setting(db, provision.PROMPT_TEXTS) == {"greeting": "Welcome to Acme."}
    assert db.execute("SELECT DISTINCT source FROM ivr_menus").fetchall() == [("provision",)]

    again = apply_provisioning(db, load_provisioning(tmp_path / "provision.toml"), "switchboard")
    assert again["ivr"] == {"added": 0, "updated": 0, "removed": 0, "unchanged": 2}
    assert again["hours"] == {"added": 0, "updated": 0, "removed": 0, "unchanged": 2}


def test_apply_updates_and_removes_menus_and_hours(tmp_path, db):
    ivr.save_menu(db, IvrMenu("web-made", number="599"), "web")
    ivr.save_hours(db, BusinessHours("web-hours", "UTC", {}), "web")
    apply_provisioning(db, load_provisioning(_write(tmp_path, IVR_FILE)), "switchboard")

    edited = (
        IVR_FILE.replace('mon = "09:00-17:00"', 'mon = "08:00-17:00"')
        .replace('[[hours]]\nname = "weekend"\ntimezone = "Europe/Paris"\nsat = "10:00-12:00"\n', "")
        .replace('"2" = { to = "queue:support", label = "support" }', '"2" = "queue:support"')
        .replace('[[ivr]]\nname = "closed"\nnumber = "501"\nmenu = "closed"\n',
                 '[[ivr]]\nname = "shut"\nnumber = "501"\nmenu = "closed"\n')
        .replace('night = "ivr:closed"', 'night = "ivr:shut"')
        .replace('voice = "en-gb"\n', "")
    )
    summary = apply_provisioning(db, load_provisioning(_write(tmp_path, edited)), "switchboard")
    assert summary["ivr"] == {"added": 1, "updated": 1, "removed": 1, "unchanged": 0}
    assert summary["hours"] == {"added": 0, "updated": 1, "removed": 1, "unchanged": 0}
    assert [m.name for m in ivr.list_menus(db)] == ["main", "shut", "web-made"]
    assert ivr.menu_by_number(db, "501").name == "shut"  # the renamed menu took its number over
    assert ivr.get_menu(db, "main").options["2"] == Action("queue", "support")
    assert ivr.get_hours(db, "office").week[0][0][0].hour == 8
    assert ivr.get_hours(db, "weekend") is None
    assert ivr.get_hours(db, "web-hours") is not None  # not the file's to remove
    assert directory.get_setting(db, provision.PROMPT_VOICE) is None

    summary = apply_provisioning(db, Provisioning(), "switchboard")
    assert summary["ivr"]["removed"] == 2 and summary["hours"]["removed"] == 1
    assert [m.name for m in ivr.list_menus(db)] == ["web-made"]
    assert [h.name for h in ivr.list_hours(db)] == ["web-hours"]
    assert directory.get_setting(db, provision.PROMPT_TEXTS) == {}


def test_two_menus_can_swap_numbers(tmp_path, db):
    apply_provisioning(db, load_provisioning(_write(tmp_path, IVR_FILE)), "switchboard")
    swapped = IVR_FILE.replace('number = "500"', 'number = "X"').replace('number = "501"', 'number = "500"')
    summary = apply_provisioning(db, load_provisioning(_write(tmp_path, swapped.replace('"X"', '"501"'))), "switchboard")
    assert summary["ivr"] == {"added": 0, "updated": 2, "removed": 0, "unchanged": 0}
    assert ivr.menu_by_number(db, "500").name == "closed"
    assert ivr.menu_by_number(db, "501").name == "main"


def test_file_menu_number_held_by_a_web_menu_fails_whole(tmp_path, db):
    ivr.save_menu(db, IvrMenu("web-made", number="500"), "web")
    with pytest.raises(ValueError, match='ivr number 500 is already used by menu "web-made"'):
        apply_provisioning(db, load_provisioning(_write(tmp_path, IVR_FILE)), "switchboard")
    assert directory.list_extensions(db) == []
    assert ivr.get_hours(db, "office") is None


def test_file_takes_over_a_web_menu_of_the_same_name(tmp_path, db):
    ivr.save_menu(db, IvrMenu("main"), "web")
    summary = apply_provisioning(db, load_provisioning(_write(tmp_path, IVR_FILE)), "switchboard")
    assert summary["ivr"] == {"added": 1, "updated": 1, "removed": 0, "unchanged": 0}
    assert db.execute("SELECT source FROM ivr_menus WHERE name = 'main'").fetchone() == ("provision",)
