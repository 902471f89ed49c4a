"""Run the box in-process with diagnostics: GC pauses, live transactions, RSS, optional tracemalloc.

Usage: python bench/box_diag.py [--every 5] [--tracemalloc] -- run --data-dir D --provision F ...
       (everything after -- is what `switchboard` takes; pin it yourself: taskset -c 0 python ...)

Every EVERY seconds a line goes to stderr: RSS, the cyclic GC's pauses in the interval
(count, total and longest per generation), and the sizes of the box's state that grows
with load (server/client transactions, transactions queued for expiry, nonces tracked,
dialogs, relays). With --tracemalloc, SIGUSR1 prints the 20 source lines holding the
most memory. The product code is not changed: the Box instance is found by wrapping
Box.start from here.

--experiment slim-transactions tries a proposed fix without touching the product code: once
a non-INVITE server transaction has sent its final response, it lets go of the parsed
request (keeping method, Call-ID and CSeq), so the 32 s of timer J hold ~1 KB instead of
~7 KB and a handful of GC-tracked objects instead of ~70. --experiment gc-freeze calls
gc.collect(); gc.freeze() once the box has started, so the objects of the imports and the
start-up (Flask, Jinja, sqlite_utils, ...) are no longer scanned by every full collection.
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance import box as box_module  # noqa: E402
from appliance import cli  # noqa: E402

_state: dict = {"box": None}
_pauses: list[tuple[int, float]] = []  # (generation, seconds)
_gc_lock = threading.Lock()
_gc_started = [0.0]


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        with _gc_lock:
            _pauses.append((info["generation"], time.perf_counter() - _gc_started[0]))


def _rss() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _sizes() -> str:
    box = _state["box"]
    if box is None or not hasattr(box, "layer"):
        return "box not started"
    layer = box.layer
    expiry = sum(len(q) for q in layer._expiry.values())
    parts = [f"server txns {len(layer.server)}", f"client txns {len(layer.client)}", f"expiry queue {expiry}",
             f"awaiting ACK {len(layer._awaiting_ack)}"]
    nonces = getattr(getattr(box.core, "auth", None), "nonces", None)
    if nonces is not None and hasattr(nonces, "_seen"):
        parts.append(f"nonces {len(nonces._seen)}")
    b2bua = getattr(box, "b2bua", None)
    if b2bua is not None:
        parts.append(f"dialogs {len(getattr(b2bua, 'dialogs', {}))}")
        parts.append(f"calls {len(getattr(b2bua, 'active', {}))}")
    media = getattr(box, "media", None)
    if media is not None and hasattr(media, "active"):
        parts.append(f"relays {media.active()}")
        counters = {"in": 0, "out": 0, "dropped_source": 0, "dropped_no_remote": 0, "send_errors": 0,
                    "recv_errors": 0}
        for relay in list(getattr(media, "_relays", ())):
            for leg in (relay.a, relay.b):
                counters["in"] += leg.packets_in
                counters["out"] += leg.packets_out
                for name in ("dropped_source", "dropped_no_remote", "send_errors", "recv_errors"):
                    counters[name] += getattr(leg, name, 0)
        parts.append("RTP (open relays) " + " ".join(f"{k} {v}" for k, v in counters.items()))
    return ", ".join(parts)


def _reporter(every: float) -> None:
    overall: list[float] = []
    while True:
        time.sleep(every)
        with _gc_lock:
            pauses = list(_pauses)
            _pauses.clear()
        overall += [d for _, d in pauses]
        longest = sorted(overall)[-3:]
        by_gen = []
        for gen in (0, 1, 2):
            p = [d for g, d in pauses if g == gen]
            if p:
                by_gen.append(f"gen{gen} {len(p)}x {1000 * sum(p):.0f} ms (max {1000 * max(p):.0f})")
        print(f"[diag {time.strftime('%H:%M:%S')}] RSS {_rss():.0f} MB; GC: {', '.join(by_gen) or 'none'} "
              f"(since start {len(overall)}x {1000 * sum(overall):.0f} ms, longest "
              f"{', '.join(f'{1000 * d:.0f}' for d in reversed(longest))} ms); {_sizes()}", file=sys.stderr, flush=True)


def _dump_tracemalloc(*_: object) -> None:
    if not tracemalloc.is_tracing():
        print("[diag] tracemalloc is off (--tracemalloc)", file=sys.stderr, flush=True)
        return
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"[diag] tracemalloc: {total / 2**20:.1f} MiB traced; top lines:", file=sys.stderr)
    for s in stats[:20]:
        frame = s.traceback[0]
        print(f"  {s.size / 2**20:8.2f} MiB {s.count:>8} blocks  {frame.filename}:{frame.lineno}", file=sys.stderr)
    sys.stderr.flush()


class _SpentRequest:
    """What a finished non-INVITE server transaction still needs of its request."""

    __slots__ = ("method", "call_id", "cseq")

    def __init__(self, request) -> None:  # type: ignore[no-untyped-def]
        self.method = request.method
        self.call_id = request.call_id
        self.cseq = request.cseq


def _slim_transactions() -> None:
    from appliance.sip import transaction as txn_module

    original = txn_module.ServerTransaction.respond

    def respond(self, *a, **kw):  # type: ignore[no-untyped-def]
        result = original(self, *a, **kw)
        if self.state == "completed" and self.request.method != "INVITE":
            self.request = _SpentRequest(self.request)
        return result

    txn_module.ServerTransaction.respond = respond  # type: ignore[method-assign]
    print("[diag] experiment: slim non-INVITE server transactions", file=sys.stderr, flush=True)


def main() -> None:
    argv = sys.argv[1:]
    if "--" in argv:
        cut = argv.index("--")
        own, rest = argv[:cut], argv[cut + 1:]
    else:
        own, rest = [], argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--experiment", action="append", default=[], choices=["slim-transactions", "gc-freeze"])
    args = ap.parse_args(own)
    if "slim-transactions" in args.experiment:
        _slim_transactions()
    if args.tracemalloc:
        tracemalloc.start(1)
    gc.callbacks.append(_gc_callback)
    original_start = box_module.Box.start

    async def start(self, *a, **kw):  # type: ignore[no-untyped-def]
        _state["box"] = self
        result = await original_start(self, *a, **kw)
        if "gc-freeze" in args.experiment:
            gc.collect()
            gc.freeze()
            print(f"[diag] experiment: gc.freeze() of {gc.get_freeze_count()} start-up objects", file=sys.stderr,
                  flush=True)
        return result

    box_module.Box.start = start  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _dump_tracemalloc)
    threading.Thread(target=_reporter, args=(args.every,), daemon=True).start()
    sys.exit(cli.main(rest))


if __name__ == "__main__":
    main()
