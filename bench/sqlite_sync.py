"""What synchronous = FULL costs the box's database (WAL): commits per second and commit latency.

Usage: python bench/sqlite_sync.py [--commits 2000] [--runs 5] [--dir PATH]

Writes call-record-sized rows, one per transaction (as the box commits a call's end), through the
box's own store (appliance.store.db), first with NORMAL, then with FULL, on a file in --dir (default
the current folder: run it on the SD card to measure a card). Prints the median of the runs.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from appliance.store.db import open_database, transaction

ROW = {"call_id": "", "caller": "+4930123456", "callee": "201", "state": "ended", "notes": "x" * 200}


def one_run(folder: Path, mode: str, commits: int) -> tuple[float, float]:
    """Commits per second and the p99 commit time (ms) for one fresh database."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        db = open_database(Path(tmp) / "bench.db")
        db.execute(f"PRAGMA synchronous = {mode}")
        db.execute("CREATE TABLE records (call_id TEXT, caller TEXT, callee TEXT, state TEXT, notes TEXT)")
        times = []
        began = time.perf_counter()
        for i in range(commits):
            start = time.perf_counter()
            with transaction(db):
                db["records"].insert({**ROW, "call_id": str(i)})
            times.append(time.perf_counter() - start)
        elapsed = time.perf_counter() - began
        db.conn.close()
    times.sort()
    return commits / elapsed, times[int(len(times) * 0.99)] * 1000


def main() -> None:
    """Measure both modes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("."))
    args = parser.parse_args()
    print(f"{'synchronous':<12} {'commits/s':>10} {'p99 ms':>8}   (median of {args.runs} runs of {args.commits}, {args.dir.resolve()})")
    for mode in ("NORMAL", "FULL"):
        runs = [one_run(args.dir, mode, args.commits) for _ in range(args.runs)]
        rate = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(f"{mode:<12} {rate:>10.0f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
