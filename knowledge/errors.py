"""Errors of the knowledge core. `user_message` is what a chat user may see; `str(error)` is for logs."""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base of the errors the core raises on purpose.

    `str(error)` carries the details for operators and logs; `user_message` is a short text that
    is safe to show in a chat reply and never contains exception details.
    """

    default_user_message = "Something went wrong with the knowledge base. Please try again later."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or self.default_user_message


class KnowledgeUnavailable(KnowledgeError):
    """The index (Chroma) cannot be reached or used right now."""

    default_user_message = "The knowledge base is unavailable right now; please try again shortly."


class StorageError(KnowledgeError):
    """The data folder (or a file in it) cannot be used; the message names the path."""

    default_user_message = "The knowledge base cannot store its index right now. Please tell the bot's operator."


class IngestLocked(KnowledgeError):
    """Another ingest holds the index's write lock."""

    default_user_message = "The knowledge base is being updated. Please try again when the update finishes."


class EmbedderUnavailable(KnowledgeError, RuntimeError):
    """The configured embedder cannot be loaded on this machine; the message says what to set instead."""

    default_user_message = "The knowledge base cannot search right now. Please tell the bot's operator."


class SettingsError(KnowledgeError, ValueError):
    """A setting has a value that cannot work; the message names it, in one line."""

    default_user_message = "The bot is misconfigured. Please tell the bot's operator."


class MassRemoval(KnowledgeError):
    """An ingest would remove more of the index than allowed; nothing was written."""

    default_user_message = (
        "The update would remove most of the collection, so it was not applied; the current index keeps "
        "answering. Please tell the bot's operator."
    )

    def __init__(self, removing: int, stored: int, limit: float) -> None:
        super().__init__(
            f"this ingest would remove {removing} of the {stored} entries in the index ({removing / stored:.0%}), "
            f"more than KB_MAX_REMOVAL_SHARE={limit:g} allows; nothing was changed. Check the sources, or "
            "ingest with --allow-mass-removal if the removal is meant"
        )
        self.removing = removing
        self.stored = stored
