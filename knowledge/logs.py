"""Logging set-up shared by the command lines of the knowledge core and the bot."""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = ("bm25s", "chromadb", "httpx", "jieba", "urllib3")


def configure_logging(verbose: bool) -> None:
    """Log to stderr; the chatty libraries only from WARNING up."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)
