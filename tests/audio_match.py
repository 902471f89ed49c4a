"""Finding a known sound in a recording: what a peer heard, compared with what the box should have said."""
from __future__ import annotations

import numpy as np


def audible(samples: np.ndarray, floor: float = 64.0) -> np.ndarray:
    """samples without leading and trailing near-silence.

    baresip records a frame when the next packets push it out of its jitter buffer, so the
    last few frames before the box pauses its stream are not in the recording.
    """
    loud = np.flatnonzero(np.abs(samples) > floor)
    assert loud.size, "all silence"
    return samples[loud[0]:loud[-1] + 1]


def ncc_peak(recording: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Peak normalized cross-correlation of reference slid along recording, and its offset.

    1.0 means some stretch of the recording is the reference up to a gain; unrelated audio
    stays far below.
    """
    m = reference.size
    assert recording.size >= m, "recording shorter than the reference"
    ref = reference - reference.mean()
    n = recording.size + m
    size = 1 << (n - 1).bit_length()
    dots = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(ref, size)), size)
    dots = dots[: recording.size - m + 1]
    csum = np.concatenate(([0.0], np.cumsum(recording)))
    csq = np.concatenate(([0.0], np.cumsum(recording ** 2)))
    seg_sum = csum[m:] - csum[:-m]
    seg_energy = np.maximum(csq[m:] - csq[:-m] - seg_sum ** 2 / m, 0.0)
    norm = np.sqrt(seg_energy) * np.sqrt(np.sum(ref ** 2))
    score = np.where(norm > 1e-9 * max(norm.max(), 1.0), dots / np.maximum(norm, 1e-30), 0.0)
    best = int(np.argmax(score))
    return float(score[best]), best
