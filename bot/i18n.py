"""The bot's languages: which one a reply is in, and the bot's texts in it (gettext catalogues).

The texts are English msgids in `bot.texts`, marked with `N_` (or `NP_` with a context); their
translations live in one gettext catalogue per language, `bot/locale/<dir>/LC_MESSAGES/messages.po`,
managed with Babel (`make messages` extracts the template and merges it into each language), and are
read at run time from the compiled `.mo` files that ship as package data. Only the standard library's
`gettext` is needed to read them.

A reply's language is chosen per reply (`choose`): a deployment's `KB_LOCALE` first, then the platform's
own language tags (a Discord interaction's `locale`, then its `guild_locale`), then the language the
question is written in, then the conversation's last language, then English.
"""

from __future__ import annotations

import gettext
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal, get_args

from knowledge import question_lang

_log = logging.getLogger(__name__)

Locale = Literal["zh-Hans", "zh-Hant", "en"]
LocaleSetting = Literal["auto", "zh-Hans", "zh-Hant", "en"]
LOCALES: tuple[Locale, ...] = get_args(Locale)
DEFAULT_LOCALE: Locale = "en"
DOMAIN = "messages"
CATALOGUE_DIRS: dict[Locale, str] = {"zh-Hans": "zh_Hans", "zh-Hant": "zh_Hant", "en": "en"}
"""Each language's folder under `bot/locale/` (Babel's locale identifiers)."""

_URL = re.compile(r"\S+://\S+|\b[\w.-]+\.(?:com|org|net|io)/\S*", re.I)
_LETTER = re.compile(r"[A-Za-z\u3400-\u9fff]")


def N_(message: str) -> str:
    """Marks `message` for the catalogue; it is translated where it is shown."""
    return message


def NP_(context: str, message: str) -> str:
    """Marks `message` for the catalogue under `context` (e.g. a Discord command's name)."""
    return message


@dataclass(frozen=True)
class Plural:
    """A text with a singular and a plural English form (`NN_`): `t.count(texts.STATS, n, …)`."""

    singular: str
    plural: str


def NN_(singular: str, plural: str) -> Plural:
    """Marks a text with a singular and a plural form for the catalogue (Chinese has one form)."""
    return Plural(singular, plural)


def locale_of_tag(tag: str | None) -> Locale | None:
    """A platform's language tag as one of the bot's languages: `zh-CN`, `zh-SG`, `zh`, `zh-Hans` →
    zh-Hans; `zh-TW`, `zh-HK`, `zh-Hant` → zh-Hant; `en-US`, `en-GB` → en; anything else → None."""
    if not tag:
        return None
    first, *rest = tag.replace("_", "-").lower().split("-")
    if first == "en":
        return "en"
    if first != "zh":
        return None
    return "zh-Hant" if {"hant", "tw", "hk", "mo"} & set(rest) else "zh-Hans"


def locale_of_text(text: str) -> Locale | None:
    """The language `text` is written in (URLs aside), by the knowledge core's own detection: Chinese,
    Simplified or Traditional (one character only Traditional writes is enough: `question_lang`), when it
    is mostly Han characters; English when it has Latin letters and little Han; None when it has neither (a
    bare arXiv id, a URL, punctuation)."""
    words = _URL.sub(" ", text)
    if not _LETTER.search(words):
        return None
    return question_lang(words)


def choose(
    setting: LocaleSetting = "auto", *, tags: Iterable[str | None] = (), text: str = "", last: Locale | None = None
) -> Locale:
    """The language of one reply: `setting` unless it is "auto"; else the first of `tags` the bot
    speaks; else the language of `text`; else `last` (the conversation's); else English."""
    if setting != "auto":
        return setting
    for tag in tags:
        if found := locale_of_tag(tag):
            return found
    return locale_of_text(text) or last or DEFAULT_LOCALE


class Texts:
    """The bot's texts in one language: `t(texts.THANKS)`, `t(texts.COOLDOWN, seconds=3)`."""

    def __init__(self, locale: Locale, translations: gettext.NullTranslations) -> None:
        self.locale = locale
        self._translations = translations

    def __call__(self, message: str, /, **values: object) -> str:
        """`message` (an English msgid) in this language, formatted with `values` when given."""
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def count(self, message: Plural, n: int, /, **values: object) -> str:
        """`message` in this language in the form for `n` ("1 entry", "2 entries"), formatted with `values`."""
        return self._translations.ngettext(message.singular, message.plural, n).format(**values)

    def pgettext(self, context: str, message: str) -> str:
        """`message` under `context` in this language."""
        return self._translations.pgettext(context, message)

    def lookup(self, message: str, context: str | None = None) -> str | None:
        """The catalogue's translation of `message`, or None when it has none (unlike gettext, which
        falls back to the msgid): for callers that must tell the two apart, like Discord's translator."""
        key = message if context is None else f"{context}\x04{message}"  # how gettext keys a context
        # GNUTranslations keeps the .mo's messages in `_catalog`; its public calls cannot tell a missing
        # message from one translated as itself.
        catalogue = getattr(self._translations, "_catalog", None)
        found = catalogue.get(key) if isinstance(catalogue, dict) else None
        return found if isinstance(found, str) and found else None


@lru_cache(maxsize=len(LOCALES))
def texts_for(locale: Locale) -> Texts:
    """The texts of `locale`, read once from its compiled catalogue (English msgids when it is missing)."""
    return Texts(locale, _translations(locale))


def _translations(locale: Locale) -> gettext.NullTranslations:
    path = resources.files("bot").joinpath("locale", CATALOGUE_DIRS[locale], "LC_MESSAGES", f"{DOMAIN}.mo")
    try:
        with path.open("rb") as mo:
            return gettext.GNUTranslations(mo)
    except OSError as error:  # a broken install: answer in English rather than not at all
        _log.error("the %s catalogue cannot be read (%s): replies meant in it are in English", locale, error)
        return gettext.NullTranslations()
