"""The System page on a real box: backups to make and download, an update upload, admins only."""
from __future__ import annotations

import io
import sqlite3
import time

from web_client import PASSWORD, csrf_from, login, make_user


def _office(web_box):  # type: ignore[no-untyped-def]
    make_user(web_box.db, "boss", "admin")
    make_user(web_box.db, "sam", "supervisor")
    make_user(web_box.db, "ann", "agent", extension="201")


def test_only_admins_see_the_system_page_and_its_backups(web_box, app) -> None:  # type: ignore[no-untyped-def]
    _office(web_box)
    name = web_box.box.api.backup_now()
    for user in ("sam", "ann"):
        client = app.test_client()
        login(client, user, PASSWORD)
        assert client.get("/system").status_code == 403, user
        assert client.get(f"/system/backups/{name}").status_code == 403, user
        token = csrf_from(client.get("/", follow_redirects=True).data)
        assert client.post("/system/backups", data={"csrf_token": token}).status_code == 403
        upload = {"csrf_token": token, "file": (io.BytesIO(b"x"), "switchboard_pbx-9.9-py3-none-any.whl")}
        assert client.post("/system/update", data=upload, content_type="multipart/form-data").status_code == 403
    assert not list(web_box.box.settings.data_dir.glob("upload-*"))


def test_an_admin_backs_up_and_downloads_a_consistent_copy(web_box, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _office(web_box)
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/system")
    assert page.status_code == 200 and b"No backup yet" in page.data and b"The clock is not watched" in page.data
    done = client.post("/system/backups", data={"csrf_token": csrf_from(page.data)})
    assert done.status_code == 303
    page = client.get("/system")
    [name] = [b.name for b in web_box.box.api.system_info()["backups"]]
    assert name.encode() in page.data
    download = client.get(f"/system/backups/{name}")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(download.data)
    numbers = {row[0] for row in sqlite3.connect(copy).execute("SELECT number FROM extensions")}
    assert numbers == {"201", "202", "203"}
    for wrong in ("switchboard.db", "..%2Fswitchboard.db", "switchboard-20990101-000000.sqlite"):
        assert client.get(f"/system/backups/{wrong}").status_code == 404, wrong


def test_a_file_that_is_no_update_is_refused_and_the_box_runs_on(web_box, app) -> None:  # type: ignore[no-untyped-def]
    _office(web_box)
    client = app.test_client()
    login(client, "boss", PASSWORD)
    token = csrf_from(client.get("/system").data)
    upload = {"csrf_token": token, "file": (io.BytesIO(b"\xff\xd8 a photo"), "../../holiday.jpg")}
    response = client.post("/system/update", data=upload, content_type="multipart/form-data")
    assert response.status_code == 303
    deadline = time.monotonic() + 30
    while (info := web_box.box.api.system_info())["last_update"] is None or info["last_update"].state != "failed":
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
    assert "not a wheel or a tar of wheels" in info["last_update"].message and info["release"] == "factory"
    assert not list(web_box.box.settings.data_dir.glob("upload-*"))  # the upload is gone, named safely
    assert not (web_box.box.settings.data_dir.parent / "holiday.jpg").exists()
    page = client.get("/system").data.decode()
    assert "Last update: <strong>failed</strong>" in page, page[page.find("Update"):][:600]


def test_the_nightly_backup_is_scheduled_at_backup_time_and_a_first_one_soon(web_box) -> None:  # type: ignore[no-untyped-def]
    """Rebuilt at every start: the cron job at 03:15 office time, and a catch-up when no recent backup exists."""
    scheduler = web_box.box.backup_scheduler
    nightly = scheduler.get_job("backup").next_run_time
    assert (nightly.hour, nightly.minute) == (3, 15)
    assert scheduler.get_job("backup-catch-up") is not None  # a new box has no backup yet
