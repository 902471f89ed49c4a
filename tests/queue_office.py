"""A box with a queue, trunks to call in from, and SIPp agents: shared by the queue and callback tests."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from peers import (
    LOCALHOST,
    SCENARIOS,
    RunningBox,
    free_media_port,
    free_port,
    sipp,
    users_file,
)
from queue_peers import AgentPhones, Uas, query, queue_caller, start_caller, wait_for

SECRETS = {"201": "s3cret-201", "202": "s3cret-202", "203": "s3cret-203"}
TRUNKS = 4  # one source port per simultaneous caller: the box knows a trunk by its address

SHORT_PROMPTS = """
[prompts]
goodbye = "Bye."
closed = "Closed."
queue_position = "Position"
expected_wait = "Wait"
minutes = "minutes"
callback_offer = "Callback press"
callback_confirmed = "Confirmed. Bye."
callback_number = "Number"
callback_confirm = "Right? Press one."
callback_enter = "Type the number."
queue_full = "Busy."
queue_timeout = "Sorry."
"""


def provision(ports: list[int], queue: str, hours: str = "", customers: str = "", last_inbound: str = "queue:sales") -> str:
    """Extensions 201-203, trunks itsp0..N delivering to queue:sales (the last one to last_inbound), and the queue.

    Extensions dial out on itsp0 with the prefix 9.
    """
    trunks = "".join(f"""
[[trunks]]
name = "itsp{i}"
host = "{LOCALHOST}"
port = {port}
inbound = "{last_inbound if i == len(ports) - 1 else 'queue:sales'}"
{'outbound_prefix = "9"' if i == 0 else ''}
""" for i, port in enumerate(ports))
    extensions = "".join(f"""
[[extensions]]
number = "{number}"
name = "Agent {number}"
secret = "{secret}"
""" for number, secret in SECRETS.items())
    return extensions + trunks + hours + queue + SHORT_PROMPTS + customers


def queue_table(**options: object) -> str:
    """A [[queue]] named sales, number 600, with test-friendly defaults overridden by options."""
    values: dict[str, object] = {"name": "sales", "number": "600", "strategy": "longest-idle",
                                 "members": ["201", "202", "203"], "ring_timeout": 4, "wrapup": 0,
                                 "announce_every": 0, "announce_position": False, "announce_wait": False,
                                 "max_wait": 60, "callback_retry": 5,
                                 # SIPp replays a pcap with its own RTP timestamps, so the same key twice
                                 # in a row looks like a retransmission: "*" then "1" confirms a callback.
                                 "callback_key": "*"}
    values.update(options)
    lines = ["[[queue]]"]
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, str) and value.startswith("["):
            lines.append(f"{key} = {value}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = [" + ", ".join(f'"{v}"' if isinstance(v, str) else v for v in value) + "]")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


class Office:
    """A running box with a sales queue, its trunk ports and its agents' phones."""

    def __init__(self, box_factory, workdir: Path, queue: str, hours: str = "",  # type: ignore[no-untyped-def]
                 customers: str = "", name: str = "box", last_inbound: str = "queue:sales",
                 web: bool = False) -> None:
        self.ports = [free_port() for _ in range(TRUNKS)]
        self.text = provision(self.ports, queue, hours, customers, last_inbound)
        self.box: RunningBox = box_factory(self.text, name=name, web=web)
        self.workdir = workdir
        self.phones = AgentPhones(self.box, workdir, SECRETS)
        self.customers: list[Uas] = []
        self._callers = 0

    def cli_ok(self, *args: str) -> str:
        """Run a CLI command that must succeed; its output."""
        result = self.box.cli(*args)
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def login(self, *extensions: str, gap: float = 0.0) -> None:
        """Log agents in from the command line, in this order."""
        for extension in extensions:
            self.cli_ok("agent", "login", extension)
            if gap:
                time.sleep(gap)

    def call(self, number: str, trunk: int = 0, **scenario) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        """A caller with caller ID number rings in on trunk itspN (in the background)."""
        self._callers += 1
        path = queue_caller(self.workdir, f"caller_{self._callers}", **scenario)
        return start_caller(self.box, path, self.ports[trunk], self.workdir, number)

    def dial_feature(self, extension: str, code: str) -> None:
        """Extension dials a feature code with SIPp (digest) and the box answers, speaks, hangs up."""
        csv = users_file(self.workdir, {extension: SECRETS[extension]}, f"feature_{extension}.csv")
        result = sipp(f"{LOCALHOST}:{self.box.sip_port}", "-sf", str(SCENARIOS / "call_uac_wait_bye.xml"),
                      "-inf", str(csv), "-s", code, "-m", "1", "-mp", str(free_media_port()),
                      "-timeout", "20", "-timeout_error", cwd=self.workdir)
        assert result.returncode == 0, result.errors + self.box.log()[-3000:]

    def entries(self) -> list[dict]:
        """queue_entries rows in arrival order."""
        return query(self.box, "SELECT * FROM queue_entries ORDER BY entered_at")

    def offers(self) -> list[dict]:
        """queue_offers rows in ring order."""
        return query(self.box, "SELECT * FROM queue_offers ORDER BY rang_at, id")

    def wait_entries(self, count: int, outcome: str | None = None, timeout: float = 30.0) -> list[dict]:
        """Wait until count entries have an outcome (or the given one)."""
        def done() -> list[dict] | None:
            rows = self.entries()
            finished = [r for r in rows if (r["outcome"] == outcome if outcome else r["outcome"] or r["answered_at"])]
            return rows if len(finished) >= count else None
        return wait_for(done, timeout, f"{count} queue entries ({outcome or 'any outcome'})")

    def status(self) -> dict:
        """`switchboard queue status --json`."""
        return self.box.cli_json("queue", "status")  # type: ignore[return-value]

    def agent_state(self, extension: str) -> dict:
        """One agent's live state from `queue status`."""
        for queue in self.status()["queues"]:
            for agent in queue["agents"]:
                if agent["extension"] == extension:
                    return agent
        raise AssertionError(f"agent {extension} not in queue status")

    def customer(self, scenario: Path, calls: int = 1, trunk: int = 0) -> Uas:
        """A SIPp uas where trunk itspN points: the customer a callback dials out to."""
        uas = Uas(scenario, self.workdir, calls, port=self.ports[trunk]).start()
        self.customers.append(uas)
        return uas

    def stop(self) -> None:
        """Kill the phones and the customers (a failed test must not leave SIPp running)."""
        self.phones.stop()
        for uas in self.customers:
            uas.stop()
