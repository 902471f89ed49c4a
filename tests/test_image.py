"""The SD-card image: image-build/build --small builds, and image-build/check passes it (issue 16's CI part).

The full image (Python, espeak-ng, avahi, SSH; about 17 minutes under qemu-user) and its boot test
under qemu-system-aarch64 run by hand: README "The SD-card image", figures in docs/IMAGE.md.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD, CHECK = REPO / "image-build" / "build", REPO / "image-build" / "check"
_loader = importlib.machinery.SourceFileLoader("image_check", str(CHECK))
_spec = importlib.util.spec_from_loader("image_check", _loader)
check = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_loader.exec_module(check)


@pytest.fixture(scope="module")
def small_image(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The small image, built once for this module (scripts/test installs its tools and runs as root)."""
    assert os.geteuid() == 0 or shutil.which("sudo"), "the image build needs root (or sudo) for its Debian packages"
    out = tmp_path_factory.mktemp("image")
    done = subprocess.run([str(BUILD), "--small", "--out", str(out)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    (image,) = out.glob("switchboard-*-arm64-small.img")
    return image


def test_the_small_image_passes_every_static_check(small_image: Path) -> None:
    done = subprocess.run([str(CHECK), "--small", str(small_image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    assert done.stdout.count("\nok   ") + done.stdout.startswith("ok   ") == 10, done.stdout


def _root_fs(tmp_path: Path, shadow: str, machine_id: str = "") -> Path:
    tree = tmp_path / "tree"
    (tree / "etc" / "ssh").mkdir(parents=True)
    (tree / "etc" / "shadow").write_text(shadow)
    (tree / "etc" / "machine-id").write_text(machine_id)
    image = tmp_path / "root.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "sb-root", "-d", str(tree), str(image), "8M"], check=True)
    return image


def test_the_checks_can_fail_a_password_hash_or_a_baked_in_machine_id(tmp_path: Path) -> None:
    locked = "root:!*:20000:0:99999:7:::\nsystemd-network:!*:20000::::::\n"
    assert "none with a password" in check._no_passwords(_root_fs(tmp_path / "a", locked))
    hashed = "root:$y$j9T$abc$def:20000:0:99999:7:::\n"
    with pytest.raises(AssertionError, match="root"):
        check._no_passwords(_root_fs(tmp_path / "b", hashed))
    locked_hash = "root:!$6$salt$hash:20000:0:99999:7:::\n"
    with pytest.raises(AssertionError, match="root"):
        check._no_passwords(_root_fs(tmp_path / "c", locked_hash))
    with pytest.raises(AssertionError, match="machine-id"):
        check._nothing_unique(_root_fs(tmp_path / "d", locked, machine_id="0123456789abcdef0123456789abcdef\n"))
