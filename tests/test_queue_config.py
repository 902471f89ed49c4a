"""QueueConfig (validation, JSON round trip) and [[queue]] tables in the provisioning file."""
from __future__ import annotations

import json

import pytest

from appliance.calls.ivr_config import Action
from appliance.calls.queue_config import STRATEGIES, Member, QueueConfig
from appliance.config import ConfigError, load_provisioning

EXTS = "".join(
    f'[[extensions]]\nnumber = "{n}"\nname = "Agent {n}"\nsecret = "s3cret-{n}-x"\n' for n in ("201", "202", "203")
)
HOURS = '[[hours]]\nname = "office"\ntimezone = "Europe/Paris"\nmon = "09:00-17:00"\n'
SALES = '[[queue]]\nname = "sales"\nmembers = ["201"]\n'

FULL = EXTS + HOURS + """
[[ivr]]
name = "main"
number = "500"
[ivr.options]
"1" = "queue:sales"

[[trunks]]
name = "itsp"
host = "127.0.0.1"
inbound = "queue:support"

[[queue]]
name = "sales"
number = "600"
strategy = "tiered"
members = ["201", { extension = "202", tier = 2 }]
ring_timeout = 20
wrapup = 0
max_wait = 900
max_length = 5
hold_music = "hold_music"
announce_every = 0
announce_position = false
announce_wait = true
callback_key = "#"
callback_attempts = 5
callback_retry = 120
service_level = 30
max_misses = 0
vip_priority = true
vip_tier = 2
hours = "office"
closed = "ivr:main"
empty = "queue:support"
timeout = "extension:203"
full = "hangup"

[[queue]]
name = "support"
members = [{ extension = "203" }]
"""


def _load(tmp_path, body: str):
    path = tmp_path / "provision.toml"
    path.write_text(body)
    return load_provisioning(path)


def _error(tmp_path, body: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    return str(info.value)


# --- the dataclass ---


def test_defaults_match_the_design():
    q = QueueConfig("sales")
    assert (q.number, q.strategy, q.members, q.ring_timeout, q.wrapup, q.max_wait, q.max_length) == (
        None, "longest-idle", (), 15.0, 10.0, 600.0, 20)
    assert (q.hold_music, q.announce_every, q.announce_position, q.announce_wait) == ("hold_music", 30.0, True, True)
    assert (q.callback_key, q.callback_attempts, q.callback_retry, q.service_level, q.max_misses) == (
        "1", 3, 300.0, 20.0, 3)
    assert (q.vip_priority, q.vip_tier, q.hours) == (False, 1, None)
    assert (q.closed, q.empty, q.timeout, q.full) == (
        Action("hangup"), Action("callback"), Action("callback"), Action("callback"))
    assert STRATEGIES == ("ring-all", "longest-idle", "round-robin", "fewest-calls", "tiered")


def test_round_trip_through_json_is_exact():
    q = QueueConfig("sales", number="600", strategy="tiered", members=(Member("201"), Member("202", 2)),
                    ring_timeout=20, max_length=5, announce_every=0, callback_key="", vip_priority=True,
                    vip_tier=2, hours="office", closed=Action("ivr", "main"), empty=Action("queue", "support"),
                    timeout=Action("extension", "203"), full=Action("hangup"))
    data = json.loads(json.dumps(q.to_dict()))
    assert data["members"] == [{"extension": "201", "tier": 1}, {"extension": "202", "tier": 2}]
    assert data["closed"] == {"kind": "ivr", "target": "main", "label": ""}
    back = QueueConfig.from_dict(data)
    assert back == q and back.to_dict() == q.to_dict()
    assert isinstance(back.ring_timeout, float) and back.ring_timeout == 20.0
    assert QueueConfig.from_dict({"name": "x"}) == QueueConfig("x")


def test_members_lookup_and_list_coerced_to_tuple():
    q = QueueConfig("sales", members=[Member("201"), Member("202", 3)])
    assert q.members == (Member("201"), Member("202", 3))
    assert q.extensions == ("201", "202")
    assert q.member("202") == Member("202", 3)
    assert q.member("999") is None
    hash(q)  # usable as a dict key or in sets


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "has space"}, "queue name must be"),
        ({"number": "6"}, "queue number must be 2-8 digits"),
        ({"strategy": "random"}, "unknown strategy 'random'"),
        ({"members": (Member("201"), Member("201", 2))}, "member 201 is listed twice"),
        ({"ring_timeout": 0.5}, "ring_timeout must be 1-300"),
        ({"ring_timeout": 301}, "ring_timeout must be 1-300"),
        ({"wrapup": -1}, "wrapup must be 0-3600"),
        ({"max_wait": 0}, "max_wait must be 10-86400"),
        ({"max_wait": 86401}, "max_wait must be 10-86400"),
        ({"max_length": 0}, "max_length must be 1-1000"),
        ({"max_length": 20.0}, "max_length must be an integer"),
        ({"announce_every": 5}, "announce_every must be 0 or 10-3600"),
        ({"callback_key": "A"}, "callback_key must be one of"),
        ({"callback_key": "12"}, "callback_key must be one of"),
        ({"callback_attempts": 0}, "callback_attempts must be 1-10"),
        ({"callback_retry": 4}, "callback_retry must be 5-86400"),
        ({"service_level": 0}, "service_level must be 1-3600"),
        ({"max_misses": 101}, "max_misses must be 0-100"),
        ({"vip_tier": 10}, "vip_tier must be 1-9"),
        ({"vip_priority": 1}, "vip_priority must be true or false"),
        ({"ring_timeout": True}, "ring_timeout must be a number"),
        ({"closed": Action("repeat")}, "closed must be hangup, callback"),
        ({"full": Action("queue", "sales")}, 'full: "queue:sales" is this queue itself'),
        ({"hours": "no hours"}, "hours must be"),
    ],
)
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        QueueConfig(**{"name": "sales", **changes})


@pytest.mark.parametrize(("tier", "extension"), [(0, "201"), (10, "201"), (1, "2"), (True, "201")])
def test_member_validation(tier, extension):
    with pytest.raises(ValueError):
        Member(extension, tier)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown queue field"):
        QueueConfig.from_dict({"name": "x", "colour": "red"})
    with pytest.raises(ValueError, match="unknown member field"):
        QueueConfig.from_dict({"name": "x", "members": [{"extension": "201", "x": 1}]})


# --- the provisioning file ---


def test_full_queue_table_parses(tmp_path):
    prov = _load(tmp_path, FULL)
    sales, support = prov.queues
    assert sales == QueueConfig(
        "sales", number="600", strategy="tiered", members=(Member("201"), Member("202", 2)), ring_timeout=20,
        wrapup=0, max_wait=900, max_length=5, announce_every=0, announce_position=False, callback_key="#",
        callback_attempts=5, callback_retry=120, service_level=30, max_misses=0, vip_priority=True, vip_tier=2,
        hours="office", closed=Action("ivr", "main"), empty=Action("queue", "support"),
        timeout=Action("extension", "203"), full=Action("hangup"))
    assert support == QueueConfig("support", members=(Member("203"),))
    assert prov.trunks[0].inbound == "queue:support"
    assert prov.ivrs[0].options["1"] == Action("queue", "sales")


def test_no_queues_is_an_empty_list(tmp_path):
    assert _load(tmp_path, EXTS).queues == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (EXTS + '[[queue]]\nname = "sales"\nmembers = ["201", { extension = "209" }]\n',
         'queue[0].members[1].extension: no extension "209" in [[extensions]]'),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = ["209"]\n',
         'queue[0].members[0]: no extension "209" in [[extensions]]'),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = ["201", { extension = "202", tier = 0 }]\n',
         "queue[0].members[1].tier: expected an integer 1-9"),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = ["201", { extension = "202", level = 2 }]\n',
         "queue[0].members[1].level: unknown key"),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = ["201", "201"]\n',
         'queue[0].members[1]: duplicate member "201"'),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = [201]\n', "queue[0].members[0]: expected an extension"),
        (EXTS + '[[queue]]\nname = "sales"\nmembers = "201"\n', "queue[0].members: expected a list"),
        (EXTS + '[[queue]]\nnumber = "600"\n', "queue[0].name: missing required key"),
        (EXTS + '[[queue]]\nname = "sales"\nstrategy = "random"\n', "queue[0].strategy: expected one of ring-all"),
        (EXTS + '[[queue]]\nname = "sales"\nmax_wait = 0\n', "queue[0].max_wait: expected a number of seconds from 10"),
        (EXTS + '[[queue]]\nname = "sales"\nmax_length = 0\n', "queue[0].max_length: expected an integer 1-1000"),
        (EXTS + '[[queue]]\nname = "sales"\nannounce_every = 5\n', "queue[0].announce_every: expected 0 (never)"),
        (EXTS + '[[queue]]\nname = "sales"\ncallback_key = "A"\n', "queue[0].callback_key: expected one of"),
        (EXTS + '[[queue]]\nname = "sales"\nhold_music = "Jazz Music"\n', "queue[0].hold_music: expected a prompt name"),
        (EXTS + '[[queue]]\nname = "sales"\ncolour = "red"\n', "queue[0].colour: unknown key"),
        (EXTS + '[[queue]]\nname = "sales"\nhours = "office"\n', 'queue[0].hours: no [[hours]] named "office"'),
        (EXTS + '[[queue]]\nname = "sales"\nclosed = "repeat"\n', "queue[0].closed: expected hangup, callback"),
        (EXTS + '[[queue]]\nname = "sales"\nfull = "ivr:main"\n', 'queue[0].full: no [[ivr]] named "main"'),
        (EXTS + '[[queue]]\nname = "sales"\nempty = "queue:other"\n', 'queue[0].empty: no [[queue]] named "other"'),
        (EXTS + '[[queue]]\nname = "sales"\ntimeout = "209"\n', 'queue[0].timeout: no extension "209"'),
        (EXTS + '[[queue]]\nname = "sales"\ntimeout = "queue:sales"\n',
         'queue[0].timeout: "queue:sales" is this queue'),
        (EXTS + SALES + SALES, 'queue[1].name: duplicate queue "sales" (also queue[0])'),
        (EXTS + '[[queue]]\nname = "sales"\nnumber = "201"\n', 'queue[0].number: "201" is already an extension number'),
        (EXTS + '[[ivr]]\nname = "main"\nnumber = "600"\n[[queue]]\nname = "sales"\nnumber = "600"\n',
         'queue[0].number: "600" is already used by ivr[0]'),
        (EXTS + '[[queue]]\nname = "a"\nnumber = "600"\n[[queue]]\nname = "b"\nnumber = "600"\n',
         'queue[1].number: "600" is already used by queue[0]'),
        (EXTS + '[[queue]]\nname = "sales"\nnumber = "6"\n', "queue[0].number: expected a quoted string of 2-8 digits"),
        ("queue = 1\n" + EXTS, "queue: expected an array of tables"),
    ],
)
def test_bad_queue_tables(tmp_path, body, message):
    assert message in _error(tmp_path, body)


def test_ivr_and_trunk_queue_targets_must_exist(tmp_path):
    menu = '[[ivr]]\nname = "main"\n[ivr.options]\n"1" = "queue:sales"\n'
    assert 'ivr[0].options.1: no [[queue]] named "sales"' in _error(tmp_path, EXTS + menu)
    night = HOURS + '[[ivr]]\nname = "main"\nhours = "office"\nnight = "queue:sales"\n'
    assert 'ivr[0].night: no [[queue]] named "sales"' in _error(tmp_path, EXTS + night)
    trunk = '[[trunks]]\nname = "itsp"\nhost = "127.0.0.1"\ninbound = "queue:sales"\n'
    assert 'trunks[0].inbound: no [[queue]] named "sales"' in _error(tmp_path, EXTS + trunk)
    # and with the queue defined, all of them are fine
    prov = _load(tmp_path, EXTS + SALES + menu + trunk)
    assert prov.trunks[0].inbound == "queue:sales" and prov.queues[0].name == "sales"
