"""SDP anchoring for a bridged call: each party's SDP learns the relay where that party sends from, and is
rewritten to point the other party at the relay (the B2BUA's media stays in the middle)."""
from __future__ import annotations

import logging
from typing import Any

from ..sip import sdp as sdp_mod

log = logging.getLogger("switchboard.calls.bridge")


class MediaAnchor:
    """The SDP half of a relay: SdpError from pass_on when a party's SDP has no usable audio."""

    def __init__(self, relay: Any, host: str, label: str) -> None:
        self.relay = relay
        self.host = host      # the address the box advertises for media
        self.label = label    # the call, for logs

    def learn(self, side: str, sdp: sdp_mod.SessionDescription) -> None:
        """Point the relay's `side` at the media address this SDP gives (not for hold or a rejected stream)."""
        audio = sdp.audio()
        if audio is None or audio.port == 0 or sdp.is_hold(audio):
            return
        host = sdp.connection_for(audio)
        if host:
            try:
                self.relay.set_remote(side, host, audio.port)
            except ValueError:  # a host name in c=: no DNS on the media path, rely on latching
                log.info("call %s: ignoring non-IP media address %r", self.label, host)

    def pass_on(self, body: bytes, from_side: str, to_side: str, session: int, version: int) -> bytes:
        """SDP that came from the party on from_side, as the box gives it to the party on to_side."""
        sdp = sdp_mod.parse_sdp(body)
        self.learn(from_side, sdp)
        port = (self.relay.a if to_side == "a" else self.relay.b).port
        return sdp_mod.anchor(sdp, self.host, port, session, version).to_bytes()
