"""Errors a chat user may see (`BotError.user_message`), the one reply for everything else, and the
operator's one-line start-up error."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot import texts
from bot.i18n import Texts, texts_for
from knowledge import KnowledgeError

_log = logging.getLogger(__name__)


class BotError(Exception):
    """An error whose message is safe and useful to show in the chat: `message` is a template of the
    catalogue (`bot.texts`) and `values` fill it; `user_message` is it in English, `message_in(t)` in
    the reply's language."""

    message = texts.APOLOGY
    user_values: tuple[str, ...] = ()  # the values the user typed: `message_in`'s `escape` applies to them

    def __init__(self, message: str | None = None, **values: object) -> None:
        if message:
            self.message = message
        self.values = values
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return self.message_in(texts_for("en"))

    @staticmethod
    def shown(typed: object, limit: int) -> str:
        """What the user typed, as a message repeats it: at most `limit` characters."""
        text = str(typed)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def message_in(self, t: Texts, escape: Callable[[str], str] | None = None) -> str:
        """The message in `t`'s language; `escape` (the platform's markup escape) applies to what the user
        typed, so that "in:[a](https://x)" comes back as text, never as a link of the bot's."""
        values = dict(self.values)
        if escape is not None:
            values.update({name: escape(str(values[name])) for name in self.user_values if name in values})
        return t(self.message, **values)


class EmptyQuestion(BotError):
    """A question with nothing to search for; the usage hint names the platform's ask command."""

    message = texts.EMPTY_QUESTION

    def __init__(self, ask: str = "/ask") -> None:
        super().__init__(ask=ask)

    def message_in(self, t: Texts, escape: Callable[[str], str] | None = None) -> str:
        return t(self.message, usage=t(texts.USAGE, ask=self.values["ask"]))


class NotAdmin(BotError):
    message = texts.NOT_ADMIN


class StaleCommand(BotError):
    """A command Discord still offers that the bot no longer has, or whose options changed (not synced yet)."""

    message = texts.STALE_COMMAND


class Cooldown(BotError):
    message = texts.COOLDOWN

    def __init__(self, retry_after: float) -> None:
        super().__init__(seconds=max(1, round(retry_after)))
        self.retry_after = retry_after


class AlreadyRunning(BotError):
    message = texts.ALREADY_RUNNING


class CannotCoordinate(BotError):
    """A reindex asked while the state store (`bot.state`) cannot be reached: without its lease two
    replicas could rebuild at once, so the reindex is refused (the lease fails closed)."""

    message = texts.CANNOT_COORDINATE


class NothingMore(BotError):
    message = texts.NOTHING_MORE


class UnknownAnswer(BotError):
    message = texts.UNKNOWN_ANSWER


class ReadOnlyReplica(BotError):
    """A reindex asked of a replica that never writes (KB_INGEST_ON_START=false)."""

    message = texts.READ_ONLY_REPLICA


class UnknownSection(BotError):
    """`in:` or the `section` option names no section of the collection."""

    message = texts.UNKNOWN_SECTION
    user_values = ("section",)

    SHOWN = 60  # characters of what was typed that the message repeats (a reply must stay one message)

    def __init__(self, section: str) -> None:
        super().__init__(section=self.shown(section, self.SHOWN))


class IndexEmpty(BotError):
    """A question while the index holds no entry (never built, or a first ingest still running): not the
    question's fault, and not a gap in the collection."""

    message = texts.INDEX_EMPTY


class EntryGone(BotError):
    """ "Similar to…" on an entry the collection no longer has (a reindex removed it)."""

    message = texts.ENTRY_GONE


class SectionGone(BotError):
    """A browse button or menu names a section the collection no longer has (a reindex renamed or removed it)."""

    message = texts.SECTION_GONE


class NoSuchItem(BotError):
    """ "Similar to #N" for an N the answer does not have."""

    message = texts.NO_SUCH_ITEM


class BadDays(BotError):
    """`/new` with a number of days outside 1 to 366 (or not a number)."""

    message = texts.BAD_DAYS
    user_values = ("days",)

    SHOWN = 20  # characters of what was typed that the message repeats

    def __init__(self, days: object, new: str = "/new") -> None:
        super().__init__(days=self.shown(days, self.SHOWN), new=new)


class NotHere(BotError):
    """A command in a channel outside the platform's allowlist (KB_DISCORD_CHANNELS, KB_SLACK_CHANNELS)."""

    message = texts.NOT_HERE


class CannotStart(Exception):
    """The service cannot start for a reason in its environment (e.g. its port is in use): one line for
    the operator, naming the setting or the path; `python -m bot` exits 1."""


def user_message_for(error: BaseException, t: Texts | None = None, escape: Callable[[str], str] | None = None) -> str:
    """What the user sees for `error`, in `t`'s language (English by default): its own message when it
    has one, else a short apology. `escape` is applied to what the user typed (`BotError.message_in`).

    Unexpected errors are logged with their traceback here, so adapters need not repeat it.
    """
    t = t or texts_for("en")
    if isinstance(error, BotError):
        return error.message_in(t, escape)
    if isinstance(error, KnowledgeError):
        return t(error.user_message)  # the core's messages are in the catalogue (texts.KNOWLEDGE_MESSAGES)
    _log.error("unexpected error while answering", exc_info=error)
    return t(texts.APOLOGY)
