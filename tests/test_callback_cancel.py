"""Cancelling a callback the office owes, from the command line and the supervisor page (issue 14, item 17)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROVISION
from live_box import LiveBox
from web_client import csrf_from, login, make_user

from appliance.cli import main
from appliance.store import callbacks
from web.app import create_app

QUEUE = '\n[[queue]]\nname = "sales"\nmembers = ["201"]\n'


@pytest.fixture
def office(tmp_path: Path):  # type: ignore[no-untyped-def]
    box = LiveBox(tmp_path / "box", PROVISION + QUEUE)
    yield box
    box.stop()


def owed(box: LiveBox, number: str) -> str:
    callback_id, _ = callbacks.request_callback(box.db, number=number, queue="sales", line="itsp")
    box.call(box.box.queues.reload)
    return callback_id


def test_the_command_line_cancels_a_callback_in_the_running_box(office, capsys) -> None:  # type: ignore[no-untyped-def]
    callback_id = owed(office, "0612345678")
    data = ["--data-dir", str(office.box.settings.data_dir)]
    assert main(["callback", "cancel", callback_id[:8], *data]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert callbacks.get_callback(office.db, callback_id)["state"] == "cancelled"
    assert office.call(lambda: office.box.queues.engine.entry(callback_id)) is None  # out of the line at once
    assert main(["callback", "cancel", callback_id[:8], *data]) == 2  # no longer pending


def test_a_supervisor_cancels_one_from_the_page_and_an_agent_cannot(office) -> None:  # type: ignore[no-untyped-def]
    callback_id = owed(office, "0612345678")
    make_user(office.db, "boss", "admin")
    make_user(office.db, "sue", "supervisor")
    make_user(office.db, "ann", "agent", "201")
    app = create_app(office.box.api, testing=True)
    ann = app.test_client()
    login(ann, "ann")
    token = csrf_from(ann.get("/agent").data)
    assert ann.post("/supervisor/callbacks/cancel", data={"id": callback_id, "csrf_token": token}).status_code == 403
    sue = app.test_client()
    login(sue, "sue")
    page = sue.get("/supervisor").data
    assert b"Cancel callback to 0612345678" in page
    reply = sue.post("/supervisor/callbacks/cancel", data={"id": callback_id, "csrf_token": csrf_from(page)})
    assert reply.status_code == 302
    assert callbacks.get_callback(office.db, callback_id)["state"] == "cancelled"
    assert b"Cancel callback to 0612345678" not in sue.get("/supervisor").data
