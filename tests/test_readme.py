"""The README's TOML blocks and commands work as written: a new office copies them."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from appliance.cli import _parser, main
from appliance.config import load_provisioning
from appliance.store.db import open_database
from appliance.provisioning import apply_provisioning

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", TEXT, re.S)
SH_LINES = [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", TEXT, re.S)
            for line in block.splitlines() if line.strip().startswith("switchboard ")]


def test_every_toml_block_parses_and_together_they_provision_an_office(tmp_path: Path) -> None:
    assert len(TOML_BLOCKS) >= 5
    for block in TOML_BLOCKS:
        tomllib.loads(block)
    office = tmp_path / "office.toml"
    office.write_text("\n".join(TOML_BLOCKS))
    provisioning = load_provisioning(office)
    summary = apply_provisioning(open_database(tmp_path / "switchboard.db"), provisioning, "switchboard")
    assert summary["extensions"]["added"] == 2 and summary["queues"]["added"] == 1


@pytest.mark.parametrize("line", SH_LINES)
def test_every_switchboard_command_is_one_the_cli_takes(line: str) -> None:
    words = shlex.split(line.replace("# or:", "#").split("#")[0])
    _parser().parse_args(words[1:])  # argparse exits (SystemExit) on anything it does not take


def test_the_read_commands_run_against_a_provisioned_office(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    office = tmp_path / "office.toml"
    office.write_text("\n".join(TOML_BLOCKS))
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["provision", str(office), *data]) == 0
    for command in (["extensions"], ["trunks", "--status"], ["calls", "--limit", "20"], ["ban", "list"],
                    ["callback", "list"], ["queue", "status", "sales"]):
        assert main([*command, *data]) == 0, command
    assert "(none)" in capsys.readouterr().out
