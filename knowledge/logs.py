"""Logging set-up shared by the command lines of the knowledge core and the bot."""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = ("bm25s", "chromadb", "httpx", "jieba", "urllib3")


class QuietLibraries(logging.Filter):
    """Drops the chatty libraries' records below WARNING. A handler's filter, because a library may set its
    own logger's level when it is imported, after the set-up (bm25s sets DEBUG on import)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in QUIET_LIBRARIES)


def configure_logging(verbose: bool) -> None:
    """Log to stderr; the chatty libraries only from WARNING up."""
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
