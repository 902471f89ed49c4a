"""`switchboard calls`: the office's local time, UTC in JSON, and filters (issue 14, items 12 and 17)."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import PROVISION

from appliance.cli import main
from appliance.local_time import local_time, office_zone
from appliance.store import calls as store_calls
from appliance.store.db import open_database


def office(tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "switchboard.toml").write_text('[box]\ntimezone = "Europe/Paris"\n')
    prov = tmp_path / "office.toml"
    prov.write_text(PROVISION)
    assert main(["provision", str(prov), "--data-dir", str(data)]) == 0
    db = open_database(data / "switchboard.db")
    for when, direction, caller, callee in (("2026-01-15T12:00:00Z", "internal", "201", "202"),
                                            ("2026-01-16T08:30:00Z", "inbound", "0612345678", "600"),
                                            ("2026-01-17T09:00:00Z", "internal", "203", "201")):
        call = store_calls.start_call(db, sip_call_id=when, direction=direction, line="internal",
                                      from_number=caller, from_name="", to_number=callee, started_at=when)
        store_calls.finish_call(db, call, "failed", at=when)
    return ["--data-dir", str(data)]


def test_people_read_local_time_and_scripts_get_utc(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = office(tmp_path)
    capsys.readouterr()
    assert main(["calls", *data]) == 0
    out = capsys.readouterr().out
    assert "START (Europe/Paris)" in out and "2026-01-15 13:00:00" in out, out
    assert main(["calls", "--json", *data]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["started_at"] == "2026-01-15T12:00:00.000Z"


def test_calls_can_be_filtered(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = office(tmp_path)

    def listed(*flags: str) -> list[tuple[str, str]]:
        capsys.readouterr()
        assert main(["calls", "--json", *flags, *data]) == 0
        return [(r["from_number"], r["to_number"]) for r in json.loads(capsys.readouterr().out)]

    assert listed("--extension", "201") == [("203", "201"), ("201", "202")]
    assert listed("--direction", "inbound") == [("0612345678", "600")]
    assert listed("--since", "2026-01-16") == [("203", "201"), ("0612345678", "600")]
    assert listed("--queue", "sales") == []


def test_local_time_uses_the_zone_given_or_the_systems() -> None:
    assert local_time("2026-07-01T12:00:00.000Z", office_zone("Europe/Paris")) == "2026-07-01 14:00:00"
    assert local_time(None, office_zone()) == ""
