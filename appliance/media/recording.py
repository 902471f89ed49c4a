"""Recording a bridged call: the RTP of both legs of a relay, decoded into one stereo WAV."""
from __future__ import annotations

from appliance.media.recorder import WavRecorder
from appliance.media.relay import Relay
from appliance.media.rtp import HEADER_SIZE, RtpError, parse_rtp

__all__ = ["RelayRecording", "STATIC_G711"]

STATIC_G711 = {0: "PCMU", 8: "PCMA"}


class RelayRecording:
    """Taps a relay without diverting it: what leg `caller` sends goes left, the other leg's right."""

    def __init__(self, relay: Relay, recorder: WavRecorder, caller: str = "a",
                 codecs: dict[int, str] | None = None) -> None:
        self.relay = relay
        self.recorder = recorder
        self._codecs = codecs or STATIC_G711
        self._legs = (caller, "b" if caller == "a" else "a")
        relay.monitor(self._legs[0], lambda packet: self._write(0, packet))
        relay.monitor(self._legs[1], lambda packet: self._write(1, packet))

    def _write(self, channel: int, packet: memoryview) -> None:
        if len(packet) <= HEADER_SIZE:
            return
        codec = self._codecs.get(packet[1] & 0x7F)
        if codec is None:  # telephone-event, comfort noise: not audio to record
            return
        try:
            header = parse_rtp(packet)
        except RtpError:
            return
        self.recorder.write_g711(channel, bytes(header.payload(packet)), codec)

    def stop(self) -> None:
        """Stop watching the relay (the recorder stays open)."""
        if not self.relay.closed:
            for leg in self._legs:
                self.relay.monitor(leg, None)
