"""Composition root: builds the box from its settings, starts it and stops it."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from hw.leds import StatusLeds

from .api import BoxApi
from .bans import BanKeeper
from .bus import EventBus
from .calls.click_to_call import ClickToCall
from .calls.customer_link import CrmCustomerLink
from .calls.ivr_calls import IvrDestination
from .calls.queue_service import QueueService
from .control import SOCKET_NAME, ControlServer
from .calls.records import CallLog
from .calls.recording import RecordingPolicy
from .calls.outbound_policy import OutboundPolicy, PolicySettings
from .calls.router import DialPlan
from .config import Settings, load_provisioning
from .media.ports import PortAllocator
from .media.prompts import PromptError, PromptLibrary
from .media.relay import MediaEngine
from .netinfo import primary_address
from .calls.b2bua import B2BUA
from .calls.inbound import InboundCalls
from .sip.core import KNOWN_METHODS, RequestAuthenticator, SipCore
from .sip.targets import TrunkPeer
from .sip.digest import DigestAuthenticator, NonceManager
from .sip.endpoint import LocalEndpoint
from .sip.registrar import Binding, LocationService, Registrar, RegistrarPolicy
from .sip.transaction import TransactionLayer
from .sip.transport import Peer, SipTransport, TcpLimits
from .sip.trunk import TrunkClient, TrunkStatus
from .sip.uri import UriError, parse_sip_uri
from .status_leds import StatusLedPolicy
from .store import calls as store_calls
from .store import directory, registrations
from .calls import ivr_definitions as store_ivr
from .calls import queue_definitions
from .store.db import Checkpointer, open_database, transaction
from .provisioning import ALLOW_INTERNATIONAL, SECURITY_POLICY, apply_provisioning
from .lines.modem_config import SETTINGS_KEY as MODEM_SETTINGS
from .lines.modem_config import ModemConfig

log = logging.getLogger("switchboard.box")
TRUNK_STATUS_KEY = "trunk_status:"
PROMPT_VOICE_KEY = "prompts.voice"
PROMPT_TEXTS_KEY = "prompts.texts"


def raise_open_files_limit() -> None:
    """Use the hard limit on open files: sockets for TCP phones and RTP must not run out before our own limits."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 65536
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError) as exc:
        log.info("could not raise the open files limit: %s", exc)


def _stored_texts(value: object) -> dict[str, str] | None:
    """Prompt texts saved by provisioning (a JSON object), or None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) and value else None


class Box:
    """The one process: SIP, media, trunks and the store, on one asyncio loop."""

    def __init__(self, settings: Settings, provision: Path | None = None) -> None:
        self.settings = settings
        self.provision = provision
        self.bus = EventBus()
        self.db = None
        self.transport: SipTransport | None = None
        self.trunks: dict[str, TrunkClient] = {}
        self.lines: dict = {}  # modem lines (appliance.lines.modem_gateway.ModemGateway) by name
        self.started_at = 0.0
        self.ready_after = 0.0
        self.leds: StatusLeds | None = None
        self.led_policy: StatusLedPolicy | None = None

    async def start(self) -> None:
        """Open the store, apply provisioning, bind SIP and start the trunks."""
        began = time.monotonic()
        s = self.settings
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._start_leds()  # first: the power LED blinks while the rest starts
        self.db = db = open_database(s.db_path)
        self.checkpointer = Checkpointer(db, s.db_path).start()
        interrupted = store_calls.close_interrupted(db)
        if interrupted:
            log.warning("closed %d call records left open by an unclean stop", interrupted)
        if self.provision is not None:
            summary = apply_provisioning(db, load_provisioning(self.provision), s.realm)
            log.info("provisioned from %s: %s", self.provision, json.dumps(summary))
        self.ban_keeper = BanKeeper(db, self.bus, s, self._trunk_hosts)
        self.bans = self.ban_keeper.bans
        secret = directory.get_setting(db, "nonce_secret")
        if secret is None:
            secret = os.urandom(32).hex()
            directory.set_setting(db, "nonce_secret", secret)
        nonces = NonceManager(bytes.fromhex(secret), lifetime=s.nonce_lifetime)
        auth = DigestAuthenticator(s.realm, lambda user, algorithm: directory.get_ha1(db, user, algorithm, s.realm),
                                   nonces, s.auth_algorithms)

        raise_open_files_limit()
        self.transport = SipTransport(loop, s.bind, s.sip_port, handler=lambda m, p: None, tcp_limits=TcpLimits(
            s.tcp_max_connections, s.tcp_max_per_source, s.tcp_idle_timeout, s.tcp_registered_idle))
        self.transport.is_blocked = self.bans.is_banned
        await self.transport.start()
        advertise = s.advertise or (s.bind if s.bind not in ("0.0.0.0", "::") else primary_address())
        self.endpoint = LocalEndpoint(advertise, self.transport.port)

        self._dirty_registrations: set[str] = set()
        self.location = LocationService(on_change=self._bindings_changed)
        self._restore_bindings()
        registrar = Registrar(self.location, RegistrarPolicy(
            s.register_min_expires, s.register_max_expires, s.register_default_expires))
        media_host = s.bind if s.bind not in ("::",) else "0.0.0.0"
        self.media = MediaEngine(loop, PortAllocator(s.rtp_port_min, s.rtp_port_max, media_host))
        self.crm = CrmCustomerLink(db, self.bus, loop)
        self.call_log = CallLog(db, self.bus, self.crm)
        layer = TransactionLayer(loop, self.transport, tu=None, methods=KNOWN_METHODS)  # type: ignore[arg-type]
        self.layer = layer
        allocator = self.media.allocator
        recording = RecordingPolicy(s.data_dir, s.record_calls, loop.time)
        self.b2bua = B2BUA(loop, layer, self.endpoint, self.location, self.call_log, self.media,
                           ring_timeout=lambda: s.ring_timeout, recording=recording,
                           max_unconfirmed=lambda: max(1, int(allocator.capacity // 2 * s.unanswered_media_share)))
        self.prompts = PromptLibrary(s.data_dir / "prompts",
                                     voice=directory.get_setting(db, PROMPT_VOICE_KEY) or s.prompt_voice,
                                     texts=_stored_texts(directory.get_setting(db, PROMPT_TEXTS_KEY)))
        self.ivr = IvrDestination(loop, self.b2bua, db, self.prompts, recording,
                                  ringback_region=s.ringback, dtmf_inband=s.dtmf_inband)
        self.b2bua.add_destination("ivr", self.ivr)
        self.policy = OutboundPolicy(self._policy_settings, lambda: self.crm.settings().region,
                                     s.international_prefixes)
        self.queues = QueueService(loop, self.b2bua, db, self.prompts, self.bus, self.call_log, self.ivr,
                                   trunk_by_name=self._trunk_by_name, policy=self.policy, ringback_region=s.ringback,
                                   dtmf_inband=s.dtmf_inband,
                                   line_names=lambda: [t["name"] for t in directory.list_trunks(db)] + list(self.lines))
        self.b2bua.add_destination("queue", self.queues)
        self.b2bua.add_destination("feature", self.queues.feature)
        self.ivr.queue = self.queues.join
        self.ivr.callbacks = self.queues.callback_from_ivr
        dial_plan = DialPlan(lambda number: directory.get_extension(db, number),
                             lambda: directory.list_trunks(db) + self._line_rows(), self.policy,
                             ivr_by_number=self._ivr_by_number, queue_by_number=self._queue_by_number)
        self.click_to_call = ClickToCall(self.b2bua, self.call_log, db, dial_plan, self._trunk_by_name,
                                         lambda: self.crm.settings().region, s.international_prefixes[0],
                                         s.ringback, trunks=lambda: directory.list_trunks(db) + self._line_rows())
        request_auth = RequestAuthenticator(
            auth, self.bans, on_ban=lambda source, user: self.bus.publish("security.ban", source=source, user=user))
        inbound = InboundCalls(auth=request_auth, b2bua=self.b2bua, dial_plan=dial_plan, call_log=self.call_log,
                               extension=lambda number: directory.get_extension(db, number),
                               trunk_for=self._trunk_for, trunk_by_name=self._trunk_by_name,
                               max_calls=lambda: s.max_calls_per_extension)
        self.core = SipCore(auth=request_auth, registrar=registrar, invites=inbound,
                            on_registered=self.transport.mark_registered)
        layer.tu = self.core
        self.transport.handler = layer.handle
        layer.start()
        self._purge_timer = loop.call_later(30.0, self._purge)
        self._flush_timer = loop.call_later(1.0, self._flush_tick)
        for row in directory.list_trunks(db, include_secret=True):
            client = TrunkClient(loop, layer, self.endpoint, row, self.bus, self._save_trunk_status,
                                 keepalive=s.trunk_keepalive)
            self.trunks[row["name"]] = client
            await client.start()
        await self._start_lines()
        self.queues.start()  # after the trunks: callbacks may dial out at once
        self.control: ControlServer | None = ControlServer(s.data_dir / SOCKET_NAME, self._control)
        try:
            await self.control.start()
        except OSError as exc:  # e.g. a data folder path too long for a Unix socket: the CLI then uses the store
            log.error("control socket unavailable (%s); `switchboard agent` changes apply at the next start", exc)
            self.control = None
        self.api = BoxApi(self)
        if s.http_port and (code := self.api.setup_code()) is not None:
            host = self.endpoint.host if s.bind in ("0.0.0.0", "::") else s.bind
            log.warning("no admin yet: open http://%s:%s/setup and enter the setup code %s"
                        " (or run `switchboard admin create NAME`)", host, s.http_port, code)
        self.web = None
        if s.http_port:
            from web.app import create_app  # Flask loads only when the web is on
            from web.server import WebServer
            self.web = WebServer(create_app(self.api), s.bind, s.http_port, s.web_threads)
            self.web.start()
        # Spoken prompts are rendered by espeak-ng on first boot: off the loop, so calls are not held up.
        self._preload = loop.run_in_executor(None, self._preload_prompts)
        self.started_at = time.time()
        self.ready_after = time.monotonic() - began
        # What start-up built lives as long as the box: keep it out of every future GC scan.
        gc.collect()
        gc.freeze()
        self.bus.publish("box.ready", sip_port=self.transport.port)

    def web_url(self) -> str | None:
        """The address a browser can open (the advertised one when the box listens everywhere), or None."""
        s = self.settings
        if not s.http_port:
            return None
        host = self.endpoint.host if s.bind in ("0.0.0.0", "::") else s.bind
        return f"http://{host}:{s.http_port}/"

    def banner(self) -> str:
        """One line saying where the box listens."""
        s = self.settings
        web = f"web {self.web_url()}" if s.http_port else "web off"
        return (f"Switchboard ready in {self.ready_after * 1000:.0f} ms: SIP udp+tcp {s.bind}:{self.transport.port}"
                f" (advertised as {self.endpoint.host}), {web}, "
                f"RTP {s.rtp_port_min}-{s.rtp_port_max}, data {s.data_dir}")

    def welcome(self) -> str:
        """What a person at a terminal reads first: where to go and what to do next."""
        url = self.web_url()
        lines = ["", "Switchboard is running."]
        code = self.api.setup_code() if url else None
        if url is None:
            lines.append("The web pages are off (--http-port 0).")
        elif code is not None:
            lines += [f"  1. Open {url}setup in a browser on the office network.",
                      f"  2. Enter the setup code {code} and choose the admin's name and password.",
                      "  3. Describe the office in a TOML file and run `switchboard provision FILE` (see the README)."]
        else:
            lines.append(f"  Open {url} in a browser on the office network.")
        lines.append(f"  Phones register to {self.endpoint.host}:{self.transport.port} (UDP or TCP). Ctrl-C stops the box.")
        return "\n".join(lines) + "\n"

    async def stop(self) -> None:
        """Un-register trunks, close sockets and the store."""
        if getattr(self, "web", None) is not None:
            self.web.stop()
        if getattr(self, "control", None) is not None:
            await self.control.stop()
        if getattr(self, "queues", None) is not None:
            self.queues.stop()
        for client in self.trunks.values():
            client.stop()
        if getattr(self, "callback_texts", None) is not None:
            self.callback_texts.close()
        for line in self.lines.values():
            await line.stop()
        await asyncio.sleep(0.05)  # let un-REGISTERs leave
        if hasattr(self, "layer"):
            # Start-up may have failed part-way: only undo what was done.
            for timer in (getattr(self, "_flush_timer", None), getattr(self, "_purge_timer", None)):
                if timer is not None:
                    timer.cancel()
            self._flush_registrations()
            self.layer.stop()
            self.media.close()
        if self.transport is not None:
            await self.transport.stop()
        if self.db is not None:
            # CRM jobs (segment refresh, alerts) run on the default executor: let them finish first.
            await asyncio.get_running_loop().shutdown_default_executor()
            self.checkpointer.stop()
            self.db.conn.close()
        if self.led_policy is not None:
            self.led_policy.close()
        if self.leds is not None:
            self.leds.close()

    # --- helpers wired into the core ------------------------------------------
    def _preload_prompts(self) -> None:
        try:
            self.prompts.preload()
        except PromptError as exc:
            log.error("cannot prepare the voice prompts: %s", exc)

    def _queue_by_number(self, number: str) -> str | None:
        queue = queue_definitions.queue_by_number(self.db, number)
        return queue.name if queue is not None else None

    def _control(self, command: str, args: dict) -> dict:
        """A command from `switchboard` on the control socket."""
        if command == "reload":
            self.queues.reload()
            return {}
        if command == "status":
            return self._status()
        if command == "bans":
            return {"bans": self.ban_keeper.listing()}
        if command == "unban":
            return {"lifted": self.ban_keeper.lift(str(args.get("source") or ""))}
        if command == "unlock_login":
            throttle = getattr(getattr(self, "api", None), "login_throttle", None)
            if throttle is None:
                raise ValueError("the web is not running, so no login is locked")
            return {"unlocked": throttle.unlock(args.get("username") or None, args.get("address") or None)}
        return self.queues.control(command, args)

    def _start_leds(self) -> None:
        s = self.settings
        self.leds = StatusLeds({"power": s.led_power_pin, "trunk": s.led_trunk_pin, "modem": s.led_modem_pin,
                                "calls": s.led_calls_pin}, s.led_pin_factory)
        # Built before anything that publishes, so no call or trunk event is missed.
        self.led_policy = StatusLedPolicy(self.bus, self.leds, trunks=self._registering_trunks)

    def _registering_trunks(self) -> dict[str, str]:
        return {name: c.status.state for name, c in self.trunks.items() if c.row.get("register")}

    def _status(self) -> dict:
        """`switchboard status`: the LEDs, trunks, calls in progress, registered phones and uptime."""
        assert self.led_policy is not None
        return {"leds": self.led_policy.state(),
                "trunks": {name: c.status.state for name, c in self.trunks.items()},
                "lines": {name: line.status() for name, line in self.lines.items()},
                "calls": len(self.b2bua.active), "phones": len(self.location.registered()),
                "bans": self.ban_keeper.listing(),
                "uptime": round(time.time() - self.started_at, 1)}

    def _ivr_by_number(self, number: str) -> str | None:
        menu = store_ivr.menu_by_number(self.db, number)
        return menu.name if menu is not None else None

    def _policy_settings(self) -> PolicySettings:
        """[security] as provisioned; [box] allow_international when provisioning never set it."""
        def flag(key: str, default: bool) -> bool:
            stored = directory.get_setting(self.db, key)
            return default if stored is None else stored in (True, "1", "true", 1)

        callbacks = directory.get_setting(self.db, SECURITY_POLICY["callbacks"])
        return PolicySettings(allow_international=flag(ALLOW_INTERNATIONAL, self.settings.allow_international),
                              allow_premium=flag(SECURITY_POLICY["allow_premium"], False),
                              allow_satellite=flag(SECURITY_POLICY["allow_satellite"], False),
                              callbacks=str(callbacks or "national"))

    def _trunk_hosts(self) -> list[str]:
        """Addresses of every configured trunk and line peer: these are never banned."""
        hosts = [row["host"] for row in directory.list_trunks(self.db)]
        hosts += [c.peer.peer.host for c in self.trunks.values() if c.peer is not None]
        hosts += [line.trunk_peer().peer.host for line in self.lines.values()]
        return hosts

    def _trunk_for(self, peer: Peer) -> TrunkPeer | None:
        for client in self.trunks.values():
            if client.peer is not None and client.peer.peer.host == peer.host and client.peer.peer.port == peer.port:
                return client.peer
        for line in self.lines.values():
            trunk = line.trunk_peer()
            if trunk.peer.host == peer.host and trunk.peer.port == peer.port:
                return trunk
        return None

    def _trunk_by_name(self, name: str) -> TrunkPeer | None:
        client = self.trunks.get(name)
        if client is not None:
            return client.peer
        line = self.lines.get(name)
        return line.trunk_peer() if line is not None else None

    def _line_rows(self) -> list[dict]:
        """Modem lines as the dial plan sees trunks: a name, an inbound route, a prefix."""
        return [line.trunk_row() for line in self.lines.values()]

    async def _start_lines(self) -> None:
        """Modem lines from provisioning, each joined to the box as a trunk on 127.0.0.1."""
        configs = [ModemConfig.from_dict(d) for d in directory.get_setting(self.db, MODEM_SETTINGS, []) or []]
        if not configs:
            return
        from .lines.modem_gateway import ModemGateway  # pyserial and the driver only when a modem is set up

        s = self.settings
        host = s.bind if s.bind not in ("0.0.0.0", "::") else "127.0.0.1"
        for cfg in configs:
            line = ModemGateway(self.loop, cfg, Peer("UDP", host, self.transport.port), self.bus, host)
            await line.start()
            self.lines[cfg.name] = line
            log.info("modem line %s (%s) on %s: calls go to %s, dial out with %s", cfg.name, cfg.dialect,
                     cfg.port, cfg.inbound, cfg.outbound_prefix or "(no prefix)")
        from .lines.callback_texts import CallbackTexts

        self.callback_texts = CallbackTexts(self.loop, self.bus, self.db, self.lines)

    def _save_trunk_status(self, status: TrunkStatus) -> None:
        directory.set_setting(self.db, TRUNK_STATUS_KEY + status.name, json.dumps(asdict(status)))

    def _bindings_changed(self, aor: str, bindings: list[Binding], contacts_changed: bool) -> None:
        self._dirty_registrations.add(aor)
        if contacts_changed:  # a phone came or went: store it now, and tell the box
            self._flush_registrations()
            self.bus.publish("registration.changed", extension=aor, contacts=[b.contact for b in bindings])
        # A refresh only moves an expiry: it is written behind, once a second, so a REGISTER burst
        # does not mean one SQLite write per REGISTER.

    def _flush_registrations(self) -> None:
        dirty, self._dirty_registrations = self._dirty_registrations, set()
        if not dirty:
            return
        offset = time.time() - self.location.clock()
        with transaction(self.db):
            for aor in dirty:
                rows = [{"contact": b.contact, "transport": b.source.transport, "host": b.source.host,
                         "port": b.source.port, "expires_at": b.expires_at + offset,
                         "user_agent": b.user_agent} for b in self.location.bindings.get(aor, {}).values()]
                registrations.save(self.db, aor, rows)

    def _flush_tick(self) -> None:
        self._flush_registrations()
        self._flush_timer = self.loop.call_later(1.0, self._flush_tick)

    def _restore_bindings(self) -> None:
        """Phones registered before a restart stay reachable until their registrations expire."""
        offset = time.time() - self.location.clock()
        for row in registrations.load(self.db):
            try:
                uri = parse_sip_uri(row["contact"])
            except UriError:
                continue
            binding = Binding(row["aor"], row["contact"], uri, Peer(row["transport"], row["host"], row["port"]),
                              row["expires_at"] - offset, "", 0, user_agent=row["user_agent"] or "")
            self.location.bindings.setdefault(row["aor"], {})[row["contact"]] = binding

    def _purge(self) -> None:
        self.location.purge()
        self.ban_keeper.refresh()
        self._purge_timer = self.loop.call_later(30.0, self._purge)
