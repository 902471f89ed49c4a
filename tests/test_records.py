"""Honest call records (issue 14, item 1): the box picking up is not a person answering."""
from __future__ import annotations

import pytest

from appliance.bus import EventBus
from appliance.calls.records import CallLog
from appliance.store import calls as store_calls
from appliance.store.db import open_database


@pytest.fixture
def log():  # type: ignore[no-untyped-def]
    return CallLog(open_database(":memory:"), EventBus())


def inbound(log: CallLog):  # type: ignore[no-untyped-def]
    return log.start(sip_call_id="c", direction="inbound", line="itsp", from_number="0612345678", from_name="",
                     to_number="600")


def record(log: CallLog, info) -> dict:  # type: ignore[no-untyped-def]
    return store_calls.get_call(log.db, info.record_id)


def test_a_caller_who_hangs_up_in_the_ivr_while_an_extension_rings_is_abandoned(log: CallLog) -> None:
    info = inbound(log)
    log.answered(info, "ivr:main")
    log.ended(info, "answered", None, "0612345678")
    row = record(log, info)
    assert (row["disposition"], row["answered_by"]) == ("abandoned", None)
    assert row["answered_at"] is not None and row["extra"]["box_answered"] == "ivr:main"


def test_a_caller_who_leaves_the_queue_for_a_callback_is_not_answered(log: CallLog) -> None:
    info = inbound(log)
    log.answered(info, "queue:sales")
    log.note(info, callback_id="cb1")
    log.ended(info, "answered", None, "box")
    assert (record(log, info)["disposition"], record(log, info)["answered_by"]) == ("callback", None)


def test_the_box_finishing_alone_is_handled_and_a_person_taking_over_is_answered(log: CallLog) -> None:
    feature = log.start(sip_call_id="f", direction="internal", line="internal", from_number="201", from_name="",
                        to_number="*45")
    log.answered(feature, "feature:*45")
    log.ended(feature, "answered", None, "box")
    assert record(log, feature)["disposition"] == "handled"
    info = inbound(log)
    log.answered(info, "queue:sales")
    log.connected(info, "201")
    log.ended(info, "answered", None, "0612345678")
    assert (record(log, info)["disposition"], record(log, info)["answered_by"]) == ("answered", "201")
    direct = inbound(log)
    log.answered(direct, "202")
    log.ended(direct, "answered", None, "202")
    assert (record(log, direct)["disposition"], record(log, direct)["answered_by"]) == ("answered", "202")


def test_a_record_left_open_by_a_crash_says_whether_a_person_had_answered(log: CallLog) -> None:
    box_only, person = inbound(log), inbound(log)
    log.answered(box_only, "ivr:main")
    log.answered(person, "201")
    assert store_calls.close_interrupted(log.db) == 2
    assert record(log, box_only)["disposition"] == "abandoned"
    assert record(log, person)["disposition"] == "answered"
