"""The systemd unit is valid and keeps the service locked down."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).parent.parent / "systemd" / "switchboard.service"


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's installed command."""
    command = shutil.which("switchboard") or str(Path(sys.executable).parent / "switchboard")
    text = UNIT.read_text().replace("/opt/switchboard/.venv/bin/switchboard", command)
    copy = tmp_path / "switchboard.service"
    copy.write_text(text)
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", str(_installed_copy(tmp_path))],
                            capture_output=True, text=True)
    # verify exits 0 on unknown keys and only warns, so its stderr must be empty.
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_unit_exposure_is_low(tmp_path):
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(_installed_copy(tmp_path))],
                            capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout).group(1))
    assert score <= 2.5, result.stdout[-2000:]


def test_unit_restarts_and_keeps_state():
    text = UNIT.read_text()
    assert "Restart=always" in text
    assert "StateDirectory=switchboard" in text
    assert re.search(r"^ExecStart=.*switchboard run", text, re.M)
