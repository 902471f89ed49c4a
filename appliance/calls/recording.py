"""Which calls are recorded, and where their WAV files go in the data folder."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from appliance.calls.records import CallInfo
from appliance.media.recorder import WavRecorder

__all__ = ["RecordingPolicy", "recording_path", "RECORD_CHOICES"]

RECORD_CHOICES = ("none", "inbound", "all")


def recording_path(record_id: str, when: datetime | None = None) -> str:
    """Where a call's recording goes, relative to the data folder: recordings/YYYY-MM-DD/ID.wav."""
    day = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    return f"recordings/{day}/{record_id}.wav"


class RecordingPolicy:
    """The box's `record_calls` setting, and the recorders it opens."""

    def __init__(self, data_dir: Path, record_calls: str, clock: Callable[[], float]) -> None:
        if record_calls not in RECORD_CHOICES:
            raise ValueError(f"record_calls must be one of {RECORD_CHOICES}")
        self.data_dir = Path(data_dir)
        self.record_calls = record_calls
        self.clock = clock

    def wants(self, info: CallInfo, asked: bool = False) -> bool:
        """Whether this call is recorded (asked: an IVR menu or similar wants it regardless)."""
        policy = self.record_calls
        return asked or policy == "all" or (policy == "inbound" and info.direction == "inbound")

    def open(self, info: CallInfo) -> tuple[WavRecorder, str]:
        """A stereo recorder for the call and its path relative to the data folder."""
        relative = recording_path(info.record_id)
        return WavRecorder(self.data_dir / relative, channels=2, clock=self.clock), relative
