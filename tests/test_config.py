from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import settings as config_settings
from appliance.config import ConfigError, Settings, default_data_dir, load_settings, weak_secret_reason


def _write_box(tmp_path: Path, body: str) -> None:
    (tmp_path / "switchboard.toml").write_text(body)


def test_defaults_without_a_file(tmp_path):
    settings = load_settings(tmp_path, {})
    assert settings == Settings(data_dir=tmp_path)
    assert settings.db_path == tmp_path / "switchboard.db"
    assert (settings.sip_port, settings.realm, settings.international_prefixes) == (5060, "switchboard", ("00", "+"))


def test_file_then_command_line(tmp_path):
    _write_box(
        tmp_path,
        """
[box]
sip_port = 5070
realm = "office"
ring_timeout = 20
international_prefixes = ["00"]
log_level = "debug"
""",
    )
    settings = load_settings(tmp_path, {"sip_port": 5080, "http_port": None, "advertise": "192.0.2.10"})
    assert settings.sip_port == 5080  # command line wins
    assert settings.http_port == 8080  # None override ignored
    assert settings.realm == "office"
    assert settings.ring_timeout == 20.0 and isinstance(settings.ring_timeout, float)
    assert settings.international_prefixes == ("00",)
    assert settings.log_level == "DEBUG"
    assert settings.advertise == "192.0.2.10"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[box]\nsip_port = "abc"', 'box.sip_port: expected an integer 1-65535, got "abc"'),
        ("[box]\nsip_port = 70000", "box.sip_port: expected an integer 1-65535, got 70000"),
        ("[box]\nsip_port = true", "box.sip_port: expected an integer"),
        ('[box]\nsip_prot = 5060', "box.sip_prot: unknown key"),
        ('[boxx]\nsip_port = 5060', "boxx: unknown key"),
        ("[box]\nrtp_port_min = 10001", "box.rtp_port_min: must be even"),
        ("[box]\nrtp_port_min = 20000\nrtp_port_max = 10000", "box.rtp_port_max: must be greater than rtp_port_min"),
        ("[box]\nsip_port = 12000", "box.sip_port: 12000 lies inside the RTP range"),
        ("[box]\nhttp_port = 5060", "box.http_port: must differ from sip_port"),
        ('[box]\nbind = "everywhere"', "box.bind: expected an IP address"),
        ('[box]\nlog_level = "LOUD"', "box.log_level: expected one of DEBUG"),
        ('[box]\nlog_format = "xml"', "box.log_format: expected one of json, text"),
        ("[box]\nring_timeout = 0", "box.ring_timeout: expected a number greater than 0"),
        ('[box]\nrealm = "a realm"', "box.realm: expected 1-64 letters"),
        ("[box]\nallow_international = 1", "box.allow_international: expected true or false, got 1"),
        ('[box]\ninternational_prefixes = ["00", "x"]', "box.international_prefixes[1]: expected a dial prefix"),
        ('[box]\nnational_prefix = "O"', "box.national_prefix: expected a string of digits"),
        ("[box]\nregister_default_expires = 5000", "box.register_default_expires: need register_min_expires"),
        ("[box]\nsip_port = ", "invalid TOML"),
        ('[box]\nrecord_calls = "some"', "box.record_calls: expected one of none, inbound, all, got \"some\""),
        ("[box]\nrecord_calls = true", "box.record_calls: expected one of none, inbound, all"),
        ('[box]\nringback = "fr"', "box.ringback: expected one of eu, us, uk"),
        ('[box]\ndtmf_inband = "yes"', "box.dtmf_inband: expected one of auto, always, never"),
        ('[box]\nprompt_voice = "en gb"', "box.prompt_voice: expected an espeak-ng voice name"),
        ('[box]\nprompt_voice = "../../etc"', "box.prompt_voice: expected an espeak-ng voice name"),
        ('[box]\nprompt_voice = ""', "box.prompt_voice: expected an espeak-ng voice name"),
    ],
)
def test_bad_settings_file(tmp_path, body, message):
    _write_box(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, {})
    assert str(info.value).startswith(f"{tmp_path / 'switchboard.toml'}: ")
    assert message in str(info.value)


def test_call_handling_settings(tmp_path):
    defaults = load_settings(tmp_path, {})
    assert (defaults.record_calls, defaults.ringback, defaults.dtmf_inband, defaults.prompt_voice) == (
        "none", "eu", "auto", "en")
    _write_box(tmp_path, '[box]\nrecord_calls = "Inbound"\nringback = "UK"\ndtmf_inband = "never"\n'
                         'prompt_voice = "en-gb+f3"\n')
    settings = load_settings(tmp_path, {"ringback": "us"})
    assert (settings.record_calls, settings.ringback, settings.dtmf_inband, settings.prompt_voice) == (
        "inbound", "us", "never", "en-gb+f3")
    with pytest.raises(ConfigError, match="--record-calls: expected one of none, inbound, all"):
        load_settings(tmp_path, {"record_calls": "everything"})


def test_toml_syntax_error_has_line_info(tmp_path):
    _write_box(tmp_path, "[box]\nrealm = \"ok\"\nsip_port = = 5\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_settings(tmp_path, {})


def test_bad_command_line_value_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r'^command line: --sip-port: expected an integer 1-65535, got "x"$'):
        load_settings(tmp_path, {"sip_port": "x"})
    with pytest.raises(ConfigError, match="--colour: unknown setting"):
        load_settings(tmp_path, {"colour": "blue"})


def test_config_error_carries_parts():
    error = ConfigError("provision.toml", "trunks[0].port", 'expected an integer 1-65535, got "abc"')
    assert str(error) == 'provision.toml: trunks[0].port: expected an integer 1-65535, got "abc"'
    assert (error.file, error.key) == ("provision.toml", "trunks[0].port")
    assert isinstance(error, ValueError)


def test_data_dir_from_systemd_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    assert default_data_dir() == tmp_path / "state"


def test_data_dir_as_service_when_writable(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("INVOCATION_ID", "abc")
    monkeypatch.setattr(config_settings, "SYSTEM_DATA_DIR", tmp_path / "switchboard")
    assert default_data_dir() == tmp_path / "switchboard"


def test_data_dir_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("INVOCATION_ID", "abc")
    monkeypatch.setattr(config_settings, "SYSTEM_DATA_DIR", Path("/proc/no-such-dir/switchboard"))
    assert default_data_dir() == tmp_path / ".local" / "share" / "switchboard"
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.setattr(config_settings, "SYSTEM_DATA_DIR", tmp_path / "writable")
    assert default_data_dir() == tmp_path / ".local" / "share" / "switchboard"


@pytest.mark.parametrize(
    "secret",
    ["short", "201", "201201201", "password", "PASSWORD", "12345678", "aaaaaaaa", "abababab", "abcdefgh", "98765432", "ann-ann-"],
)
def test_weak_secrets_are_rejected(secret):
    assert weak_secret_reason(secret, "201", "Ann") is not None


@pytest.mark.parametrize("secret", ["s3cret-201", "correct horse", "Tr0ub4dor&3"])
def test_reasonable_secrets_pass(secret):
    assert weak_secret_reason(secret, "201", "Ann") is None
