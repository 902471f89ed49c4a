"""The built-in hold music: length, level, no clicks, no DTMF talk-off, deterministic."""
from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Callable
from itertools import pairwise

import pytest

from appliance.media import hold_music, prompts
from appliance.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.media.goertzel import GoertzelDetector
from appliance.media.hold_music import default_hold_music
from appliance.media.tones import dtmf_tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

MAX_JUMP = 4000  # sample to sample; the music's own steepest slope is about 3200
MAX_CLICK = 800  # third difference (a crude high-pass); the music reaches about 500, a hard note start 1000+


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def looped(x: list[int], extra: int) -> list[int]:
    """The samples followed by the start again, as a looping player sends them."""
    return x + x[:extra]


def max_jump(x: list[int]) -> int:
    return max(abs(b - a) for a, b in pairwise(x))


def max_click(x: list[int]) -> int:
    return max(abs(x[i + 3] - 3 * x[i + 2] + 3 * x[i + 1] - x[i]) for i in range(len(x) - 3))


def dbfs(x: list[int]) -> float:
    return 20 * math.log10(math.sqrt(sum(v * v for v in x) / len(x)) / 32768)


@pytest.fixture(scope="module")
def music() -> bytes:
    return default_hold_music()


def test_length_and_whole_frames(music: bytes) -> None:
    assert hold_music.RATE == prompts.RATE
    assert 12 <= len(music) / 2 / prompts.RATE <= 20
    # A whole number of 20 ms frames: a looped prompt has no padded silence at the wrap.
    assert len(music) % (2 * prompts.FRAME_SAMPLES) == 0
    prompt = prompts.Prompt("hold_music", music, tuple(prompts.frames(music)), loop=True)
    assert b"".join(prompt.frames) == music


def test_level_is_soft_and_never_drops_out(music: bytes) -> None:
    x = samples(music)
    assert -19.5 < dbfs(x) < -16.5
    assert max(abs(v) for v in x) < 32768 * 10 ** (-3 / 20)  # headroom: never near clipping
    seconds = [x[i:i + prompts.RATE] for i in range(0, len(x), prompts.RATE)]
    assert all(-30 < dbfs(s) < -12 for s in seconds)  # no silent gap, no loud burst


def test_no_clicks_anywhere_including_the_loop_point(music: bytes) -> None:
    x = samples(music)
    assert max_jump(looped(x, 1)) < MAX_JUMP
    assert max_click(looped(x, 3)) < MAX_CLICK
    wrap = x[-50:] + x[:50]
    assert max_jump(wrap) < MAX_JUMP / 4 and max_click(wrap) < MAX_CLICK / 2


def test_the_click_checks_catch_a_bad_splice(music: bytes) -> None:
    x = samples(music)
    cut = x[: len(x) // 2 + 1234]  # a loop that wraps mid-note
    assert max_click(looped(cut, 3)) > MAX_CLICK


def test_no_dtmf_digit_over_the_loop(music: bytes) -> None:
    # Twice round, so the loop point is heard like any other moment, and at every block alignment.
    for offset in (0, 17, 51):
        assert GoertzelDetector().feed(music[2 * offset:] + music) == []


@pytest.mark.parametrize("encode,decode", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_no_dtmf_digit_after_g711(music: bytes, encode: Callable[[bytes], bytes],
                                  decode: Callable[[bytes], bytes]) -> None:
    assert GoertzelDetector().feed(decode(encode(music + music[:8000]))) == []


def test_the_detector_would_hear_a_key_over_the_music(music: bytes) -> None:
    key = dtmf_tone("5", 0.1, 0.1)
    mixed = audioop.add(music[16000:16000 + len(key)], key, 2)
    assert GoertzelDetector().feed(music[:16000] + mixed + music[16000 + len(key):32000]) == ["5"]


def test_deterministic(music: bytes) -> None:
    assert default_hold_music() is music  # computed once per process
    assert default_hold_music.__wrapped__() == music  # and the same when computed again
