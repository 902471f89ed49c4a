"""Structured logging: one JSON object per line (or plain text) on stderr."""
from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line with time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Lets through at most `burst` records of one kind (logger and message template) per `interval` seconds.

    A flood (a connection storm, a scanner) must not fill an SD card with the same line; the first
    record after a quiet spell says how many were dropped.
    """

    def __init__(self, burst: int = 20, interval: float = 10.0, clock=time.monotonic, max_kinds: int = 1000) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        self._kinds: dict[tuple[str, object], list] = {}  # kind -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        key = (record.name, record.msg)
        state = self._kinds.get(key)
        if state is None or now - state[0] >= self.interval:
            dropped = state[2] if state is not None else 0
            if len(self._kinds) >= self._max_kinds:
                self._kinds.clear()
            self._kinds[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} (and {dropped} more like it in the last {self.interval:g} s, not logged)"
            return True
        state[1] += 1
        if state[1] <= self.burst:
            return True
        state[2] += 1
        return False


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send the switchboard loggers to stderr in the chosen format, with floods of one message cut short."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Their routine lines (a job ran every 30 s, a browser closed a stream) are noise unless debugging.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("apscheduler", "waitress"):
        logging.getLogger(name).setLevel(quiet)
