"""Server-sent events: the screen pop's live feed, one stream per open tab."""
from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request

from appliance.bus import Event
from appliance.crm.card import build_card

from .auth import current_user
from .core import api
from .feed import CardCache, Message, UserFeed

bp = Blueprint("events", __name__)

KEEPALIVE_SECONDS = 15.0
# A stream ends after this long and the browser reconnects with Last-Event-ID: a tab that vanished
# without closing its socket frees its worker thread within this time at the latest.
STREAM_SECONDS = 300.0
RETRY_MS = 1000


def _state() -> tuple[CardCache, threading.BoundedSemaphore]:
    """The app's card cache and its cap on open streams (each holds a waitress thread)."""
    ext = current_app.extensions
    if "switchboard.cards" not in ext:
        box, db = api(), api().open_connection()  # the streams' own: cards never wait on the loop's writes
        ext["switchboard.cards"] = CardCache(lambda call_id, extension: build_card(
            db, call_id, box.crm_settings(), extension))
        ext["switchboard.streams"] = threading.BoundedSemaphore(current_app.config["SSE_LIMIT"])
    return ext["switchboard.cards"], ext["switchboard.streams"]


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last") or ""
    return int(raw) if raw.isdigit() else None


def frame(message: Message) -> str:
    """One SSE frame."""
    seq, name, data = message
    return f"id: {seq}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@bp.get("/events")
def stream():  # type: ignore[no-untyped-def]
    """The signed-in user's live feed: cards, answers, hang-ups, their state and (supervisors) alerts."""
    cards, slots = _state()
    if not slots.acquire(blocking=False):
        response = jsonify({"error": "too many open screens; close a tab"})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response
    feed = UserFeed(current_user(), cards)
    bus = api().bus
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    unsubscribe = bus.subscribe(inbox.put)  # before the replay, so nothing falls in between
    since = _last_event_id()
    backlog = feed.replay(bus.since(since or 0), since)
    started = bus.last_seq

    closed = threading.Lock()

    def cleanup() -> None:
        if closed.acquire(blocking=False):  # once, whether the stream ran or not
            unsubscribe()
            slots.release()

    def body() -> Iterator[str]:
        sent = since or 0
        deadline = time.monotonic() + STREAM_SECONDS
        try:
            yield f"retry: {RETRY_MS}\n: hello {started}\n\n"
            for message in backlog:
                sent = max(sent, message[0])
                yield frame(message)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = inbox.get(timeout=min(KEEPALIVE_SECONDS, left))
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if event.seq <= sent:
                    continue
                for message in feed.translate(event):
                    sent = max(sent, message[0])
                    yield frame(message)
        finally:
            cleanup()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    response = Response(body(), mimetype="text/event-stream", headers=headers)
    response.call_on_close(cleanup)
    return response
