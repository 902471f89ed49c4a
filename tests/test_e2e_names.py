"""Names where the box knows them (issue 14, item 11): the desk phone shows the customer's name, the queue's
lists show callers' and agents' names. A real box in-process; the provider is a UDP socket on its own port.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import PROVISION
from live_box import LiveBox
from peers import LOCALHOST, SipPhone, free_port, new_id, sdp_body, free_media_port

from appliance.crm import customer_store as customers

QUEUE = """
[[queue]]
name = "sales"
members = ["201"]
"""


@pytest.fixture
def office(tmp_path: Path):  # type: ignore[no-untyped-def]
    itsp_port = free_port()
    trunk = f"""
[[trunks]]
name = "itsp"
host = "{LOCALHOST}"
port = {itsp_port}
register = false
inbound = "201"
outbound_prefix = "9"
"""
    box = LiveBox(tmp_path / "box", PROVISION + trunk + QUEUE)
    itsp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    itsp.bind((LOCALHOST, itsp_port))
    yield box, itsp
    itsp.close()
    box.stop()


def test_the_desk_phone_shows_the_customers_name_and_the_queue_the_agents_names(office) -> None:  # type: ignore[no-untyped-def]
    box, itsp = office
    customers.create_customer(box.db, region="US", name="Dana Smith", phones=["+1 212 555 0123"])
    with SipPhone(box, user="201") as ann:
        assert ann.register("201", "s3cret-201").status == 200
        port = itsp.getsockname()[1]
        body = sdp_body(free_media_port())
        itsp.sendto((f"INVITE sip:201@{LOCALHOST}:{box.sip_port} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP {LOCALHOST}:{port};branch=z9hG4bK{new_id()}\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:2125550123@{LOCALHOST}>;tag={new_id()}\r\nTo: <sip:201@{LOCALHOST}>\r\n"
                     f"Call-ID: {new_id()}@itsp\r\nCSeq: 1 INVITE\r\nContact: <sip:2125550123@{LOCALHOST}:{port}>\r\n"
                     f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body,
                    (LOCALHOST, box.sip_port))
        invite = ann.request_in("INVITE")
        assert invite.header("From").startswith('"Dana Smith" <sip:2125550123@'), invite.header("From")
    box.call(lambda: box.box.queues.agent_action("201", "login"))
    [sales] = box.call(lambda: box.box.queues.status("sales"))["queues"]
    assert [(a["extension"], a["name"]) for a in sales["agents"]] == [("201", "Ann")]
