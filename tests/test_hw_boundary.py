"""hw/ is a hardware layer of its own: it must import without appliance/ at all."""
from __future__ import annotations

import subprocess
import sys


def test_hw_imports_without_appliance() -> None:
    code = ("import sys; sys.modules['appliance'] = None\n"  # any import of appliance now fails
            "import hw.leds, hw.modem.line, hw.sim.simulator, hw.cli_modem\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
