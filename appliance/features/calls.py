"""Calls: the call log (with the CRM link), the outbound policy, the B2BUA, the dial plan and the UA core;
the SIP layer starts serving here."""
from __future__ import annotations

import json
import logging
from typing import Any

from ..calls import ivr_definitions, queue_definitions
from ..calls.b2bua import B2BUA
from ..calls.customer_link import CrmCustomerLink
from ..calls.inbound import InboundCalls
from ..calls.outbound_policy import OutboundPolicy, PolicySettings
from ..calls.recording import RecordingPolicy
from ..calls.records import CallLog
from ..calls.router import DialPlan
from ..media.prompts import PromptError, PromptLibrary
from ..provisioning import ALLOW_INTERNATIONAL, PROMPT_TEXTS, PROMPT_VOICE, SECURITY_POLICY
from ..sip.core import SipCore
from ..store import directory
from . import Context, Teardown

log = logging.getLogger("switchboard.box")


def _stored_texts(value: object) -> dict[str, str] | None:
    """Prompt texts saved by provisioning (a JSON object), or None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) and value else None


def policy_settings(ctx: Context) -> PolicySettings:
    """[security] as provisioned; [box] allow_international when provisioning never set it."""
    db = ctx.db

    def flag(key: str, default: bool) -> bool:
        stored = directory.get_setting(db, key)
        return default if stored is None else stored in (True, "1", "true", 1)

    callbacks = directory.get_setting(db, SECURITY_POLICY["callbacks"])
    return PolicySettings(allow_international=flag(ALLOW_INTERNATIONAL, ctx.settings.allow_international),
                          allow_premium=flag(SECURITY_POLICY["allow_premium"], False),
                          allow_satellite=flag(SECURITY_POLICY["allow_satellite"], False),
                          callbacks=str(callbacks or "national"))


async def setup(ctx: Context) -> Teardown:
    """Build the call path and start answering SIP."""
    s, loop, db = ctx.settings, ctx.loop, ctx.db
    lines = ctx.trunk_directory
    crm = CrmCustomerLink(db, ctx.bus, loop)
    call_log = CallLog(db, ctx.bus, crm)
    allocator = ctx.media.allocator
    recording = RecordingPolicy(s.data_dir, s.record_calls, loop.time)
    b2bua = B2BUA(loop, ctx.layer, ctx.endpoint, ctx.location, call_log, ctx.media,
                  ring_timeout=lambda: s.ring_timeout, recording=recording,
                  max_unconfirmed=lambda: max(1, int(allocator.capacity // 2 * s.unanswered_media_share)))
    prompts = PromptLibrary(s.data_dir / "prompts", voice=directory.get_setting(db, PROMPT_VOICE) or s.prompt_voice,
                            texts=_stored_texts(directory.get_setting(db, PROMPT_TEXTS)))
    policy = OutboundPolicy(lambda: policy_settings(ctx), lambda: crm.settings().region, s.international_prefixes)

    def ivr_by_number(number: str) -> str | None:
        menu = ivr_definitions.menu_by_number(db, number)
        return menu.name if menu is not None else None

    def queue_by_number(number: str) -> str | None:
        queue = queue_definitions.queue_by_number(db, number)
        return queue.name if queue is not None else None

    dial_plan = DialPlan(lambda number: directory.get_extension(db, number), lines.rows, policy,
                         ivr_by_number=ivr_by_number, queue_by_number=queue_by_number)
    inbound = InboundCalls(auth=ctx.auth, b2bua=b2bua, dial_plan=dial_plan, call_log=call_log,
                           extension=lambda number: directory.get_extension(db, number),
                           trunk_for=lines.for_peer, trunk_by_name=lines.by_name,
                           max_calls=lambda: s.max_calls_per_extension)
    core = SipCore(auth=ctx.auth, registrar=ctx.registrar, invites=inbound,
                   on_registered=ctx.transport.mark_registered)
    ctx.provide(crm=crm, call_log=call_log, recording=recording, b2bua=b2bua, prompts=prompts, policy=policy,
                dial_plan=dial_plan, core=core)
    ctx.layer.start(core)
    # Spoken prompts are rendered by espeak-ng on first boot: off the loop, so calls are not held up.
    preload = loop.run_in_executor(None, _preload, prompts)

    async def teardown() -> None:
        preload.cancel()
    return teardown


def _preload(prompts: Any) -> None:
    try:
        prompts.preload()
    except PromptError as exc:
        log.error("cannot prepare the voice prompts: %s", exc)
