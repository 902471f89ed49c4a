"""Shared plumbing of the load benchmarks: the box under test, SIPp runs, /proc figures, tables.

The box runs as `taskset -c 0 switchboard run ...` (core 0); SIPp, tshark/dumpcap and py-spy
run on core 1. All traffic stays on 127.0.0.1. Nothing here asserts timings: these are
measurements, not tests.
"""
from __future__ import annotations

import atexit
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = BENCH / "sipp"
sys.path.insert(0, str(REPO / "tests"))  # the helpers the tests and the benchmarks share (tests/peerkit/)
from peerkit.ports import LOCALHOST as HOST  # noqa: E402
from peerkit.ports import free_media_port, free_port  # noqa: E402,F401  (the benchmarks import them from here)
from peerkit.sipp import auth_injection  # noqa: E402
BOX_CORE, PEER_CORE = 0, 1
# Below Linux's ephemeral range and away from the ranges tests/peers.py hands out (20000-31998).
RTP_RANGE = (14000, 15998)
CLK_TCK = os.sysconf("SC_CLK_TCK")
G711A = Path("/usr/share/sip-tester/g711a.pcap")

# The benchmark's processes run at this nice level (BENCH_NICE, default -10, needs root) so
# that other work on a shared machine disturbs the figures less; 0 turns it off.
NICE = int(os.environ.get("BENCH_NICE", "-10"))

_children: list[subprocess.Popen] = []


def _cleanup() -> None:
    """Stop whatever this script started (by pid, never by name)."""
    for proc in reversed(_children):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                proc.kill()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def spawn(args: list[str], priority: bool = True, **kwargs) -> subprocess.Popen:
    """Popen that is cleaned up when the script exits.

    With priority (and root), the process gets a session of its own and that session's
    autogroup gets nice NICE: with kernel.sched_autogroup_enabled=1 (as here) a plain nice
    value only counts inside one session, so against other sessions' work (other people's
    test runs on a shared machine) only the autogroup's nice helps.
    """
    boost = priority and NICE and os.geteuid() == 0
    proc = subprocess.Popen(args, start_new_session=bool(boost) or kwargs.pop("start_new_session", False), **kwargs)
    _children.append(proc)
    if boost:
        try:
            with open(f"/proc/{proc.pid}/autogroup", "w") as f:
                f.write(str(NICE))
        except OSError:
            pass
    return proc




def pinned(core: int, args: list[str], realtime: bool = False) -> list[str]:
    """Prefix a command with taskset (when the machine has that core) and nice, or chrt -f 10."""
    if realtime and os.geteuid() == 0 and shutil.which("chrt"):
        args = ["chrt", "-f", "10", *args]
    elif NICE and os.geteuid() == 0 and shutil.which("nice"):
        args = ["nice", "-n", str(NICE), *args]
    if shutil.which("taskset") and core in os.sched_getaffinity(0):
        return ["taskset", "-c", str(core), *args]
    return args


def require(*tools: str) -> None:
    """Exit with a clear message if a peer tool is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (apt-get install -y sip-tester tshark)")


# --- /proc ---------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sys_seconds(pid: int) -> float:
    """stime of a process: the kernel's share of its CPU."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLK_TCK


def runqueue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (MiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def core_ticks(core: int) -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of one core from /proc/stat (busy includes steal)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                return sum(v) - idle, sum(v), v[7] if len(v) > 7 else 0
    return 0, 0, 0


class CpuMeter:
    """Box CPU % of one core over a window, and how busy core 0 was with anything else."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = cpu_seconds(self.pid)
        self.s0 = sys_seconds(self.pid)
        self.w0 = runqueue_wait(self.pid)
        self.core0 = core_ticks(BOX_CORE)

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        cpu = cpu_seconds(self.pid) - self.c0
        kernel = sys_seconds(self.pid) - self.s0
        waited = runqueue_wait(self.pid) - self.w0
        busy1, total1, steal1 = core_ticks(BOX_CORE)
        busy = busy1 - self.core0[0]
        total = total1 - self.core0[1]
        steal = steal1 - self.core0[2]
        core_pct = 100.0 * busy / total if total else float("nan")
        box_pct = 100.0 * cpu / wall if wall else float("nan")
        return {"wall": wall, "cpu_s": cpu, "cpu_pct": box_pct,
                "kernel_share": 100.0 * kernel / cpu if cpu else float("nan"),
                "runq_pct": 100.0 * waited / wall if wall else float("nan"),
                "steal_pct": 100.0 * steal / total if total else float("nan"),
                "other_pct": max(0.0, core_pct - box_pct)}


# --- the box -------------------------------------------------------------------------
def extensions(count: int, first: int = 10000) -> dict[str, str]:
    """Extension number -> secret."""
    return {str(first + i): f"bench-{first + i}" for i in range(count)}


def provision_text(users: dict[str, str]) -> str:
    """A provisioning file with these extensions."""
    return "\n".join(f'[[extensions]]\nnumber = "{n}"\nname = "Bench {n}"\nsecret = "{s}"\n'
                     for n, s in users.items())


def users_csv(path: Path, users: dict[str, str]) -> Path:
    """SIPp injection file: field0 = user, field1 = a whole [authentication] line."""
    return auth_injection(path, users)


@dataclass
class Box:
    """A `switchboard run` process pinned to core 0."""

    proc: subprocess.Popen
    data_dir: Path
    sip_port: int
    rtp: tuple[int, int]
    banner: str
    started: float  # monotonic time of exec
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> float:
        return rss_mb(self.pid)

    def stop(self) -> None:
        if os.environ.get("BENCH_BOX_DIAG") and self.proc.poll() is None:
            diag = [line for line in self.log_path.read_text(errors="replace").splitlines() if "[diag" in line]
            if diag:
                print("    box diag: " + diag[-1], flush=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def box_command(data_dir: Path, provision: Path | None, sip_port: int, rtp: tuple[int, int],
                http_port: int, realtime: bool = False) -> list[str]:
    exe = shutil.which("switchboard")
    base = [exe] if exe else [sys.executable, "-m", "appliance.cli"]
    if os.environ.get("BENCH_BOX_DIAG"):  # in-process diagnostics in box.log (see bench/box_diag.py)
        base = [sys.executable, str(BENCH / "box_diag.py"), "--every", os.environ["BENCH_BOX_DIAG"], "--"]
    args = [*base, "run", "--data-dir", str(data_dir), "--bind", HOST, "--sip-port", str(sip_port),
            "--http-port", str(http_port), "--rtp-port-min", str(rtp[0]), "--rtp-port-max", str(rtp[1]),
            "--log-format", "text", "--log-level", "WARNING"]
    if provision is not None:
        args += ["--provision", str(provision)]
    return pinned(BOX_CORE, args, realtime)


def start_box(workdir: Path, users: dict[str, str] | None = None, rtp: tuple[int, int] = RTP_RANGE,
              timeout: float = 30.0, realtime: bool = False, box_toml: str | None = None) -> Box:
    """Start a fresh box (new data dir) and wait for its banner.

    realtime runs it SCHED_FIFO (chrt -f 10): on a shared machine, other processes on core 0
    then cannot hold the box off the CPU until the next scheduler tick (4 ms at HZ=250),
    which otherwise shows up as latency the box did not cause.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="box-", dir=workdir))
    if box_toml is not None:  # [box] settings for this run
        (data_dir / "switchboard.toml").write_text(box_toml)
    provision = None
    if users is not None:
        provision = data_dir / "provision.toml"
        provision.write_text(provision_text(users))
    sip_port = free_port()
    log_path = data_dir / "box.log"
    log = open(log_path, "w")
    started = time.monotonic()
    proc = spawn(box_command(data_dir, provision, sip_port, rtp, free_port(socket.SOCK_STREAM), realtime),
                 stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = started + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("Switchboard ready"):
            # Keep draining stdout so the box can never block on a full pipe.
            spawn(["cat"], priority=False, stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return Box(proc, data_dir, sip_port, rtp, line.strip(), started, log_path)
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit(f"box did not start:\n{log_path.read_text()[-3000:]}")


# --- SIPp ----------------------------------------------------------------------------
@dataclass
class SippRun:
    """One SIPp run: exit code, final statistics, per-message counts, response times."""

    returncode: int
    wall: float
    stats: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rtt_ms: list[float] = field(default_factory=list)
    stdout: str = ""
    errors: str = ""

    def stat(self, name: str) -> int:
        try:
            return int(self.stats.get(name, "0"))
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self.stat("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.stat("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        """Every retransmission SIPp counted, its own and the box's (from -trace_counts)."""
        from_counts = sum(v for k, v in self.counts.items() if k.endswith("_Retrans"))
        return max(from_counts, self.stat("Retransmissions(C)"))

    @property
    def elapsed(self) -> float:
        """ElapsedTime(C) in seconds."""
        text = self.stats.get("ElapsedTime(C)", "")
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            return self.wall
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
        if len(parts) > 3:
            seconds += parts[3] / 1e6
        return seconds or self.wall


def sipp_command(remote: str | None, scenario: Path | str, *args: str) -> list[str]:
    """A SIPp command line pinned to the peer core, without a terminal."""
    cmd = ["sipp", "-nostdin", "-i", HOST]
    if remote:
        cmd.append(remote)
    cmd += ["-sn", scenario] if scenario in ("uac", "uas") else ["-sf", str(scenario)]
    return pinned(PEER_CORE, cmd + list(args))


def start_sipp(workdir: Path, remote: str | None, scenario: Path | str, *args: str) -> tuple[subprocess.Popen, float]:
    """Start SIPp with statistics, counts and response-time traces in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.csv"):
        if old.name.endswith(("_.csv", "_counts.csv", "_rtt.csv")):
            old.unlink()
    for old in workdir.glob("*_errors.log"):
        old.unlink()
    cmd = sipp_command(remote, scenario, *args, "-trace_stat", "-fd", "1", "-trace_counts",
                       "-trace_err")
    return spawn(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), time.monotonic()


def finish_sipp(proc: subprocess.Popen, began: float, workdir: Path, timeout: float) -> SippRun:
    """Wait for SIPp and read its trace files."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # SIPp: stop gracefully, dump final stats
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    run = SippRun(proc.returncode, time.monotonic() - began, stdout=out or "")
    for path in workdir.glob("*_.csv"):
        run.stats = _last_row(path)
    for path in workdir.glob("*_counts.csv"):
        row = _last_row(path)
        run.counts = {k: int(v) for k, v in row.items() if v.strip().lstrip("-").isdigit()}
    for path in workdir.glob("*_rtt.csv"):
        with open(path) as f:
            for rec in csv.reader(f, delimiter=";"):
                if len(rec) >= 2 and rec[1].replace(".", "", 1).isdigit():
                    run.rtt_ms.append(float(rec[1]))
    run.errors = "".join(p.read_text(errors="replace")[-2000:] for p in workdir.glob("*_errors.log"))
    return run


def run_sipp(workdir: Path, remote: str | None, scenario: Path | str, *args: str, timeout: float = 120) -> SippRun:
    proc, began = start_sipp(workdir, remote, scenario, *args)
    return finish_sipp(proc, began, workdir, timeout)


def _last_row(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def register(box: Box, workdir: Path, users: dict[str, str], port: int | None = None, rate: int = 200,
             expires: int = 3600) -> SippRun:
    """Register every user once (from one local port if given)."""
    csv_path = users_csv(workdir / "reg_users.csv", users)
    args = ["-inf", str(csv_path), "-m", str(len(users)), "-r", str(rate), "-l", str(max(len(users), 10)),
            "-key", "expires", str(expires), "-t", "u1", "-timeout", "60", "-timeout_error"]
    if port is not None:
        args += ["-p", str(port)]
    return run_sipp(workdir / "register", f"{HOST}:{box.sip_port}", SCENARIOS / "register.xml", *args,
                    timeout=90)


def start_profile(pid: int, seconds: float, directory: str, name: str) -> subprocess.Popen | None:
    """py-spy record of the box (core 1) into DIRECTORY/NAME.txt, raw collapsed stacks.

    --nonblocking: py-spy would otherwise stop the box for every sample, which shows as
    latency and run-queue wait; even so, do not read timings from a profiled run.

    Summarise with: python bench/pyspy_summary.py DIRECTORY/NAME.txt
    """
    if shutil.which("py-spy") is None:
        print("  (py-spy not installed: pip install py-spy)")
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    out = Path(directory) / f"{name}.txt"
    native = ["--native"] if os.environ.get("BENCH_PYSPY_NATIVE") else []  # C frames too (slower)
    return spawn(pinned(PEER_CORE, ["py-spy", "record", "-p", str(pid), "-d", str(max(1, int(seconds))),
                                    "-r", "250", "-f", "raw", "--nonblocking", *native, "-o", str(out)]),
                 priority=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- figures -------------------------------------------------------------------------
def median(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def table(headings: list[str], rows: list[list[object]]) -> str:
    """A plain right-aligned text table (also valid Markdown)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headings)]
    out = ["| " + " | ".join(h.rjust(w) for h, w in zip(headings, widths)) + " |",
           "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def describe_tree() -> str:
    """Which code was measured: commit and uncommitted files."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        changed = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        return "tree: unknown"
    return f"tree: {head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def header(title: str) -> None:
    """First lines of every report: what, where, on which code."""
    load = os.getloadavg()
    print(f"# {title}")
    print(f"box on core {BOX_CORE}, peers on core {PEER_CORE}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, autogroup nice {NICE if os.geteuid() == 0 else 0}, "
          f"load average {load[0]:.2f} at start; {describe_tree()}")
    print("'other core0 %' = how busy core 0 was with anything but the box (other processes, softirq);"
          " 'runq wait %' = share of the time the box was runnable but waiting for the CPU:"
          " high values mean the figures are disturbed by other work on the machine.", flush=True)
