"""The packages import each other only downwards (docs/ARCHITECTURE.md), read from the source by scripts/import_graph.py."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(import_graph)  # type: ignore[union-attr]

# What each package may import besides itself. The composition root ("appliance": box, api, config,
# the CLI) may import anything, and nothing below may import it.
ALLOWED = {
    "base": set(),
    "media": {"base"},
    "store": {"base"},
    "sip": {"base"},
    "crm": {"store", "base"},
    "calls": {"sip", "media", "store", "crm", "base"},
    "lines": {"sip", "media", "store", "hw", "base"},
    "web": {"store", "crm", "base"},
    "hw": set(),
    "system": set(),  # the box on its own machine: systemd, the clock, releases, backups (stdlib only)
}


def test_each_package_imports_only_what_it_may() -> None:
    graph = import_graph.edges()
    wrong = {f"{a} -> {b}: " + ", ".join(f"{s} imports {t}" for s, t in pairs[:3])
             for (a, b), pairs in graph.items() if a in ALLOWED and b not in ALLOWED[a]}
    assert not wrong, "\n".join(sorted(wrong))


def test_sip_is_a_protocol_library() -> None:
    """Issue 15: appliance/sip/ knows nothing of calls, customers, the store or media policy."""
    graph = import_graph.edges()
    assert not [b for (a, b) in graph if a == "sip" and b != "base"]


def test_no_cycle_between_packages_and_the_script_says_so() -> None:
    assert import_graph.cycles(import_graph.edges()) == []
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "no cycle between packages" in result.stdout, result.stdout


def test_the_checker_sees_a_cycle_and_a_forbidden_import(tmp_path: Path) -> None:
    """The rules above can fail: a made-up graph with sip importing calls is caught both ways."""
    graph = {("sip", "calls"): [("appliance.sip.x", "appliance.calls.y")],
             ("calls", "sip"): [("appliance.calls.y", "appliance.sip.x")]}
    assert import_graph.cycles(graph) == [["calls", "sip"]]
    assert "calls" not in ALLOWED["sip"]
