"""Logging set-up shared by the command lines of the knowledge core and the bot."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

QUIET_LIBRARIES = ("bm25s", "chromadb", "httpx", "jieba", "urllib3")


class QuietLibraries(logging.Filter):
    """Drops the chatty libraries' records below WARNING. A handler's filter, because a library may set its
    own logger's level when it is imported, after the set-up (bm25s sets DEBUG on import)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in QUIET_LIBRARIES)


def configure_logging(verbose: bool) -> None:
    """Log to stderr; the chatty libraries only from WARNING up. A terminal that cannot show a character (Chinese
    on a Latin-1 one) gets "?" for it, in the log and in what the program prints, rather than a crash."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(known, QuietLibraries) for known in handler.filters):
            handler.addFilter(QuietLibraries())
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RateLimitedLog:
    """At most one log line every `interval` seconds; the lines held back are counted in the next one."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} more like it since the last line)" if held else ""
        self._logger.warning(message + suffix, *args)
