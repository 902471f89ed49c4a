"""G.711 µ-law/A-law conversion of 16-bit little-endian signed PCM."""
from __future__ import annotations

import sys
import warnings
from typing import Callable, NamedTuple

# audioop is in the stdlib below 3.13 (deprecated from 3.11) and comes from the
# audioop-lts package, same import name, from 3.13 on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "Codec", "ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode", "codec_for",
    "PT_PCMU", "PT_PCMA",
]

PT_PCMU = 0
PT_PCMA = 8
_BIG_ENDIAN = sys.byteorder == "big"


def _to_native(pcm16: bytes) -> bytes:
    """Little-endian PCM to the host order audioop works in."""
    return audioop.byteswap(pcm16, 2) if _BIG_ENDIAN else pcm16


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode 16-bit LE PCM to µ-law, one byte per sample."""
    return audioop.lin2ulaw(_to_native(pcm16), 2)


def ulaw_decode(data: bytes) -> bytes:
    """Decode µ-law to 16-bit LE PCM."""
    return _to_native(audioop.ulaw2lin(data, 2))


def alaw_encode(pcm16: bytes) -> bytes:
    """Encode 16-bit LE PCM to A-law, one byte per sample."""
    return audioop.lin2alaw(_to_native(pcm16), 2)


def alaw_decode(data: bytes) -> bytes:
    """Decode A-law to 16-bit LE PCM."""
    return _to_native(audioop.alaw2lin(data, 2))


class Codec(NamedTuple):
    """A G.711 variant as an (encode, decode) pair that also knows its SDP name and payload type."""

    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]

    @property
    def name(self) -> str:
        """SDP encoding name: "PCMU" or "PCMA"."""
        return "PCMU" if self.encode is ulaw_encode else "PCMA"

    @property
    def payload_type(self) -> int:
        """Static RTP payload type: 0 or 8."""
        return PT_PCMU if self.encode is ulaw_encode else PT_PCMA


_PCMU = Codec(ulaw_encode, ulaw_decode)
_PCMA = Codec(alaw_encode, alaw_decode)
_BY_KEY: dict[str | int, Codec] = {"PCMU": _PCMU, "PCMA": _PCMA, PT_PCMU: _PCMU, PT_PCMA: _PCMA}


def codec_for(name: str | int) -> Codec:
    """Codec for "PCMU"/"PCMA" (any case, optional "/8000") or static payload type 0/8."""
    key: str | int = name
    if isinstance(name, str):
        key = name.split("/", 1)[0].strip().upper()
        if key.isdigit():
            key = int(key)
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"unsupported codec {name!r}") from None
