"""Errors a chat user may see (`BotError.user_message`), and the one reply for everything else."""

from __future__ import annotations

import logging

from knowledge.errors import KnowledgeError

_log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
USAGE = (
    "Ask me a question about the collection, e.g. `/ask contrastive learning papers` "
    "or `/ask 哪篇论文修正了 Adam 的 weight decay?`"
)


class BotError(Exception):
    """An error whose `user_message` is safe and useful to show in the chat."""

    user_message = APOLOGY

    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(user_message or self.user_message)
        if user_message:
            self.user_message = user_message


class EmptyQuestion(BotError):
    user_message = f"There is no question to answer. {USAGE}"


class NotAdmin(BotError):
    user_message = "Only the bot's admins can reindex the collection."


class Cooldown(BotError):
    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(f"You're asking quickly: please wait {seconds} s before the next question.")
        self.retry_after = retry_after


class AlreadyRunning(BotError):
    user_message = "A reindex is already running; I'll post its summary when it finishes."


class NothingMore(BotError):
    user_message = "There are no more results for that question. Ask another one!"


class UnknownAnswer(BotError):
    user_message = "That answer is too old for buttons now; please ask the question again."


def user_message_for(error: BaseException) -> str:
    """What the user sees for `error`: its own message when it has one, else a short apology.

    Unexpected errors are logged with their traceback here, so adapters need not repeat it.
    """
    if isinstance(error, BotError | KnowledgeError):
        return error.user_message
    _log.error("unexpected error while answering", exc_info=error)
    return APOLOGY
