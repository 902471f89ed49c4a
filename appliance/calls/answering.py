"""A media channel for a call the box answers itself (IVR, queue, feature codes)."""
from __future__ import annotations

import asyncio

from appliance.media.channel import DigitCallback, MediaChannel
from appliance.calls.bridge import Call
from appliance.sip.sdp_local import MediaChoice

__all__ = ["open_channel"]


DTMF_INBAND = ("auto", "always", "never")  # listen for tones: when not negotiated, always, never


def open_channel(loop: asyncio.AbstractEventLoop, call: Call, choice: MediaChoice, on_digit: DigitCallback,
                 dtmf_inband: str = "auto") -> MediaChannel:
    """The box's end of the caller's leg; in-band DTMF is listened for when the caller has no RFC 4733."""
    inband = dtmf_inband == "always" or (dtmf_inband == "auto" and choice.event_pt is None)
    channel = MediaChannel(loop, call.relay, "a", choice.codec, choice.payload_type, choice.event_pt,
                           on_digit=on_digit, inband=inband)
    call.channel = channel
    return channel
