"""One extension cannot take every media port (issue 13, finding 8): calls per extension, and a share for
calls not yet answered and ACKed. A real box in-process; the flood is raw INVITEs that are never ACKed.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROVISION
from live_box import LiveBox
from peers import SipPhone, invite_with_auth


@pytest.fixture
def make_box(tmp_path: Path):  # type: ignore[no-untyped-def]
    boxes: list[LiveBox] = []

    def make(**settings: object) -> LiveBox:
        box = LiveBox(tmp_path / f"box{len(boxes)}", PROVISION, **settings)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()


def flood(box: LiveBox, caller: SipPhone, callee: SipPhone, secret: str, count: int) -> list[int]:
    """count INVITEs to 202, never ACKed; the first status each one gets past the challenge (180 or final)."""
    statuses = []
    for _ in range(count):
        _dialog, call_id = invite_with_auth(caller, box, "202", secret)
        refused = caller.poll(lambda m, c=call_id: m.is_response and m.call_id == c and m.status >= 300,
                              timeout=0.2)
        if refused is not None:
            statuses.append(refused.status)
            continue
        ringing = callee.poll(lambda m: not m.is_response and m.method == "INVITE", timeout=0.5)
        if ringing is not None:  # the phone rings and never answers
            callee.send(callee.reply(ringing, 180, "Ringing", "t" + call_id[:6]))
        answer = caller.recv(lambda m, c=call_id: m.is_response and m.call_id == c and m.status > 100,
                             what="an answer past 100 Trying")
        statuses.append(answer.status)
    return statuses


def test_one_extension_has_at_most_four_calls_and_the_others_still_get_through(make_box) -> None:  # type: ignore[no-untyped-def]
    box = make_box()
    with SipPhone(box, user="202") as bob, SipPhone(box, user="201") as ann, SipPhone(box, user="203") as cleo:
        assert bob.register("202", "s3cret-202").status == 200  # rings, never answers
        statuses = flood(box, ann, bob, "s3cret-201", 30)
        assert statuses[:4] == [180] * 4, statuses
        assert statuses[4:] == [486] * 26, statuses
        assert box.box.media.active() == 4
        assert flood(box, cleo, bob, "s3cret-203", 1) == [180]  # somebody else's call still rings


def test_calls_not_yet_answered_hold_only_a_share_of_the_ports(make_box) -> None:  # type: ignore[no-untyped-def]
    box = make_box(max_calls_per_extension=100, unanswered_media_share=0.1)
    limit = max(1, int(box.box.media.allocator.capacity // 2 * 0.1))
    with SipPhone(box, user="202") as bob, SipPhone(box, user="201") as ann:
        assert bob.register("202", "s3cret-202").status == 200
        statuses = flood(box, ann, bob, "s3cret-201", limit + 5)
        assert statuses[:limit] == [180] * limit, statuses
        assert statuses[limit:] == [503] * 5, statuses
        assert box.box.media.active() == limit
        assert box.box.media.allocator.in_use < box.box.media.allocator.capacity / 2
