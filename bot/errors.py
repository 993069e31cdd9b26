"""Errors a chat user may see (`BotError.user_message`), the one reply for everything else, and the
operator's one-line start-up error."""

from __future__ import annotations

import logging

from bot import texts
from knowledge import KnowledgeError

_log = logging.getLogger(__name__)


class BotError(Exception):
    """An error whose `user_message` is safe and useful to show in the chat."""

    user_message = texts.APOLOGY

    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(user_message or self.user_message)
        if user_message:
            self.user_message = user_message


class EmptyQuestion(BotError):
    user_message = texts.EMPTY_QUESTION


class NotAdmin(BotError):
    user_message = texts.NOT_ADMIN


class Cooldown(BotError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(texts.COOLDOWN.format(seconds=max(1, round(retry_after))))
        self.retry_after = retry_after


class AlreadyRunning(BotError):
    user_message = texts.ALREADY_RUNNING


class NothingMore(BotError):
    user_message = texts.NOTHING_MORE


class UnknownAnswer(BotError):
    user_message = texts.UNKNOWN_ANSWER


class ReadOnlyReplica(BotError):
    """A reindex asked of a replica that never writes (KB_INGEST_ON_START=false)."""

    user_message = texts.READ_ONLY_REPLICA


class CannotStart(Exception):
    """The service cannot start for a reason in its environment (e.g. its port is in use): one line for
    the operator, naming the setting or the path; `python -m bot` exits 1."""


def user_message_for(error: BaseException) -> str:
    """What the user sees for `error`: its own message when it has one, else a short apology.

    Unexpected errors are logged with their traceback here, so adapters need not repeat it.
    """
    if isinstance(error, BotError | KnowledgeError):
        return error.user_message
    _log.error("unexpected error while answering", exc_info=error)
    return texts.APOLOGY
