"""The systemd unit is valid and keeps the service locked down."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "switchboard.service"


IMAGE_DROP_IN = UNIT.parent / "image.conf"


def _installed_copy(tmp_path: Path, with_image_drop_in: bool = False) -> Path:
    """The unit with ExecStart pointing at this checkout's installed command (and the image's drop-in merged)."""
    command = shutil.which("switchboard") or str(Path(sys.executable).parent / "switchboard")
    text = UNIT.read_text().replace("/opt/switchboard/.venv/bin/switchboard", command)
    if with_image_drop_in:
        # systemd-analyze security --offline reads one file: the drop-in's [Service] lines go in,
        # replacing the keys they set (ExecStart= and the capability lines).
        extra = IMAGE_DROP_IN.read_text().split("[Service]\n", 1)[1]
        extra_lines = [line for line in extra.splitlines() if line and not line.startswith(("#", "ExecStart"))]
        keys = {line.split("=", 1)[0] for line in extra_lines}
        kept = [line for line in text.splitlines() if line.split("=", 1)[0] not in keys]
        text = "\n".join(kept).replace("[Install]", "\n".join(extra_lines) + "\n\n[Install]")
    copy = tmp_path / "switchboard.service"
    copy.write_text(text)
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", str(_installed_copy(tmp_path))],
                            capture_output=True, text=True)
    # verify exits 0 on unknown keys and only warns, so its stderr must be empty.
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("image", [False, True], ids=["unit", "unit-with-image-drop-in"])
def test_unit_exposure_is_2_or_below(tmp_path, image):
    """Issue 16: systemd-analyze security at 2.0 or below, as the image installs it too (port 80's capability)."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(_installed_copy(tmp_path, image))],
                            capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout).group(1))
    assert score <= 2.0, result.stdout[-2000:]


def test_unit_restarts_and_keeps_state():
    text = UNIT.read_text()
    assert "Restart=always" in text
    assert "StateDirectory=switchboard" in text
    assert re.search(r"^ExecStart=/opt/switchboard/.venv/bin/switchboard-launch run", text, re.M)
    # READY once listening, and a watchdog the event loop itself feeds.
    assert "Type=notify" in text and re.search(r"^WatchdogSec=\d+", text, re.M)
    assert "StartLimitIntervalSec=0" in text  # an appliance never gives up restarting
