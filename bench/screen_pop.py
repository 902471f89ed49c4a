"""Screen pop: the INVITE reaching the box -> the caller's card in the agent's browser; the console's page weight.

Usage: python bench/screen_pop.py [--runs 3] [--calls 50] [--known 40] [--ring 500] [--talk 300] [--gap 1500]
                                  [--seed 1] [--verbose] [--keep DIR]

Each run: a fresh box (`switchboard run`, core 0, fresh data folder, its own HTTP port) provisioned
with extension 201, a trunk "itsp" on 127.0.0.1:PORT (`inbound = "201"`: every call from the trunk
goes straight to the agent, `register = false`) and `[crm] region = "US"`; `switchboard.toml` sets
`trunk_keepalive = 3600` (no OPTIONS pings at the callers) and the default prompts are copied in
already rendered (espeak-ng never runs inside the measured box). Written into the box's SQLite file
once it runs (appliance.store, WAL): an admin (without one every page leads to /setup), the agent
"ann" (role agent, extension 201), and --known customers (default 40 of the 50 callers) with 3 to 5
earlier answered calls each, one a day, every one with a wrap-up (outcome, moods); some are vip. The
other callers are unknown: the box makes them "new" customers at their first ring. The numbers are
+1212555NNNN (US); every fifth caller is an unknown one.

Peers (core 1, like this script and the browser):
- the agent's phone: ONE SIPp uas (bench/sipp/screen_pop_agent.xml), registered first as 201 from
  its port with register.xml. Each call: 180 at once, rings --ring ms, answers, talks --talk ms,
  hangs up.
- the callers: ONE SIPp uac on the trunk's port (bench/sipp/screen_pop_caller.xml), --calls calls
  one at a time (`-l 1 -r 1 -rp GAP`), each with its own caller number (injection file), with
  -trace_msg.
- the agent: headless chromium (Debian's /usr/bin/chromium through Playwright's sync API, a fresh
  context per run) logs in as ann through the real /login form, opens /agent with the HTTP cache
  off (CDP Network.setCacheDisabled: the page weight is a first visit's) and waits for
  `#live[data-live='1']` (the SSE stream is open).

Figures:
- latency per call = pop at - INVITE sent. "pop at" is what the console's agent.js pushes into
  window.switchboardPops when it has rendered a card: performance.timeOrigin + performance.now(),
  epoch ms. "INVITE sent" is SIPp's wall-clock stamp on the "UDP message sent" block of the call's
  first INVITE in the caller's -trace_msg log (loopback: that is when it reached the box; SIPp
  stamps the time of its main-loop round, so it can be a little early). Both are the same machine's
  clock; the script checks the page's clock against Date.now() at the end of each run ("clock
  skew"). A card is tied to its caller through the call record (calls.id = the card's call_id ->
  calls.from_number, read from SQLite after the run).
- box stamp: pop at - the call record's started_at (the box's clock, written before it rings the
  phone, ms precision): the same latency without the INVITE's way into the box.
- split: "SIP part" = the box's call.ringing event time (ringing_at in the card's SSE message:
  the box publishes it when the phone's 180 arrives) - INVITE sent; "web part" = pop at -
  ringing_at (card built, SSE, JSON, render). The script reads ringing_at with a listener of its
  own on the page's EventSource (an init script wraps the constructor; the listener is added after
  agent.js's own, so it runs after the pop has been stamped).
- p50 / p95 (nearest rank) / max per run over the calls; "popped" = cards seen / calls placed.
  The goal (issue 6) is p95 <= 250 ms.
- page weight of /agent: decodedBodySize, encodedBodySize and transferSize (headers included) of
  the navigation entry and every resource entry (performance.getEntriesByType), per file and in
  total, kB = 1000 bytes. Goal: < 100 kB and no framework.
- box CPU = utime+stime over the callers' SIPp run as % of one core; VmRSS before and after.

The exit code is non-zero only when something did not work (a registration, a SIPp run, fewer
cards than calls), never because of a timing. Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import (HOST, PEER_CORE, RTP_RANGE, SCENARIOS, Box, CpuMeter, box_command, finish_sipp, free_media_port,
                    free_port, header, median, percentile, register, require, spawn, start_sipp, table)
from ivr_common import pin_self, seed_prompts, use_venv_commands

AGENT = "201"
AGENT_SECRET = "Spop-201-k8Rw3zQv"
PASSWORD = "Bench-screen-7Qx2-lantern"
DID = "2125550100"  # the number the trunk delivers (any number goes to the trunk's `inbound`)
GOAL_P95_MS = 250.0
GOAL_WEIGHT_KB = 100.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OUTCOMES = ("resolved", "follow-up needed", "sale", "complaint", "information given")
MOODS = ("calm", "talkative", "in a hurry", "nervous", "angry")
FIRST_NAMES = ("Dana", "Fox", "Walter", "Monica", "John", "Jeffrey", "Alex", "Marita", "Melvin", "Ellen")
LAST_NAMES = ("Scully", "Mulder", "Skinner", "Reyes", "Doggett", "Spender", "Krycek", "Covarrubias", "Frohike",
              "Byers")
COMPANIES = ("", "", "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay Industries")

# Records the card messages' ringing_at (the box's call.ringing time) and number, per call_id. The
# listener is added in a microtask, i.e. after agent.js has added its own: it runs after the pop.
INIT_SCRIPT = """
(() => {
  const Original = window.EventSource;
  window.switchboardBenchCards = {};
  function Wrapped(url, init) {
    const source = new Original(url, init);
    queueMicrotask(() => source.addEventListener("card", (e) => {
      try {
        const d = JSON.parse(e.data);
        if (!(d.call_id in window.switchboardBenchCards))
          window.switchboardBenchCards[d.call_id] = {ringing_at: d.ringing_at, number: d.number};
      } catch (_) {}
    }));
    return source;
  }
  Wrapped.prototype = Original.prototype;
  window.EventSource = Wrapped;
})();
"""

WEIGHT_SCRIPT = """
() => [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")].map((e) => ({
  name: e.name, type: e.initiatorType || e.entryType, decoded: e.decodedBodySize, encoded: e.encodedBodySize,
  transfer: e.transferSize}))
"""


# --- the box -------------------------------------------------------------------------
def provision(trunk_port: int) -> str:
    """Extension 201, the trunk delivering straight to it, the CRM's region."""
    return f"""[[extensions]]
number = "{AGENT}"
name = "Ann Agent"
secret = "{AGENT_SECRET}"

[[trunks]]
name = "itsp"
host = "{HOST}"
port = {trunk_port}
inbound = "{AGENT}"
register = false

[crm]
region = "US"
"""


def start_box(run_dir: Path, trunk_port: int) -> tuple[Box, int]:
    """A fresh data folder and `switchboard run` on it (core 0); returns the box and its HTTP port."""
    data_dir = Path(tempfile.mkdtemp(prefix="box-", dir=run_dir))
    (data_dir / "switchboard.toml").write_text("[box]\ntrunk_keepalive = 3600\n")
    seed_prompts(data_dir)
    (data_dir / "provision.toml").write_text(provision(trunk_port))
    sip_port = free_port()
    http_port = free_port(socket.SOCK_STREAM)
    while http_port in (sip_port, trunk_port):
        http_port = free_port(socket.SOCK_STREAM)
    log_path = data_dir / "box.log"
    started = time.monotonic()
    cmd = box_command(data_dir, data_dir / "provision.toml", sip_port, RTP_RANGE, http_port)
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    deadline = started + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("Switchboard ready"):
            spawn(["cat"], priority=False, stdin=proc.stdout, stdout=subprocess.DEVNULL)
            time.sleep(1.0)  # let the prompt preload (all seeded: only file reads) finish
            return Box(proc, data_dir, sip_port, RTP_RANGE, line.strip(), started, log_path), http_port
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit(f"box did not start:\n{log_path.read_text()[-3000:]}")


def caller_numbers(calls: int) -> list[str]:
    return [f"+1212555{100 + i:04d}" for i in range(calls)]


def is_known(index: int, calls: int, known: int) -> bool:
    """Which callers have a customer record: every fifth is unknown (with the defaults), the rest known."""
    unknown = calls - known
    if unknown <= 0:
        return True
    if known <= 0:
        return False
    step = calls / unknown
    return not any(int(k * step + step - 1) == index for k in range(unknown))


def seed_store(data_dir: Path, numbers: list[str], known: int, seed: int) -> int:
    """The web users and the known customers with their past; returns how many customers were made."""
    from appliance.store import calls as store_calls
    from appliance.crm import customer_store as store_customers
    from appliance.store import users as store_users
    from appliance.store import wrapups as store_wrapups
    from appliance.store.db import open_database

    rng = random.Random(seed)
    db = open_database(data_dir / "switchboard.db")
    made = 0
    try:
        store_users.create_user(db, "boss", PASSWORD, "admin")
        store_users.create_user(db, "ann", PASSWORD, "agent", AGENT)
        now = datetime.now(timezone.utc)
        for index, phone in enumerate(numbers):
            if not is_known(index, len(numbers), known):
                continue
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            customer_id = store_customers.create_customer(
                db, region="US", name=name, company=rng.choice(COMPANIES), phones=[phone],
                segment_override="vip" if rng.random() < 0.15 else None,
                notes=rng.choice(["", "Prefers to be called in the morning", "Ask for the order number first"]))
            made += 1
            past = rng.randint(3, 5)
            for k in range(past):
                start = now - timedelta(days=past + 1 - k, minutes=rng.randint(0, 600))
                talk = rng.uniform(60, 600)
                call_id = store_calls.start_call(db, sip_call_id=f"past-{customer_id}-{k}", direction="inbound",
                                                 line="itsp", from_number=phone, from_name=name, to_number=AGENT,
                                                 started_at=start, customer_id=customer_id)
                store_calls.mark_answered(db, call_id, AGENT, at=start + timedelta(seconds=8))
                store_calls.finish_call(db, call_id, "answered", at=start + timedelta(seconds=8 + talk))
                store_wrapups.save_wrapup(db, call_id=call_id, agent=AGENT, customer_id=customer_id,
                                          outcome=rng.choice(OUTCOMES), moods=rng.sample(MOODS, rng.randint(1, 2)),
                                          note=rng.choice(["", "Wants a quote", "Called about the invoice"]),
                                          saved_by="ann")
    finally:
        db.conn.close()
    return made


def read_calls(data_dir: Path) -> dict[str, dict]:
    """The run's inbound call records (not the seeded past) by id, read-only."""
    conn = sqlite3.connect(f"file:{data_dir / 'switchboard.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT id, from_number, started_at, answered_at, ended_at, disposition, customer_id "
                            "FROM calls WHERE sip_call_id NOT LIKE 'past-%'").fetchall()
    finally:
        conn.close()
    return {r["id"]: dict(r) for r in rows}


def iso_epoch(text: str | None) -> float:
    if not text:
        return float("nan")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- peers ---------------------------------------------------------------------------
def scenario_copy(run_dir: Path, name: str, **values: int) -> Path:
    text = (SCENARIOS / name).read_text()
    for key, value in values.items():
        text = text.replace(key, str(value))
    path = run_dir / name
    path.write_text(text)
    return path


_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$")
_FROM_USER = re.compile(r"^(?:from|f)\s*:.*?<?sips?:([^@;>]+)@", re.I)


def digits(number: str) -> str:
    return re.sub(r"\D", "", number or "")[-10:]


def _trace_messages(path: Path, direction: str) -> list[tuple[float, list[str]]]:
    """(wall-clock stamp, stripped non-empty lines) of each message sent or received in a -trace_msg log."""
    found: list[tuple[float, list[str]]] = []
    if not path.is_file():
        return found
    for block in re.split(r"(?m)^(?=-{20,} \d{4}-)", path.read_text(errors="replace")):
        lines = block.splitlines()
        if len(lines) < 3:
            continue
        m = _STAMP.match(lines[0])
        if not m or f" {direction}" not in lines[1]:
            continue
        body = [line.strip() for line in lines[2:] if line.strip()]
        if body:
            # SIPp stamps in local time; strptime reads it back as local time too.
            found.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), body))
    return found


def _first_by_caller(path: Path, direction: str, start_line: str) -> dict[str, float]:
    """Caller number (last 10 digits) -> stamp of the first message whose first line starts with start_line."""
    out: dict[str, float] = {}
    for stamp, body in _trace_messages(path, direction):
        if body[0].startswith(start_line):
            user = next((f.group(1) for f in map(_FROM_USER.match, body) if f), "")
            out.setdefault(digits(user), stamp)
    return out


def sipp_invites(path: Path, direction: str) -> dict[str, float]:
    """Caller number (last 10 digits) -> wall-clock stamp of the first INVITE sent/received in a -trace_msg log."""
    return _first_by_caller(path, direction, "INVITE ")


def sipp_responses(path: Path, status: str) -> dict[str, float]:
    """Caller number (last 10 digits) -> stamp of the first response `status` a uas sent."""
    return _first_by_caller(path, "sent", f"SIP/2.0 {status}")


# --- the browser ---------------------------------------------------------------------
def open_console(browser, base: str):  # type: ignore[no-untyped-def]
    """A fresh context: log in as ann through the form, open /agent (HTTP cache off), wait for the live feed."""
    context = browser.new_context()
    context.set_default_timeout(20000)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    if "/login" in page.url:
        raise SystemExit(f"login as ann failed: {page.inner_text('main')[:300]}")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.goto(f"{base}/agent", wait_until="load")
    page.wait_for_selector("#live[data-live='1']")
    weight = page.evaluate(WEIGHT_SCRIPT)
    scripts = page.evaluate("[...document.scripts].map((s) => s.src || `inline (${s.textContent.length} chars)`)")
    return context, page, weight, [short_name(src, base) for src in scripts]


def short_name(url: str, base: str) -> str:
    return url[len(base):] if url.startswith(base) else url


# --- one run -------------------------------------------------------------------------
def one_run(args: argparse.Namespace, browser, work: Path, index: int) -> dict:  # type: ignore[no-untyped-def]
    run_dir = work / f"run{index + 1}"
    run_dir.mkdir()
    problems: list[str] = []
    trunk_port = free_port()
    box, http_port = start_box(run_dir, trunk_port)
    base = f"http://{HOST}:{http_port}"
    numbers = caller_numbers(args.calls)
    agent_proc = None
    context = None
    try:
        made = seed_store(box.data_dir, numbers, args.known, args.seed)
        agent_dir = run_dir / "agent"
        agent_dir.mkdir()
        agent_port = free_port()
        while agent_port in (trunk_port, box.sip_port, http_port):
            agent_port = free_port()
        reg = register(box, agent_dir, {AGENT: AGENT_SECRET}, port=agent_port)
        if reg.successful != 1:
            raise SystemExit(f"201 did not register: {reg.errors or reg.stdout[-1500:]}")
        agent_proc, agent_began = start_sipp(
            agent_dir, None, scenario_copy(run_dir, "screen_pop_agent.xml", RING_MS=args.ring, TALK_MS=args.talk),
            "-p", str(agent_port), "-m", str(args.calls), "-mp", str(free_media_port()), "-trace_msg")

        context, page, weight, scripts = open_console(browser, base)
        if page.evaluate("window.switchboardPops.length"):
            problems.append("cards on the console before the first call")
        time.sleep(0.5)

        cdir = run_dir / "callers"
        inf = run_dir / "callers.csv"
        inf.write_text("\n".join(["SEQUENTIAL"] + numbers) + "\n")
        limit = int(args.calls * max(args.gap, args.ring + args.talk + 200) / 1000 + 60)
        rss_before = box.rss()
        meter = CpuMeter(box.pid)
        proc, began = start_sipp(cdir, f"{HOST}:{box.sip_port}", scenario_copy(run_dir, "screen_pop_caller.xml"),
                                 "-p", str(trunk_port), "-s", DID, "-inf", str(inf), "-m", str(args.calls),
                                 "-l", "1", "-r", "1", "-rp", str(args.gap), "-mp", str(free_media_port()),
                                 "-timeout", str(limit), "-timeout_error", "-trace_msg")
        callers = finish_sipp(proc, began, cdir, timeout=limit + 30)
        cpu = meter.stop()
        rss_after = box.rss()
        # Let the last card arrive if it is still on its way.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and page.evaluate("window.switchboardPops.length") < args.calls:
            time.sleep(0.2)
        pops = page.evaluate("window.switchboardPops")
        bench_cards = page.evaluate("window.switchboardBenchCards")
        skew = page.evaluate("(() => { const a = Date.now(); const b = performance.timeOrigin + performance.now();"
                             " return b - a; })()")
        context.close()
        context = None
        agent = finish_sipp(agent_proc, agent_began, agent_dir, timeout=5)
        agent_proc = None
    finally:
        if context is not None:
            context.close()
        if agent_proc is not None and agent_proc.poll() is None:
            agent_proc.kill()
        box.stop()

    records = read_calls(box.data_dir)
    invites = sipp_invites(next(cdir.glob("*_messages.log"), Path("/nonexistent")), "sent")
    rang = sipp_responses(next(agent_dir.glob("*_messages.log"), Path("/nonexistent")), "180")
    known = {digits(n) for i, n in enumerate(numbers) if is_known(i, len(numbers), args.known)}
    rows: list[dict] = []
    seen: set[str] = set()
    for pop in pops:
        call_id = pop["call_id"]
        if call_id in seen:
            problems.append(f"card {call_id} popped twice")
            continue
        seen.add(call_id)
        record = records.get(call_id)
        if record is None:
            problems.append(f"card {call_id} has no call record")
            continue
        caller = digits(record["from_number"])
        at = pop["at"] / 1000
        sent = invites.get(caller)
        ringing = (bench_cards.get(call_id) or {}).get("ringing_at")
        rows.append({
            "number": record["from_number"], "known": caller in known,
            "ms": 1000 * (at - sent) if sent is not None else float("nan"),
            "box_ms": 1000 * (at - iso_epoch(record["started_at"])),
            "sip_ms": 1000 * (ringing - sent) if ringing is not None and sent is not None else float("nan"),
            "web_ms": 1000 * (at - ringing) if ringing is not None else float("nan"),
            "phone_ms": 1000 * (rang[caller] - sent) if caller in rang and sent is not None else float("nan"),
        })
    lat = [r["ms"] for r in rows if r["ms"] == r["ms"]]
    box_lat = [r["box_ms"] for r in rows if r["box_ms"] == r["box_ms"]]
    sip = [r["sip_ms"] for r in rows if r["sip_ms"] == r["sip_ms"]]
    web = [r["web_ms"] for r in rows if r["web_ms"] == r["web_ms"]]
    phone = [r["phone_ms"] for r in rows if r["phone_ms"] == r["phone_ms"]]
    popped = len(rows)
    if popped < args.calls:
        problems.append(f"{popped} cards for {args.calls} calls")
    if len(lat) < popped:
        problems.append(f"{popped - len(lat)} cards without a matching INVITE in the caller log")
    if callers.successful != args.calls or callers.failed:
        problems.append(f"callers: {callers.successful} ok / {callers.failed} failed of {args.calls}: "
                        f"{callers.errors.strip()[-600:]}")
    if agent.failed:
        problems.append(f"agent phone: {agent.failed} failed calls: {agent.errors.strip()[-600:]}")
    result = {
        "calls": args.calls, "popped": popped,
        "p50": percentile(lat, 50), "p95": percentile(lat, 95), "max": max(lat, default=float("nan")),
        "box_p50": percentile(box_lat, 50), "box_p95": percentile(box_lat, 95),
        "sip_p50": percentile(sip, 50), "web_p50": percentile(web, 50), "web_p95": percentile(web, 95),
        "phone_p50": percentile(phone, 50),
        "known_p50": percentile([r["ms"] for r in rows if r["known"]], 50),
        "new_p50": percentile([r["ms"] for r in rows if not r["known"]], 50),
        "cpu_pct": cpu["cpu_pct"], "rss_before": rss_before, "rss": rss_after, "runq": cpu["runq_pct"],
        "other": cpu["other_pct"], "skew": skew, "weight": weight, "scripts": scripts, "base": base, "problems": problems,
    }
    print(f"  run {index + 1}: {popped}/{args.calls} cards, {made} known customers seeded, callers "
          f"{callers.successful} ok / {callers.failed} failed, agent phone {agent.successful} ok / {agent.failed} "
          f"failed; INVITE -> pop p50/p95/max {result['p50']:.1f}/{result['p95']:.1f}/{result['max']:.1f} ms "
          f"(known {result['known_p50']:.1f}, new {result['new_p50']:.1f}); box stamp p50/p95 "
          f"{result['box_p50']:.1f}/{result['box_p95']:.1f}; INVITE -> phone's 180 {result['phone_p50']:.1f}, "
          f"-> box ringing {result['sip_p50']:.1f}, ringing -> pop {result['web_p50']:.1f} ms (p50); box CPU "
          f"{cpu['cpu_s']:.2f} s over {cpu['wall']:.0f} s = {cpu['cpu_pct']:.2f} %, RSS {rss_before:.1f} -> "
          f"{rss_after:.1f} MB; page clock - Date.now() {skew:+.2f} ms; runq {cpu['runq_pct']:.2f} %, other core0 "
          f"{cpu['other_pct']:.1f} %", flush=True)
    with open(run_dir / "calls.csv", "w") as f:  # one line per card, kept with --keep
        f.write("order,number,known,invite_to_pop_ms,started_at_to_pop_ms,invite_to_ringing_ms,ringing_to_pop_ms,"
                "invite_to_phone_180_ms\n")
        for n, r in enumerate(rows, 1):
            f.write(f"{n},{r['number']},{int(r['known'])},{r['ms']:.2f},{r['box_ms']:.2f},{r['sip_ms']:.2f},"
                    f"{r['web_ms']:.2f},{r['phone_ms']:.2f}\n")
    if args.verbose:
        for r in rows:
            print(f"    {r['number']} {'known' if r['known'] else 'new  '}: {r['ms']:7.1f} ms (box stamp "
                  f"{r['box_ms']:6.1f}, INVITE -> ringing {r['sip_ms']:6.1f}, ringing -> pop {r['web_ms']:6.1f})")
    for problem in problems:
        print(f"    PROBLEM: {problem}", flush=True)
    if args.keep:
        shutil.copytree(run_dir, Path(args.keep) / run_dir.name, dirs_exist_ok=True, ignore_dangling_symlinks=True)
    return result


def weight_table(weight: list[dict], base: str) -> tuple[str, float]:
    rows = []
    total = {"decoded": 0, "encoded": 0, "transfer": 0}
    for entry in weight:
        rows.append([short_name(entry["name"], base), entry["type"], entry["decoded"], entry["encoded"],
                     entry["transfer"], round(entry["decoded"] / 1000, 1), round(entry["transfer"] / 1000, 1)])
        for key in total:
            total[key] += entry[key]
    rows.append(["total", "", total["decoded"], total["encoded"], total["transfer"], round(total["decoded"] / 1000, 1),
                 round(total["transfer"] / 1000, 1)])
    return table(["file", "type", "decoded B", "encoded B", "transfer B", "decoded kB", "transfer kB"], rows), \
        total["decoded"] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs, a fresh box each (default 3)")
    ap.add_argument("--calls", type=int, default=50, help="calls per run (default 50)")
    ap.add_argument("--known", type=int, default=None, help="callers with a customer record (default 4/5 of --calls)")
    ap.add_argument("--ring", type=int, default=500, help="ms the agent's phone rings before it answers")
    ap.add_argument("--talk", type=int, default=300, help="ms the agent talks before hanging up")
    ap.add_argument("--gap", type=int, default=1500, help="ms between call starts (one call at a time)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the customers' names and pasts")
    ap.add_argument("--keep", metavar="DIR", help="copy each run's data folder, SIPp logs into DIR")
    ap.add_argument("--verbose", action="store_true", help="print every call's figures")
    args = ap.parse_args()
    if args.known is None:
        args.known = args.calls * 4 // 5
    args.known = max(0, min(args.known, args.calls))
    require("sipp")
    if not Path(CHROMIUM).is_file():
        sys.exit(f"missing {CHROMIUM} (apt-get install -y chromium)")
    use_venv_commands()
    pin_self(PEER_CORE)  # this script, and so the Playwright driver and chromium, on the peers' core
    header(f"Screen pop: {args.calls} calls from a trunk straight to extension {AGENT} (one at a time, every "
           f"{args.gap} ms; phone rings {args.ring} ms, talks {args.talk} ms), {args.known} known callers, "
           f"agent ann in headless chromium; {args.runs} runs")
    from playwright.sync_api import sync_playwright

    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-screen-pop-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        print(f"chromium {browser.version}", flush=True)
        try:
            runs = [one_run(args, browser, Path(tmp), i) for i in range(args.runs)]
        finally:
            browser.close()
    failed = any(r["problems"] for r in runs)

    keys = ["p50", "p95", "max", "box_p50", "box_p95", "sip_p50", "web_p50", "web_p95", "cpu_pct", "rss_before",
            "rss", "runq", "other"]
    m = {k: median([float(r[k]) for r in runs]) for k in keys}

    def row(label: str, r: dict, popped: str) -> list[object]:
        return [label, popped, r["p50"], r["p95"], r["max"], r["box_p50"], r["box_p95"], r["sip_p50"], r["web_p50"],
                r["web_p95"], r["cpu_pct"], f"{r['rss_before']:.1f} -> {r['rss']:.1f}", r["runq"], r["other"]]

    print()
    print(f"INVITE sent -> card in the DOM, ms (goal p95 <= {GOAL_P95_MS:g} ms); box stamp = from the call "
          f"record's started_at; SIP part = INVITE -> the box's call.ringing; web part = call.ringing -> card")
    print(table(["run", "popped", "p50 ms", "p95 ms", "max ms", "box stamp p50", "box stamp p95", "SIP part p50",
                 "web part p50", "web part p95", "box CPU %", "RSS MB", "runq wait %", "other core0 %"],
                [row(str(i + 1), r, f"{r['popped']}/{r['calls']}") for i, r in enumerate(runs)]
                + [row("median", m, f"{sum(r['popped'] for r in runs)}/{sum(r['calls'] for r in runs)}")]))
    print()
    first = runs[0]
    text, total_kb = weight_table(first["weight"], first["base"])
    print(f"page weight of /agent (run 1, first visit, HTTP cache off; kB = 1000 B; goal < {GOAL_WEIGHT_KB:g} kB, "
          f"no framework):")
    print(text)
    print(f"scripts on the page: {', '.join(first['scripts']) or 'none'}")
    others = {round(weight_table(r["weight"], r["base"])[1], 1) for r in runs[1:]}
    if others - {round(total_kb, 1)}:
        print(f"(other runs: {', '.join(f'{k:.1f}' for k in sorted(others))} kB decoded)")
    print()
    print(f"medians of {args.runs} runs: INVITE -> card p50 {m['p50']:.1f} ms, p95 {m['p95']:.1f} ms, max "
          f"{m['max']:.1f} ms; box stamp p50 {m['box_p50']:.1f} / p95 {m['box_p95']:.1f} ms; cards "
          f"{sum(r['popped'] for r in runs)}/{sum(r['calls'] for r in runs)}; box CPU {m['cpu_pct']:.2f} %, RSS "
          f"{m['rss']:.1f} MB; page {total_kb:.1f} kB")
    if failed:
        print("something did not work (see PROBLEM lines above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
