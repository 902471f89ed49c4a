"""Who may see and wrap up which call: the object-level check behind every call endpoint of the web."""
from __future__ import annotations

from collections.abc import Iterable

from sqlite_utils import Database

from appliance.store.calls import call_parties

__all__ = ["may_read_call", "may_wrap_up"]


def may_read_call(db: Database, user: dict, call_id: str, rang_at: Iterable[str] = ()) -> bool:
    """Whether `user` may read the call's card.

    Agents: calls their extension placed, answered, was offered, or rang at (`rang_at`, from the live
    feed). Supervisors: also every call that went through a queue. Admins: every call.
    """
    parties = call_parties(db, call_id)
    if parties is None:
        return False
    role = user.get("role")
    if role == "admin":
        return True
    if role == "supervisor" and parties["queues"]:
        return True
    extension = user.get("extension")
    return bool(extension) and (extension in parties["offered"] or extension in set(rang_at))


def may_wrap_up(db: Database, user: dict, call_id: str) -> bool:
    """Whether `user` may save a wrap-up for the call: their extension placed or answered it.

    Supervisors may also wrap up queue calls for their team; admins any call.
    """
    parties = call_parties(db, call_id)
    if parties is None:
        return False
    role = user.get("role")
    if role == "admin" or (role == "supervisor" and parties["queues"]):
        return True
    extension = user.get("extension")
    return bool(extension) and extension in parties["handled"]
