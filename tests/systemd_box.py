"""Real systemd for the watchdog and update tests: systemd-nspawn boots a throw-away container.

The container's root is a tmpfs with the host's /usr (--volatile=yes), so it has its own /etc,
/var and /tmp and nothing it does touches the host; it shares the host's network, so the box in
it listens on 127.0.0.1 ports the test picks. A driver unit inside runs tests/systemd_driver.py,
which writes what it saw to /out/result.json and powers the container off.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Outside the checkout: the unit's PrivateTmp= and ProtectHome= hide /tmp and /home from the box, and
# a checkout may live there (CI's may be anywhere); /var/cache is bound into the container as it is.
CACHE = Path("/var/cache/switchboard-test")
DEBIAN_PYTHON = Path("/usr/bin/python3")


def available() -> str | None:
    """Why the container cannot run here, or None when it can."""
    for tool in ("systemd-nspawn", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not DEBIAN_PYTHON.exists():
        return "Debian's python3 is not installed"
    return None


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    """Run a command, failing the test with its output if it fails."""
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args[:4]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def project_wheel(version: str, into: Path, patch: tuple[str, str, str] | None = None) -> Path:
    """A wheel of this checkout as `version`; patch = (file, old, new) changes one file first."""
    source = into / f"src-{version}"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", ".cache", "tests", "bench",
                                                                "image-build", "*.egg-info", "__pycache__"))
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1))
    if patch:
        path = source / patch[0]
        text = path.read_text()
        assert patch[1] in text
        path.write_text(text.replace(patch[1], patch[2], 1))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(into),
         str(source)])
    shutil.rmtree(source)
    (wheel,) = into.glob(f"switchboard_pbx-{version}-*.whl")
    return wheel


def factory(root: Path) -> Path:
    """/opt/switchboard as the image has it, under `root`: a wheelhouse and .venv (Debian's Python), built once."""
    wheelhouse, env = root / "wheelhouse", root / ".venv"
    marker = root / "ready"
    if marker.exists() and marker.read_text() == source_digest():
        return env
    shutil.rmtree(root, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    project_wheel("0.1.0", wheelhouse)
    requirements = [line for line in _dependencies()]
    run([sys.executable, "-m", "pip", "download", "--quiet", "-d", str(wheelhouse), *requirements])
    run([str(DEBIAN_PYTHON), "-m", "venv", str(env)])
    run([str(env / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
         "switchboard-pbx==0.1.0"])
    marker.write_text(source_digest())
    return env


def source_digest() -> str:
    """A digest of the project's code: the cached factory environment is rebuilt when it changes."""
    digest = hashlib.sha256()
    for path in sorted(p for part in ("appliance", "hw", "web") for p in (REPO / part).rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    digest.update((REPO / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def _dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def boot(workdir: Path, units: dict[str, str], binds: list[Path], timeout: float = 240.0) -> dict:
    """Boot a container with these units in /etc/systemd/system (driver.service starts it all); its result.json."""
    etc = workdir / "units"
    out = workdir / "out"
    etc.mkdir(parents=True, exist_ok=True)
    out.mkdir(exist_ok=True)
    args = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", f"--machine=sbtest{os.getpid()}",
            "--directory=/", "--volatile=yes", f"--bind={out}:/out"]
    for name, text in units.items():
        (etc / name).write_text(text)
        args.append(f"--bind-ro={etc / name}:/etc/systemd/system/{name}")
    args += [f"--bind-ro={path}" for path in [*binds, CACHE]]
    args += ["--boot", "--", "systemd.firstboot=off", "systemd.unit=driver.service"]
    # nspawn keeps per-machine state in /run/systemd/nspawn, which it will only clear on a tmpfs:
    # give it one in a mount namespace of its own.
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && exec "$@"', "sh", *args]
    log = workdir / "console.log"
    with open(log, "w") as console:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                              timeout=timeout)
    result = out / "result.json"
    assert result.exists(), f"the container wrote no result (nspawn exited {done.returncode}):\n" + log.read_text()[-4000:]
    return json.loads(result.read_text())
