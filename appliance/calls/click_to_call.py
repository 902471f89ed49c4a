"""Click-to-call: the box rings the agent's phone first, then dials the customer and bridges the two."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import phonenumbers

from ..crm.phones import normalise as to_e164
from ..media.channel import MediaChannel
from ..media.tones import busy_tone, ringback
from ..sip.targets import TrunkPeer
from .b2bua import B2BUA
from .outbound_call import OutboundCall, Target
from ..store import directory
from .records import CallLog
from .router import DialPlan, Route

log = logging.getLogger("switchboard.calls.click")

AGENT_RING_SECONDS = 30.0
CUSTOMER_RING_SECONDS = 45.0


def dial_string(e164: str, region: str, trunk_prefix: str, international_prefix: str) -> str:
    """What the agent would dial on the desk phone for an E.164 number: prefix + national or international form."""
    parsed = phonenumbers.parse(e164, None)
    if phonenumbers.region_code_for_number(parsed) == region.upper() or \
            parsed.country_code == phonenumbers.country_code_for_region(region.upper()):
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return trunk_prefix + "".join(ch for ch in national if ch.isdigit())
    return trunk_prefix + international_prefix + e164.lstrip("+")


class ClickToCall:
    """Places calls asked for from the web, with the same dialling rules as the agent's own phone."""

    def __init__(self, b2bua: B2BUA, call_log: CallLog, db, dial_plan: DialPlan,  # type: ignore[no-untyped-def]
                 trunk_by_name: Callable[[str], TrunkPeer | None], region: Callable[[], str],
                 international_prefix: str, ringback_region: str,
                 trunks: Callable[[], list[dict]] | None = None) -> None:
        self.b2bua = b2bua
        self.call_log = call_log
        self.db = db
        self.dial_plan = dial_plan
        self.trunk_by_name = trunk_by_name
        self.region = region
        self.international_prefix = international_prefix
        self.ringback_region = ringback_region
        self.trunks = trunks or (lambda: directory.list_trunks(db))  # trunks and modem lines, with prefixes

    def route(self, caller: dict, number: str) -> Route:
        """The dial plan's decision for this number, as if the agent had dialled it."""
        wanted = number.strip()
        if directory.get_extension(self.db, wanted) is not None:
            return self.dial_plan.from_extension(caller, wanted)
        e164 = to_e164(wanted, self.region())
        if e164 is None:
            raise ValueError(f"{number!r} is not a phone number")
        prefixes = [t.get("outbound_prefix") for t in self.trunks()]
        prefix = next((p for p in prefixes if p is not None), None)
        if prefix is None:
            raise ValueError("no line to call out on: no trunk has an outbound prefix")
        return self.dial_plan.from_extension(caller, dial_string(e164, self.region(), prefix,
                                                                 self.international_prefix))

    def start(self, extension: str, number: str) -> str:
        """Ring the agent's phone now; returns the call record id. ValueError says why it cannot be placed."""
        caller = directory.get_extension(self.db, extension)
        if caller is None:
            raise ValueError(f"no extension {extension}")
        bindings = self.b2bua.location.lookup(extension)
        if not bindings:
            raise ValueError(f"your phone ({extension}) is not registered")
        route = self.route(caller, number)
        if route.kind == "reject":
            raise ValueError(route.reason or f"refused ({route.status})")
        customer = self._customer_targets(route)
        info = self.call_log.start(sip_call_id=uuid.uuid4().hex + "@switchboard",
                                   direction="outbound" if route.trunk else "internal",
                                   line=route.trunk or "internal", from_number=extension,
                                   from_name=caller.get("name") or "", to_number=route.number)
        out = OutboundCall(self.b2bua, info)
        agent: list[Target] = [(b.request_uri(), b.source, extension, None) for b in bindings]

        def agent_up(channel: MediaChannel) -> None:
            out.dial_customer(customer, CUSTOMER_RING_SECONDS,
                              on_ringing=lambda: channel.play(ringback(self.ringback_region)),
                              on_answered=lambda: log.info("click-to-call %s: %s answered", info.record_id,
                                                           route.number),
                              on_failed=lambda status: self._customer_failed(out, channel, status))

        out.ring_agent(agent, AGENT_RING_SECONDS, agent_up,
                       lambda status: log.info("click-to-call %s: %s did not answer (%d)", info.record_id,
                                               extension, status),
                       show=route.number)
        log.info("click-to-call %s: ringing %s for %s", info.record_id, extension, route.number)
        return info.record_id

    def _customer_targets(self, route: Route) -> list[Target]:
        if route.kind == "extension":
            bindings = self.b2bua.location.lookup(route.number)
            if not bindings:
                raise ValueError(f"extension {route.number} has no phone registered")
            return [(b.request_uri(), b.source, route.number, None) for b in bindings]
        if route.kind != "trunk" or route.trunk is None:
            raise ValueError(f"{route.number} is a {route.kind}, not a number to call")
        trunk = self.trunk_by_name(route.trunk)
        if trunk is None:
            raise ValueError(f"the line {route.trunk} is not ready")
        return [(f"sip:{route.number}@{trunk.domain}", trunk.peer, trunk.name, trunk)]

    def _customer_failed(self, out: OutboundCall, channel: MediaChannel, status: int) -> None:
        """The customer did not answer: the agent hears a busy tone, then the box hangs up."""
        log.info("click-to-call %s: %s failed (%d)", out.info.record_id, out.info.to_number, status)
        if channel.closed:
            out.hangup()
            return
        channel.play(busy_tone(), out.hangup)
