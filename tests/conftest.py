"""Shared fixtures: a real box on 127.0.0.1 and a scratch folder for peers."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from browser import browser, new_page  # noqa: F401  (Playwright fixtures for the web tests)
from office_text import extensions
from peers import RunningBox, start_box

PROVISION = extensions({n: f"s3cret-{n}" for n in ("201", "202", "203")}, x203="allow_external = false") + """
[security]
allow_international = false
"""


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh, migrated SQLite store in the test's folder."""
    from appliance.store.db import open_database

    database = open_database(tmp_path / "switchboard.db")
    yield database
    database.close()


@pytest.fixture
def box_factory(tmp_path: Path) -> Iterator[Callable[..., RunningBox]]:
    """Start boxes with a provisioning text and extra CLI flags; all are stopped afterwards."""
    started: list[RunningBox] = []

    def make(provision: str | None = PROVISION, *extra: str, name: str = "box", **kwargs) -> RunningBox:
        box = start_box(tmp_path / name, provision, *extra, **kwargs)
        started.append(box)
        return box

    yield make
    for box in started:
        code = box.stop()
        assert code == 0, f"box exited with {code}:\n{box.log()[-3000:]}"


@pytest.fixture
def box(box_factory: Callable[..., RunningBox]) -> RunningBox:
    """A box with extensions 201-203 and a 5 s ring timeout."""
    return box_factory(PROVISION, "--ring-timeout", "5")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where SIPp writes its logs and injection files."""
    path = tmp_path / "peers"
    path.mkdir()
    return path


@pytest.fixture
def office_factory(box_factory, workdir: Path):  # type: ignore[no-untyped-def]
    """Boxes with a sales queue (tests/queue_office.py); their SIPp phones and customers are killed at the end."""
    from queue_office import Office

    made: list = []

    def make(queue: str, **kwargs):  # type: ignore[no-untyped-def]
        office = Office(box_factory, workdir, queue, **kwargs)
        made.append(office)
        return office

    yield make
    for office in made:
        office.stop()


@pytest.fixture
def web_box(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real box in-process (extensions 201-203), for web tests; stopped afterwards."""
    from live_box import LiveBox

    box = LiveBox(tmp_path / "web-box", PROVISION)
    yield box
    box.stop()


@pytest.fixture
def app(web_box):  # type: ignore[no-untyped-def]
    """The web app around web_box's BoxApi."""
    from web.app import create_app

    return create_app(web_box.box.api, testing=True)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A Flask test client (keeps cookies between requests)."""
    return app.test_client()


# Files that run for minutes (the image build, a systemd container): first, so the parallel workers
# spend those minutes on everything else instead of waiting for them at the end.
LONG_FIRST = ("test_image.py", "test_systemd_box.py")


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Put the long-running files at the front of the queue (pytest-xdist hands out files in this order)."""
    items.sort(key=lambda item: 0 if item.path.name in LONG_FIRST else 1)
