"""The SIP stack: bans, the transport (UDP and TCP), digest auth, the registrar and its persistence, the
transaction layer and the media ports. The calls feature puts the UA core on top and starts the layer."""
from __future__ import annotations

import asyncio
import logging
import os
import time

from ..bans import BanKeeper
from ..media.ports import PortAllocator
from ..media.relay import MediaEngine
from ..netinfo import primary_address
from ..sip.core import KNOWN_METHODS, RequestAuthenticator
from ..sip.digest import DigestAuthenticator, NonceManager
from ..sip.endpoint import LocalEndpoint
from ..sip.registrar import Binding, LocationService, Registrar, RegistrarPolicy
from ..sip.transaction import TransactionLayer
from ..sip.transport import Peer, SipTransport, TcpLimits
from ..sip.uri import UriError, parse_sip_uri
from ..store import directory, registrations
from ..store.db import transaction
from . import Context, Teardown
from .trunk_directory import TrunkDirectory

log = logging.getLogger("switchboard.box")
PURGE_SECONDS = 30.0  # expired registrations and bans go this often
FLUSH_SECONDS = 1.0   # registration refreshes are written behind, this often


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


class RegistrationStore:
    """Keeps the registrar's bindings in SQLite: restored at start, new phones at once, refreshes written behind."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.location = LocationService(on_change=self.changed)
        self.dirty: set[str] = set()

    def changed(self, aor: str, bindings: list[Binding], contacts_changed: bool) -> None:
        """The registrar changed aor's bindings."""
        self.dirty.add(aor)
        if contacts_changed:  # a phone came or went: store it now, and tell the box
            self.flush()
            self.ctx.bus.publish("registration.changed", extension=aor, contacts=[b.contact for b in bindings])
        # A refresh only moves an expiry: it is written behind, once a second, so a REGISTER burst
        # does not mean one SQLite write per REGISTER.

    def flush(self) -> None:
        """Write what changed."""
        dirty, self.dirty = self.dirty, set()
        if not dirty:
            return
        db = self.ctx.db
        offset = time.time() - self.location.clock()
        with transaction(db):
            for aor in dirty:
                rows = [{"contact": b.contact, "transport": b.source.transport, "host": b.source.host,
                         "port": b.source.port, "expires_at": b.expires_at + offset,
                         "user_agent": b.user_agent} for b in self.location.bindings.get(aor, {}).values()]
                registrations.save(db, aor, rows)

    def restore(self) -> None:
        """Phones registered before a restart stay reachable until their registrations expire."""
        offset = time.time() - self.location.clock()
        for row in registrations.load(self.ctx.db):
            try:
                uri = parse_sip_uri(row["contact"])
            except UriError:
                continue
            binding = Binding(row["aor"], row["contact"], uri, Peer(row["transport"], row["host"], row["port"]),
                              row["expires_at"] - offset, "", 0, user_agent=row["user_agent"] or "")
            self.location.bindings.setdefault(row["aor"], {})[row["contact"]] = binding


async def setup(ctx: Context) -> Teardown:
    """Bind SIP, build the stack below the UA core, and the RTP port pool."""
    s, loop, db = ctx.settings, ctx.loop, ctx.db
    lines = TrunkDirectory(ctx)
    ban_keeper = BanKeeper(db, ctx.bus, s, lines.hosts)
    secret = directory.get_setting(db, "nonce_secret")
    if secret is None:
        secret = os.urandom(32).hex()
        directory.set_setting(db, "nonce_secret", secret)
    nonces = NonceManager(bytes.fromhex(secret), lifetime=s.nonce_lifetime)
    digest = DigestAuthenticator(s.realm, lambda user, algorithm: directory.get_ha1(db, user, algorithm, s.realm),
                                 nonces, s.auth_algorithms)
    auth = RequestAuthenticator(
        digest, ban_keeper.bans, on_ban=lambda source, user: ctx.bus.publish("security.ban", source=source, user=user))

    raise_open_files_limit()
    transport = SipTransport(loop, s.bind, s.sip_port, is_blocked=ban_keeper.bans.is_banned, tcp_limits=TcpLimits(
        s.tcp_max_connections, s.tcp_max_per_source, s.tcp_idle_timeout, s.tcp_registered_idle))
    await transport.start()
    advertise = s.advertise or (s.bind if s.bind not in ("0.0.0.0", "::") else primary_address())
    endpoint = LocalEndpoint(advertise, transport.port)

    store = RegistrationStore(ctx)
    location = store.location
    store.restore()
    registrar = Registrar(location, RegistrarPolicy(
        s.register_min_expires, s.register_max_expires, s.register_default_expires))
    media_host = s.bind if s.bind not in ("::",) else "0.0.0.0"
    media = MediaEngine(loop, PortAllocator(s.rtp_port_min, s.rtp_port_max, media_host))
    layer = TransactionLayer(loop, transport, methods=KNOWN_METHODS)
    ctx.provide(ban_keeper=ban_keeper, bans=ban_keeper.bans, auth=auth, transport=transport, endpoint=endpoint,
                location=location, registrar=registrar, media=media, layer=layer, trunk_directory=lines)

    timers: dict[str, asyncio.TimerHandle] = {}

    def purge() -> None:
        location.purge()
        ban_keeper.refresh()
        timers["purge"] = loop.call_later(PURGE_SECONDS, purge)

    def flush() -> None:
        store.flush()
        timers["flush"] = loop.call_later(FLUSH_SECONDS, flush)

    timers["purge"] = loop.call_later(PURGE_SECONDS, purge)
    timers["flush"] = loop.call_later(FLUSH_SECONDS, flush)

    async def teardown() -> None:
        for timer in timers.values():
            timer.cancel()
        store.flush()
        layer.stop()
        media.close()
        await transport.stop()
    return teardown
