"""Queue fixes from a new office's trial (issue 14, items 3 and 10), over real sockets with a raw SIP phone."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROVISION
from live_box import LiveBox
from peers import LOCALHOST, SipPhone, free_port, invite_with_auth

from appliance.store import callbacks
from appliance.store import calls as store_calls

QUEUE = '\n[[queue]]\nname = "sales"\nmembers = ["201"]\nring_timeout = 10\n'


@pytest.fixture
def office(tmp_path: Path):  # type: ignore[no-untyped-def]
    trunk = f'\n[[trunks]]\nname = "itsp"\nhost = "{LOCALHOST}"\nport = {free_port()}\nregister = false\n' \
            'inbound = "201"\noutbound_prefix = "9"\n'
    box = LiveBox(tmp_path / "box", PROVISION + trunk + QUEUE)
    yield box
    box.stop()


def test_no_callback_is_offered_to_an_agent_still_on_the_login_call(office) -> None:  # type: ignore[no-untyped-def]
    callback_id, _ = callbacks.request_callback(office.db, number="2125550123", queue="sales", line="itsp")
    office.call(office.box.queues.reload)
    with SipPhone(office, user="201") as ann:  # type: ignore[arg-type]
        assert ann.register("201", "s3cret-201").status == 200
        dialog, call_id = invite_with_auth(ann, office, "*45", "s3cret-201")
        ok = ann.response(call_id, "INVITE")
        assert ok.status == 200
        contact = ok.header("Contact").strip("<>").split(">")[0]
        ann.send(ann.build("ACK", contact, [dialog[0], ("To", ok.header("To")), dialog[2], ("CSeq", "2 ACK")]))
        # The box says "you are logged in" and hangs up; only then may the callback ring this phone.
        first = ann.recv(lambda m: not m.is_response and m.method in ("BYE", "INVITE"), timeout=15,
                         what="the box's BYE or a callback's INVITE")
        assert (first.method, first.call_id) == ("BYE", call_id), "a callback rang the agent during the login call"
        ann.send(ann.reply(first, 200, "OK"))
        offer = ann.request_in("INVITE", timeout=10)
        assert offer.call_id != call_id
    rows = [r for r in store_calls.recent_calls(office.db, 10) if r["direction"] == "callback"]
    assert rows, "no callback record"
    # The callback's record: From the customer, To the queue that owes the call (item 3: not From = To).
    assert (rows[0]["from_number"], rows[0]["to_number"]) == ("2125550123", "sales")
    assert callbacks.get_callback(office.db, callback_id)["state"] in ("dialing", "pending")
