"""Summarise a py-spy raw (collapsed-stack) profile: where the box's time goes.

Usage: python bench/pyspy_summary.py PROFILE.txt [--top 25] [--lines] [--under FUNCTION]

Record one first, with the box under load (py-spy pinned away from the box's core):
    taskset -c 1 py-spy record -p BOX_PID -d 15 -r 200 -f raw -o PROFILE.txt

Prints the share of samples spent in each function, inclusive (the function and everything
it calls) and self (the function's own code). --lines keys by function and line instead.
--under NAME splits the time of the frames whose function name starts with NAME (e.g.
"SipCore._invite") between their direct callees.
The percentages are of the samples py-spy took while the box was busy: idle time in
epoll is not sampled (unless py-spy was given --idle), and threads parked in a lock or
condition wait (the web server's workers) are left out.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter

_LINE = re.compile(r" \(([^():]+):(\d+)\)$")
# Frames that mean "waiting", which py-spy reports as active for lock waits (the web
# server's worker threads sit in Condition.wait); stacks through them are left out, as are
# those ending in the event loop's own select.
IDLE_FRAMES = ("Condition.wait (", "Event.wait (", "_reporter (", "Thread._wait_for_tstate_lock (")
IDLE_LEAVES = ("EpollSelector.select (", "select (selectors", "epoll_wait (")


def frame_key(frame: str, lines: bool) -> str:
    """'func (path/file.py:123)' -> 'func (path/file.py)' unless lines are wanted."""
    if lines:
        return frame
    return _LINE.sub(lambda m: f" ({m.group(1)})", frame)


def load(path: str, lines: bool = False) -> tuple[int, Counter, Counter]:
    """Total samples, inclusive and self counts per frame key."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    with open(path) as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw:
                continue
            stack, _, count_text = raw.rpartition(" ")
            count = int(count_text)
            frames = [frame_key(fr, lines) for fr in stack.split(";")]
            if frames[-1].startswith(IDLE_LEAVES) or any(f.startswith(IDLE_FRAMES) for f in frames):
                continue
            total += count
            for key in set(frames):
                inclusive[key] += count
            own[frames[-1]] += count
    return total, inclusive, own


def children(path: str, name: str, lines: bool = False) -> tuple[int, int, Counter]:
    """(all samples, samples under NAME, NAME's direct callees -> samples; '<self>' for its own code)."""
    below: Counter = Counter()
    total = inside = 0
    with open(path) as f:
        for raw in f:
            stack, _, count_text = raw.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [frame_key(fr, lines) for fr in stack.split(";")]
            if frames[-1].startswith(IDLE_LEAVES) or any(fr.startswith(IDLE_FRAMES) for fr in frames):
                continue
            total += count
            hits = [i for i, fr in enumerate(frames) if fr.startswith(name)]
            if not hits:
                continue
            i = hits[0]
            inside += count
            below[frames[i + 1] if i + 1 < len(frames) else "<self>"] += count
    return total, inside, below


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--lines", action="store_true", help="key by function and line")
    ap.add_argument("--under", help="split this function's time between its direct callees")
    args = ap.parse_args()
    if args.under:
        total, inside, below = children(args.profile, args.under, args.lines)
        print(f"{inside} of {total} samples ({100 * inside / max(total, 1):.1f} %) under {args.under}")
        for key, n in below.most_common(args.top):
            print(f"{100 * n / max(total, 1):>7.1f} % of all, {100 * n / max(inside, 1):>5.1f} % of it  {key}")
        return
    total, inclusive, own = load(args.profile, args.lines)
    print(f"{total} samples")
    print(f"\n{'incl %':>7}  function (inclusive: itself and its callees)")
    for key, n in inclusive.most_common(args.top + 10):
        if key.startswith(("<module>", "main (", "_run (", "run (", "Runner.run", "BaseEventLoop.run_")):
            continue
        print(f"{100 * n / total:>7.1f}  {key}")
    print(f"\n{'self %':>7}  function (own code only)")
    for key, n in own.most_common(args.top):
        print(f"{100 * n / total:>7.1f}  {key}")


if __name__ == "__main__":
    main()
