"""The transport-agnostic chat core: ask, more, similar, browse, new, reindex and sync, digests, stats, help,
feedback. No platform imports.

The core owns the policy every front-end shares: how a question is cleaned and cut (and that the user is
told), its options and scope, the exact lookup of a paper it names before any search, the order of the
checks before a question is answered, the cooldown, paging, privacy, the language of each reply, what is
recorded of questions and votes (`bot.records`), what is new and which digests are due, and what is said
when a reindex starts and ends. What it remembers between messages (answers behind their buttons, cooldowns,
messages already answered, the reindex lease) is in its state store (`bot.state`), which replicas share.
Adapters turn platform events into these calls and render what comes back; they post digests through the
`DigestPoster`s they give the core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import sqlite3
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bot import i18n, texts
from bot.errors import (
    AlreadyRunning,
    BadDays,
    BotError,
    CannotCoordinate,
    Cooldown,
    EmptyQuestion,
    EntryGone,
    IndexEmpty,
    NoSuchItem,
    NothingMore,
    ReadOnlyReplica,
    SectionGone,
    UnknownAnswer,
    UnknownSection,
)
from bot.i18n import Locale, Texts, texts_for
from bot.latex import readable_math
from bot.metrics import Metrics
from bot.records import DB_FILE, Activity, Outcome, Records
from bot.request import LANGS, read_request
from bot.settings import BotSettings
from bot.state import LeaseKeeper, MemoryState, StateStore, StateUnavailable
from knowledge import (
    Digest,
    Entry,
    Health,
    IngestLocked,
    IngestReport,
    KnowledgeError,
    Lookup,
    Neighbour,
    NewEntry,
    SearchResult,
    Section,
    SectionTree,
    SourceStatus,
    StoreStats,
    SyncReport,
    arxiv_id,
    blurb,
    section_id,
    without_escapes,
    without_identifiers,
    without_tracking,
)

_log = logging.getLogger(__name__)

SUMMARY_CHARS = 180
TITLE_CHARS = 300  # a title longer than this (a parse gone wrong) is cut: a reply stays readable
URL_CHARS = 1000  # a link longer than this is not shown (the title is): it would not fit a message block whole
MAX_SESSIONS = 2000
# Controls, zero-width characters, and bidi marks, embeddings, overrides and isolates.
_INVISIBLE = re.compile(
    r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
Vote = Literal["up", "down"]
Fence = Callable[[], int | None]  # a lease's fencing check: its token while still held, else None
_HAN = re.compile(r"[\u3400-\u9fff]")


class Retriever(Protocol):
    """What the chat core needs from the knowledge core; `knowledge.KnowledgeBase` is one."""

    @property
    def embedder_name(self) -> str: ...

    async def asearch(
        self, question: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> SearchResult:
        """The best `k` entries for `question` (under `section`, in `lang`), or a refusal; never blocks
        the event loop."""
        ...

    def lookup(self, text: str) -> Lookup:
        """The paper and code identifiers `text` names, and the entries they name exactly (blocking)."""
        ...

    def sections(self) -> SectionTree:
        """The collection's sections with their entry counts (blocking)."""
        ...

    def similar(
        self, entry_id: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> list[Neighbour] | None:
        """The entries nearest to `entry_id` by its stored vector, never itself; None when unknown (blocking)."""
        ...

    def sync(self, *, force: bool = False, rebuild: bool = False, fence: Fence | None = None) -> SyncReport:
        """Fetch the git sources and index what changed (everything when `force`; a new collection when
        `rebuild`); blocking, the core runs it in a thread. IngestLocked when another sync runs, or when
        `fence` (the check of the reindex lease) says the lease was lost before the index switched."""
        ...

    def source_status(self) -> list[SourceStatus]:
        """Each source's name (never a server path), commit and last sync (blocking)."""
        ...

    def new_entries(self, since: datetime | timedelta, *, limit: int | None = None) -> list[NewEntry]:
        """The entries first seen since `since` (or within a window ending now), newest first (blocking)."""
        ...

    def pending_digest(self, target: str) -> Digest | None:
        """The digest `target` has not had yet, or None (blocking)."""
        ...

    def claim_digest(self, digest: Digest) -> bool:
        """Record `digest` as posted; False when it already was: do not post it (blocking)."""
        ...

    def release_digest(self, digest: Digest) -> None:
        """Forget a claimed digest whose post failed (blocking)."""
        ...

    def stats(self) -> StoreStats:
        """What the index holds (blocking); raises KnowledgeError when the store is unreachable."""
        ...

    def health(self) -> Health:
        """Whether questions can be answered, and from what (blocking); never raises KnowledgeError."""
        ...


@dataclass(frozen=True)
class Question:
    """A question admitted for answering: cleaned, and cut to the length limit."""

    text: str
    truncated: bool = False  # it was cut to `max_question_chars`
    asker: str = ""  # who asks (the front-end's user key), for the records; "" when nobody (the console)


@dataclass(frozen=True)
class Scope:
    """Where an answer looks (a section, an entry language: `bot.request.LANGS`) and who sees it."""

    section: tuple[str, ...] = ()
    lang: str | None = None
    private: bool = False  # only the asker sees the answer (Discord: ephemeral; Slack: an ephemeral reply)


@dataclass(frozen=True)
class AnswerItem:
    """One entry as a reply shows it."""

    entry_id: str
    title: str
    summary: str
    url: str | None
    code_url: str | None
    section: tuple[str, ...]
    other_title: str | None = None  # the entry's title in the other language (its English paper title, say)
    weak: bool = False  # a closest match that may not be what was asked
    arxiv_id: str | None = None  # `1711.05101`, when the entry is an arXiv paper: readers cite it
    related: bool = False  # near what was asked, not what it named (a paper the collection lacks)
    # Without a primary link of its own, the entry's place in the collection on the web ("§3.24 …"); and
    # when even that is unknown, where it sits as text (`notes.md › 推荐 › 召回`): every item shows one.
    location_url: str | None = None
    location_text: str = ""
    place: str = ""
    added: datetime | None = None  # when the collection gained it (lists of new entries)

    @property
    def links_somewhere(self) -> bool:
        """Whether the item shows a URL: its own page or code, or its place in the collection."""
        return bool(self.url or self.location_url)


AnswerKind = Literal["search", "found", "missing", "similar"]


@dataclass(frozen=True)
class Answer:
    """A page of results for a question, or a clear refusal with a hint.

    `kind` says what the items are: the search's results; `found`: the entries a paper or code identifier
    of the question names exactly (`subject` is the identifier, `subject_section` where the first one
    sits), then related ones; `missing`: the question named a paper the collection lacks (`subject`), and
    the items are only related; `similar`: the entries nearest to item `number` of an answer (`subject`,
    its title).
    """

    id: str
    question: str
    items: tuple[AnswerItem, ...]
    page: int = 1
    pages: int = 1
    truncated: bool = False  # the question was cut to the length limit
    refused: bool = False
    locale: Locale = "en"  # the language of the reply's fixed texts
    scope: Scope = Scope()
    kind: AnswerKind = "search"
    subject: str = ""
    subject_section: tuple[str, ...] = ()
    number: int = 0

    @property
    def has_more(self) -> bool:
        return self.page < self.pages

    @property
    def hint(self) -> str:
        return texts.REFUSAL_HINT if self.refused else ""

    @property
    def private(self) -> bool:
        return self.scope.private


CHILDREN_PER_PAGE = 25  # subsections a browse page lists: as many as one Discord select menu holds
TOP = "top"  # the id of the collection's top level in browse state


@dataclass(frozen=True)
class BrowsePage:
    """One page of a walk through the collection's sections: a section (`path`, `()` for the top level)
    with its entry count, some of its subsections, and some of its own entries. The state is all here:
    front-ends put `section_id` and `page` in their buttons."""

    path: tuple[str, ...]
    count: int  # entries under the section, subsections included
    children: tuple[Section, ...]
    items: tuple[AnswerItem, ...]
    page: int = 1
    pages: int = 1
    first: int = 1  # the number of the page's first entry (entries are numbered across pages)
    locale: Locale = "en"

    @property
    def section_id(self) -> str:
        return section_id(self.path) if self.path else TOP

    @property
    def parent_id(self) -> str | None:
        """Where "up" goes: the parent section's id, `top`, or None at the top level."""
        if not self.path:
            return None
        return section_id(self.path[:-1]) if len(self.path) > 1 else TOP

    @property
    def has_more(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class Stats:
    """What the index holds (the store's own stats), each source's state, whether a reindex is running,
    and what readers did this week (None on a read-only replica, which records nothing)."""

    index: StoreStats
    reindex_running: bool
    sources: tuple[SourceStatus, ...] = ()
    activity: Activity | None = None


NEW_DAYS = 7  # /new's window by default
NEW_DAYS_MAX = 366
NEW_PAGE_SIZE = 10  # entries a page of /new lists
DIGEST_LISTED = 10  # entries a digest lists; the rest are counted, with a hint to use /new
DIGEST_FIRST_WINDOW = timedelta(days=NEW_DAYS)  # a channel's first digest announces no older entries
DIGEST_POST_SECONDS = 60.0


@dataclass(frozen=True)
class NewGroup:
    """The new entries of one section."""

    section: tuple[str, ...]
    items: tuple[AnswerItem, ...]


@dataclass(frozen=True)
class NewList:
    """Entries the collection gained, grouped by section (the section of the newest first), newest first:
    a page of `/new` (the last `days` days), or a digest (`digest`: the entries a sync added, at most
    `DIGEST_LISTED` of them; `more` were not listed)."""

    count: int  # entries in all (every page, or listed and not)
    groups: tuple[NewGroup, ...]
    days: int = NEW_DAYS
    page: int = 1
    pages: int = 1
    more: int = 0
    digest: bool = False
    locale: Locale = "en"

    @property
    def items(self) -> tuple[AnswerItem, ...]:
        return tuple(item for group in self.groups for item in group.items)

    @property
    def has_more(self) -> bool:
        return self.page < self.pages


class DigestPoster(Protocol):
    """Posts digests to one channel of a platform (the front-ends make them)."""

    @property
    def target(self) -> str:
        """The channel, as `discord:<channel id>` or `slack:<channel id>` (the digest log's key)."""
        ...

    @property
    def ready(self) -> bool:
        """Whether it can post now (Discord: logged in); a digest waits, unclaimed, until it can."""
        ...

    def post(self, digest: NewList) -> Awaitable[None]:
        """Post `digest`; raise when it could not be posted (it is then tried again after the next sync)."""
        ...


SESSION_FORMAT = 1  # of the answers kept in the state store: another format is an answer forgotten
REINDEX_LOCK = "reindex"  # the lease a reindex, a sync tick or a start-up ingest holds (on every replica)
DELIVERY_SECONDS = 3600.0  # how long a delivered message is remembered: Slack retries within minutes


def encode_answer(answer: Answer) -> str:
    """An answer with every item, as the state store keeps it (JSON; its id and page are the session's)."""

    def default(value: object) -> object:
        if isinstance(value, datetime):
            return {"time": value.isoformat()}
        raise TypeError(f"{type(value).__name__} is not JSON")

    data = asdict(replace(answer, id="", page=1, pages=1))
    return json.dumps({"format": SESSION_FORMAT, **data}, ensure_ascii=False, separators=(",", ":"), default=default)


def decode_answer(text: str) -> Answer | None:
    """The answer `encode_answer` kept; None when it is of another format or damaged (logged)."""
    try:
        data = json.loads(text)
        if data.pop("format", None) != SESSION_FORMAT:
            return None
        items = tuple(_decode_item(item) for item in data.pop("items"))
        scope = data.pop("scope")
        known = {field.name for field in fields(Answer)}
        values = {name: value for name, value in data.items() if name in known}
        values["subject_section"] = tuple(values.get("subject_section", ()))
        return Answer(
            **values,
            items=items,
            scope=Scope(tuple(scope["section"]), scope["lang"], bool(scope["private"])),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        _log.warning(
            "an answer in the state store cannot be read (%s: %s); it counts as forgotten", type(error).__name__, error
        )
        return None


def _decode_item(data: dict[str, object]) -> AnswerItem:
    known = {field.name for field in fields(AnswerItem)}
    values = {name: value for name, value in data.items() if name in known}
    section = values.get("section")
    values["section"] = tuple(section) if isinstance(section, list | tuple) else ()
    added = values.get("added")
    if isinstance(added, dict):
        values["added"] = datetime.fromisoformat(added["time"])
    return AnswerItem(**values)  # type: ignore[arg-type]


def visible(text: str) -> str:
    """`text` without control, zero-width and bidi characters, its spaces collapsed: what a reader sees
    (a zero-width space inside a word leaves the word whole)."""
    return " ".join(_INVISIBLE.sub("", without_escapes(text)).split())


def clean_question(text: str, limit: int) -> tuple[str, bool]:
    """Trimmed, without control or zero-width characters, cut to `limit` characters: (text, was cut)."""
    text = without_escapes(text.encode("utf-8", "replace").decode("utf-8"))
    text = _INVISIBLE.sub(" ", unicodedata.normalize("NFC", text))
    text = " ".join(text.split())
    if len(text) > limit:
        return text[:limit].rstrip(), True
    return text, False


# HTML that notes copy from web pages (`<ul style="list-style-type: none">` in a table cell): markup, not text.
# Known tag names only, so that "<subject, predicate, object>" stays.
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|p|br|hr|em|strong|span|div|ul|ol|li|img|table|thead|tbody|tr|td|th|sup|sub|font|center|"
    r"details|summary|blockquote|h[1-6])\b[^<>]*>",
    re.IGNORECASE,
)


def _summary(entry: Entry) -> str:
    """The entry's summary, else the first paragraph of its body that is one (`knowledge.blurb`), as one line
    without HTML tags, its LaTeX math as text (`readable_math`), cut to SUMMARY_CHARS."""
    text = " ".join(readable_math(_HTML_TAG.sub(" ", blurb(entry, SUMMARY_CHARS))).split())
    if text.endswith(_LEADS_ON):  # "拟合了如下的扩展法则：" introduced a formula the reply does not show
        text = text.rstrip(_LEADS_ON_CHARS).rstrip() + "…"
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


_LEADS_ON = (":", "：", ",", "，", "、", ";", "；")  # a summary ending so leads on to what follows it in the notes
_LEADS_ON_CHARS = "".join(_LEADS_ON)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _link(url: str | None) -> str | None:
    """A link a reply can show, without share and tracking parameters (`without_tracking`): none longer
    than URL_CHARS (it would not fit a message's block whole)."""
    if url is None:
        return None
    url = without_tracking(url)
    return url if len(url) <= URL_CHARS else None


def other_title(entry: Entry) -> str | None:
    """The first alternative title written in the other script: readers search in Chinese but cite in
    English, so a Chinese headline shows its English paper title, and the other way round."""
    chinese = bool(_HAN.search(entry.title))
    alt = next((alt for alt in entry.alt_titles if bool(_HAN.search(alt)) != chinese), None)
    return _cut(alt, TITLE_CHARS) if alt else None


def to_item(
    entry: Entry, *, weak: bool = False, added: datetime | None = None, under_section: bool = False
) -> AnswerItem:
    """How an entry is shown: its primary link (else its code link), a short summary, its section, its
    title in the other language, its arXiv id, and whether it is only a closest match. Without a primary
    link, its place in the collection (`Entry.location`), and without that, where it sits as text. Its
    title as an answer shows it (`Entry.shown_title`: "DPO › beta作用"), or as it is when the item is listed
    `under_section` (browse pages, /new), whose heading names the section already."""
    primary, code = entry.primary_link, entry.code_link
    location = entry.location if primary is None else None
    return AnswerItem(
        entry_id=entry.id,
        title=_cut(entry.title if under_section else entry.shown_title, TITLE_CHARS),
        summary=_summary(entry),
        url=_link(primary.url if primary else (code.url if code else None)),
        code_url=_link(code.url) if code and primary else None,
        section=entry.section_path,
        other_title=other_title(entry),
        weak=weak,
        arxiv_id=arxiv_id(entry),
        location_url=_link(location.url) if location else None,
        location_text=_cut(location.text, TITLE_CHARS) if location else "",
        place=_cut(entry.place, TITLE_CHARS) if entry.main_link is None else "",
        added=added,
    )


def group_new(items: Iterable[AnswerItem]) -> tuple[NewGroup, ...]:
    """Items (newest first) grouped by section: each section where its newest item comes."""
    groups: dict[tuple[str, ...], list[AnswerItem]] = {}
    for item in items:
        groups.setdefault(item.section, []).append(item)
    return tuple(NewGroup(section, tuple(grouped)) for section, grouped in groups.items())


class ChatCore:
    """What every front-end calls. Conversations and users are opaque strings chosen by the adapter."""

    def __init__(
        self,
        retriever: Retriever,
        settings: BotSettings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        state: StateStore | None = None,
    ) -> None:
        """`state` keeps answers, cooldowns, delivered messages and the reindex lease (`bot.state`); by
        default this process's memory on `clock`."""
        self.retriever = retriever
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.inflight = 0  # questions being answered now; shutdown waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._clock = clock
        self.state: StateStore = state or MemoryState(clock)
        self._session_seconds = settings.session_hours * 3600
        self._locales: OrderedDict[str, Locale] = OrderedDict()  # conversation -> the language of its last reply
        self._reindex: asyncio.Task[SyncReport] | None = None
        self.sync_skipped = False  # the last sync did not run: the lease was held or the state store unreachable
        self._keepers: set[LeaseKeeper] = set()  # the leases of the sync or reindex running, for `stop_writing`
        # What readers asked and voted (KB_DATA_DIR/bot.sqlite); a read-only replica writes nothing.
        self.records: Records | None = Records(settings.data_dir / DB_FILE) if settings.ingest_on_start else None
        self.digest_posters: list[DigestPoster] = []  # where digests go: the front-ends add theirs
        self._digests_lock = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        self._recording: set[asyncio.Task[None]] = set()  # questions being written to the records
        self._syncing: asyncio.Future[SyncReport] | None = None  # a tick's sync, running in a thread

    # -- the reply's language ----------------------------------------------------------------------
    def locale_for(self, conversation: str, *, text: str = "", tags: Iterable[str | None] = ()) -> Locale:
        """The language to reply in (see `bot.i18n.choose`): `KB_LOCALE` unless it is `auto`, else the
        platform's language `tags`, else the language of `text`, else the conversation's last reply's."""
        text = text[: self.settings.max_question_chars]  # as much as is searched: its language is clear by then
        locale = i18n.choose(self.settings.locale, tags=tags, text=text, last=self._locales.get(conversation))
        self._locales[conversation] = locale
        self._locales.move_to_end(conversation)
        if len(self._locales) > MAX_SESSIONS:
            self._locales.popitem(last=False)
        return locale

    def texts(self, locale: Locale) -> Texts:
        """The bot's texts in `locale`."""
        return texts_for(locale)

    # -- asking ----------------------------------------------------------------------------------
    def read_question(self, text: str) -> Question:
        """`text` cleaned and cut to `max_question_chars`; EmptyQuestion when nothing is left to search for."""
        cleaned, truncated = clean_question(text, self.settings.max_question_chars)
        if not any(ch.isalnum() for ch in cleaned):  # only punctuation, emoji or invisible characters
            raise EmptyQuestion()
        return Question(cleaned, truncated)

    async def admit(self, user: str, text: str) -> Question:
        """The question `user` asks, once it may be answered: EmptyQuestion for a blank one, then
        Cooldown when `user` asked less than the cooldown ago, on any replica (a blank question does not
        count)."""
        question = self.read_question(text)
        wait = self.settings.cooldown_seconds
        if wait > 0:
            left = await self.state.admit(user, wait)
            if left > 0:
                raise Cooldown(left)
        return question

    async def first_delivery(self, key: str) -> bool:
        """True the first time a message identified by `key` arrives (on any replica, within an hour), False
        for its retries and duplicates. When the state store cannot be reached it answers True (fail
        open: a message answered twice rather than never)."""
        return await self.state.claim(f"delivery:{key}", DELIVERY_SECONDS)

    async def sections(self) -> SectionTree:
        """The collection's sections with their entry counts."""
        return await asyncio.to_thread(self.retriever.sections)

    async def browse(
        self, section: str | None = None, page: int = 1, *, locale: Locale = "en", by_id: bool = False
    ) -> BrowsePage:
        """A page of the walk through the sections: the top level (no `section`, or `top`), else the
        section `section` names (its id, path or part of its name: UnknownSection when none matches; with
        `by_id`, from a button or menu, its id only: SectionGone when the collection no longer has it).
        Its subsections come first, up to 25 a page; then its own entries, `answer_size` a page; when the
        subsections fit on one page, its first entries share it. `page` is kept within the pages."""
        tree = await self.sections()
        section = visible(section or "")
        if section and section != TOP:
            found = tree.by_id(section) if by_id else tree.resolve(section)
            if found is None:
                raise SectionGone() if by_id else UnknownSection(section)
            path, count, children = found.path, found.count, found.children
        else:
            path, count, children = (), tree.total, tree.roots
        entries = tree.entries_in(path)
        size = self.settings.answer_size
        child_pages = [children[at : at + CHILDREN_PER_PAGE] for at in range(0, len(children), CHILDREN_PER_PAGE)]
        entry_pages = [tuple(entries[at : at + size]) for at in range(0, len(entries), size)]
        layout: list[tuple[tuple[Section, ...], tuple[Entry, ...]]]
        if len(child_pages) == 1 and entry_pages:
            layout = [(child_pages[0], entry_pages[0]), *(((), chunk) for chunk in entry_pages[1:])]
        else:
            layout = [(chunk, ()) for chunk in child_pages] + [((), chunk) for chunk in entry_pages]
        layout = layout or [((), ())]
        page = min(max(page, 1), len(layout))
        shown, listed = layout[page - 1]
        first = 1 + sum(len(chunk) for _, chunk in layout[: page - 1])
        items = tuple(to_item(entry, under_section=True) for entry in listed)
        return BrowsePage(path, count, shown, items, page, len(layout), first, locale)

    async def scope(self, section: str | None = None, lang: str | None = None, *, private: bool = False) -> Scope:
        """The scope a reader asks for: `section` as they name it (part of a section's name in either
        language, its number, or its path: `SectionTree.find`), resolved to the best match (UnknownSection
        when none matches), `lang` (`bot.request.LANGS`), and whether the answer is private."""
        path: tuple[str, ...] = ()
        section = visible(section or "")
        if section:
            found = (await self.sections()).resolve(section)
            if found is None:
                raise UnknownSection(section)
            path = found.path
        return Scope(path, LANGS.get(lang.lower(), lang) if lang else None, private)

    async def prepare(
        self,
        user: str | None,
        text: str,
        *,
        section: str | None = None,
        lang: str | None = None,
        private: bool = False,
    ) -> tuple[Question, Scope]:
        """The question `text` asks and its scope: options written in it (`bot.request`) and those given
        (which win). EmptyQuestion when no question is left, then UnknownSection when the section matches none,
        then Cooldown when `user` (None: nobody, as on the console) asks too quickly."""
        request = read_request(text)
        question = self.read_question(request.text)
        # A section that matches none is refused before the cooldown starts: the corrected question follows at once.
        scope = await self.scope(section or request.section, lang or request.lang, private=private or request.private)
        if user is not None:
            question = await self.admit(user, request.text)
        return replace(question, asker=user or ""), scope

    async def answer(
        self, conversation: str, question: Question, *, locale: Locale | None = None, scope: Scope = Scope()
    ) -> Answer:
        """Answer an admitted question with the first page of its answer, its fixed texts in `locale` (by
        default, the question's language: `locale_for`).

        A question that names papers or code (an arXiv id or link, OpenReview, a GitHub repository) is
        looked up exactly first: the entries found come first (`found`), whatever the scope; one that
        names a paper the collection lacks gets only related entries, searched with the rest of its words
        (`missing`). Anything else is searched within `scope`.
        """
        locale = locale or self.locale_for(conversation, text=question.text)
        size = self.settings.answer_size
        started = time.perf_counter()
        self.inflight += 1
        self._idle.clear()
        try:
            lookup = await asyncio.to_thread(self.retriever.lookup, question.text)
            text = without_identifiers(question.text) if lookup.identifiers else question.text
            result = None
            if any(ch.isalnum() for ch in text):
                k = size * self.settings.max_pages
                result = await self.retriever.asearch(text, k, section=scope.section, lang=scope.lang)
        except BaseException:
            self.metrics.errors.inc()
            raise
        finally:
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()
        self.metrics.questions.inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        truncated = question.truncated or bool(result and result.truncated)  # told, even if the retriever cut it
        template = Answer("", question.text, (), truncated=truncated, locale=locale, scope=scope)
        hits = [to_item(hit.entry, weak=not hit.confident) for hit in result.hits] if result else []
        if lookup.entries:
            exact = [to_item(entry) for entry in lookup.entries]
            shown = {item.entry_id for item in exact}
            related = [replace(item, related=True, weak=False) for item in hits if item.entry_id not in shown]
            labels = ", ".join(identifier.label for identifier in lookup.found)
            first = lookup.entries[0].section_path
            template = replace(template, kind="found", subject=labels, subject_section=first)
            items = exact + related
        elif lookup.papers:
            labels = ", ".join(identifier.label for identifier in lookup.papers)
            template = replace(template, kind="missing", subject=labels)
            items = [replace(item, related=True, weak=False) for item in hits]
        else:
            items = hits
        items = items[: size * self.settings.max_pages]
        if not items and (await asyncio.to_thread(self.retriever.sections)).total == 0:
            raise IndexEmpty()  # "nothing found" would blame the question, and record it as a gap
        kept = replace(template, items=tuple(items))
        answer_id = await self._remember(conversation, kept)
        refused = not items and template.kind == "search"
        outcome: Outcome = "missing" if template.kind == "missing" else "refused" if refused else "answered"
        self._record_question(conversation, question, outcome, template, items[:size])
        if not items:
            self.metrics.refusals.inc()
            return replace(template, id=answer_id, refused=refused)
        return self._page(answer_id, kept, 1)

    def _record_question(
        self, conversation: str, question: Question, outcome: Outcome, answer: Answer, shown: Sequence[AnswerItem]
    ) -> None:
        """Record an answered question (`bot.records`) in the background, so the reply never waits for it
        (`flush_records` waits); a failure to store it is one line in the log."""
        records = self.records
        if records is None:
            return
        platform = conversation.partition(":")[0]
        write = self._store(
            "a question",
            lambda: records.add_question(
                platform,
                question.asker or conversation,
                question.text,
                outcome,
                subject=answer.subject if outcome == "missing" else "",
                section=answer.scope.section,
                entry_ids=[item.entry_id for item in shown],
            ),
        )
        task = asyncio.get_running_loop().create_task(write)
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def flush_records(self, timeout: float = 10.0) -> bool:
        """Wait until the questions being recorded are stored (at most `timeout` s); True when they are."""
        if not self._recording:
            return True
        _, pending = await asyncio.wait(set(self._recording), timeout=timeout)
        return not pending

    async def _store(self, what: str, write: Callable[[], None], row: str = "") -> None:
        """Run `write` (a records call) in a thread; a failure is one line in the log (with `row`, what
        was not stored), never raised."""
        try:
            await asyncio.to_thread(write)
        except (OSError, sqlite3.Error) as error:
            where = self.settings.data_dir / DB_FILE
            _log.warning("could not record %s in %s (%s)%s", what, where, error, f": {row}" if row else "")

    async def ask(
        self,
        conversation: str,
        user: str | None,
        text: str,
        *,
        locale: Locale | None = None,
        section: str | None = None,
        lang: str | None = None,
        private: bool = False,
    ) -> Answer:
        """`prepare` then `answer`: raises EmptyQuestion for a blank question, Cooldown when `user` asks
        too quickly, UnknownSection for a section that matches none."""
        question, scope = await self.prepare(user, text, section=section, lang=lang, private=private)
        return await self.answer(conversation, question, locale=locale, scope=scope)

    async def similar(
        self, conversation: str, target: int | str, *, answer_id: str | None = None, locale: Locale | None = None
    ) -> Answer:
        """The entries nearest to one item of an answer, by the entry's stored vector (nothing is embedded),
        never the entry itself: `target` is the item's number in `answer_id` (by default the conversation's
        last answer; NoSuchItem when it has no such item), or its entry id (a button's value). The answer
        keeps the first one's privacy, not its filters: "more like this" looks in the entry's section and
        beyond."""
        answer_id = answer_id or await self._last_answer(conversation)
        found = await self._answer(answer_id) if answer_id else None
        if found is None:
            raise UnknownAnswer() if answer_id else NoSuchItem(number=target)
        asked, _ = found
        items = asked.items
        if isinstance(target, int):
            number = target
        else:
            number = next((at for at, item in enumerate(items, 1) if item.entry_id == target), 0)
        if not 1 <= number <= len(items):
            raise NoSuchItem(number=number) if isinstance(target, int) else UnknownAnswer()
        item = items[number - 1]
        neighbours = await asyncio.to_thread(self.retriever.similar, item.entry_id, self.settings.answer_size * 2)
        if neighbours is None:  # the entry left the collection since
            raise EntryGone()
        template = Answer(
            "",
            asked.question,
            tuple(to_item(neighbour.entry) for neighbour in neighbours),
            locale=locale or asked.locale,
            scope=Scope(private=asked.private),
            kind="similar",
            subject=item.title,
            number=number,
        )
        answer_id = await self._remember(conversation, template)
        if not template.items:
            return replace(template, id=answer_id)
        return self._page(answer_id, template, 1)

    async def drain(self, timeout: float) -> bool:
        """Wait until no question is being answered and the questions answered are recorded (at most
        `timeout` s); True when idle."""
        started = time.monotonic()
        if not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                return False
        return await self.flush_records(max(0.0, timeout - (time.monotonic() - started)))

    async def is_private(self, answer_id: str) -> bool:
        """Whether the answer `answer_id` is shown to its asker only; UnknownAnswer when it is forgotten (a
        button on an old message: the front-end says so before it shows "thinking…")."""
        found = await self._answer(answer_id)
        if found is None:
            raise UnknownAnswer()
        return found[0].private

    async def more(
        self,
        conversation: str,
        answer_id: str | None = None,
        *,
        locale: Locale | None = None,
        page: int | None = None,
    ) -> Answer:
        """The next page of `answer_id`, or of the conversation's last answer; its fixed texts in `locale`,
        by default in the answer's own language. Answers are kept in the state store: any replica pages
        any replica's answer, after a restart too, for `session_hours`.

        `page` (a "More results" button names the page after its message's): that page, whoever asked for it
        before, so that two readers of a channel, or a double click, each see page 2 under page 1."""
        answer_id = answer_id or await self._last_answer(conversation)
        found = await self._answer(answer_id) if answer_id else None
        if answer_id is None or found is None:
            raise UnknownAnswer() if answer_id else NothingMore()
        answer, shown = found
        if page is not None:
            if not 1 <= page <= self._pages(answer):
                raise NothingMore()
            if shown < page:  # the pages shown count for votes: the entries a vote judged
                await self.state.turn_page(f"answer:{answer_id}", page)
            return self._page(answer_id, answer, page, locale)
        turned = await self.state.turn_page(f"answer:{answer_id}", self._pages(answer))  # one page per press
        if turned is None:
            raise UnknownAnswer()
        if not turned.moved:
            raise NothingMore()
        return self._page(answer_id, answer, turned.page, locale)

    async def _remember(self, conversation: str, answer: Answer) -> str:
        """Keep `answer` (every item) for its buttons and `/more`: its id."""
        answer_id = secrets.token_hex(6)
        await self.state.put_session(f"answer:{answer_id}", encode_answer(answer), self._session_seconds)
        if not answer.private:  # someone's private answer is not the channel's to page
            await self.state.put_session(f"last:{conversation}", answer_id, self._session_seconds)
        return answer_id

    async def _answer(self, answer_id: str) -> tuple[Answer, int] | None:
        """The answer `answer_id` with every item, and how many of its pages were shown; None when forgotten."""
        session = await self.state.get_session(f"answer:{answer_id}")
        answer = decode_answer(session.value) if session is not None else None
        return (answer, session.shown) if answer is not None and session is not None else None

    async def _last_answer(self, conversation: str) -> str | None:
        session = await self.state.get_session(f"last:{conversation}")
        return session.value if session is not None else None

    def _pages(self, answer: Answer) -> int:
        size = self.settings.answer_size
        return max(1, -(-len(answer.items) // size))

    def _page(self, answer_id: str, answer: Answer, page: int, locale: Locale | None = None) -> Answer:
        size = self.settings.answer_size
        items = answer.items[(page - 1) * size : page * size]
        return replace(
            answer, id=answer_id, items=items, page=page, pages=self._pages(answer), locale=locale or answer.locale
        )

    # -- feedback --------------------------------------------------------------------------------
    async def record_vote(self, answer_id: str, vote: Vote, user: str, platform: str, *, locale: Locale = "en") -> str:
        """Store a 👍/👎 on an answer (question, the entries shown, vote, time) in the records, and return
        the thanks to show, in `locale`; UnknownAnswer when the answer is forgotten. A read-only replica
        writes the vote to its log instead."""
        found = await self._answer(answer_id)
        if found is None:
            raise UnknownAnswer()
        answer, pages_shown = found
        shown = answer.items[: pages_shown * self.settings.answer_size]
        entries = [(item.entry_id, item.title) for item in shown]
        question = answer.question
        records = self.records
        row = json.dumps(
            {"platform": platform, "question": question, "entries": entries, "vote": vote}, ensure_ascii=False
        )
        if records is None:  # a read-only replica never writes: the log keeps the vote
            _log.info("vote (not stored: read-only replica): %s", row)
        else:
            await self._store(
                "a vote", lambda: records.add_vote(platform, user, question, vote, entries, answer_id=answer_id), row
            )
        return texts_for(locale)(texts.THANKS)

    async def activity(self, days: int = 7) -> Activity | None:
        """What readers did in the last `days` days (None when nothing is recorded here, or it cannot be read)."""
        records = self.records
        if records is None:
            return None
        since = datetime.now(UTC) - timedelta(days=days)
        await self.flush_records()
        try:
            return await asyncio.to_thread(records.activity, since)
        except (OSError, sqlite3.Error) as error:
            _log.warning("could not read the records in %s: %s", records.path, error)
            return None

    # -- what's new --------------------------------------------------------------------------------
    async def new(self, days: int = NEW_DAYS, page: int = 1, *, locale: Locale = "en") -> NewList:
        """A page of the entries the collection gained in the last `days` days (BadDays unless 1 to 366),
        grouped by section, newest first, `NEW_PAGE_SIZE` a page; `page` is kept within the pages.
        KnowledgeUnavailable when the store cannot be reached."""
        if not 1 <= days <= NEW_DAYS_MAX:
            raise BadDays(days)
        found = await asyncio.to_thread(self.retriever.new_entries, timedelta(days=days))
        items = [
            item
            for group in group_new(to_item(new.entry, added=new.first_seen, under_section=True) for new in found)
            for item in group.items
        ]
        pages = max(1, -(-len(items) // NEW_PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = items[(page - 1) * NEW_PAGE_SIZE : page * NEW_PAGE_SIZE]
        return NewList(len(items), group_new(shown), days, page, pages, locale=locale)

    def digest_list(self, entries: Sequence[NewEntry], locale: Locale = "en") -> NewList:
        """A digest of `entries` (newest first): the `DIGEST_LISTED` newest, grouped by section, and how
        many more there are."""
        listed = [to_item(new.entry, added=new.first_seen, under_section=True) for new in entries[:DIGEST_LISTED]]
        return NewList(
            len(entries), group_new(listed), more=max(0, len(entries) - DIGEST_LISTED), digest=True, locale=locale
        )

    async def post_digests(self) -> int:
        """Post each channel's pending digest (`DigestPoster`s): the entries added since its last digest,
        once per sync state, even across restarts: the digest is claimed in the digest log before it is
        posted, and released when the post fails, so that the next sync tries again. A channel's first
        digest announces only entries added in the last week. Returns how many were posted."""
        posted = 0
        async with self._digests_lock:
            for poster in self.digest_posters:
                target = poster.target
                if not poster.ready:
                    continue
                try:
                    digest = await asyncio.to_thread(self.retriever.pending_digest, target)
                    if digest is None:
                        continue
                    entries = digest.entries
                    if digest.since is None:
                        start = datetime.now(UTC) - DIGEST_FIRST_WINDOW
                        entries = tuple(new for new in entries if new.first_seen >= start)
                    if not await asyncio.to_thread(self.retriever.claim_digest, digest):
                        continue
                except (KnowledgeError, OSError, sqlite3.Error) as error:
                    _log.warning("no digest for %s now: %s", target, error)
                    continue
                if not entries:
                    _log.info(
                        "first digest for %s: %d entries added before the last week not announced",
                        target,
                        len(digest.entries),
                    )
                    continue
                locale = i18n.choose(self.settings.locale, last=self._locales.get(target))
                if await self._post_digest(poster, digest, self.digest_list(entries, locale)):
                    posted += 1
        return posted

    async def _post_digest(self, poster: DigestPoster, digest: Digest, shown: NewList) -> bool:
        try:
            await asyncio.wait_for(poster.post(shown), DIGEST_POST_SECONDS)
        except Exception as error:  # noqa: BLE001 - whatever the platform says, the digest is tried again
            _log.warning(
                "could not post the digest of %d new entries to %s (%s); it is tried again after the next sync",
                shown.count,
                poster.target,
                f"{type(error).__name__}: {error}",
            )
            try:
                await asyncio.to_thread(self.retriever.release_digest, digest)
            except (KnowledgeError, OSError, sqlite3.Error) as again:
                _log.warning("could not release the digest for %s: %s", poster.target, again)
            return False
        _log.info("posted a digest of %d new entries to %s", shown.count, poster.target)
        return True

    def _spawn(self, work: Awaitable[object]) -> None:
        """Run `work` in the background, keeping a reference (the event loop keeps only weak ones)."""

        async def run() -> object:
            return await work

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def sync(self, *, force: bool = False) -> SyncReport | None:
        """One `KB_SYNC_INTERVAL` tick: fetch the git sources and index what changed (every source when
        `force`), then post the digests that are due. Skipped (None, and `sync_skipped` true) when a reindex
        or another sync runs, here or on another replica, or the state store cannot say; a sync that fails
        (the store is down, a mass removal refused) is one line in the log (None), and the current index
        keeps serving. A fetch that fails is in the report, the sources' status and the log (one line, the
        knowledge core's)."""
        self.sync_skipped = True
        if self.reindex_running:
            _log.info("sync skipped: a reindex is running")
            return None
        if self._syncing is not None and not self._syncing.done():
            return None
        try:
            keeper = await LeaseKeeper.take(self.state, REINDEX_LOCK)  # one sync or reindex on all replicas
        except StateUnavailable as error:
            _log.info("sync skipped: the state store is unreachable (%s)", error)
            return None
        if keeper is None:
            _log.info("sync skipped: a reindex or sync is running (here or on another replica)")
            return None
        self._keepers.add(keeper)
        # Shielded: cancelling the tick (at shutdown) leaves the thread to finish; `wait_for_writes` waits for it.
        self._syncing = asyncio.ensure_future(asyncio.to_thread(self.retriever.sync, force=force, fence=keeper.fence))
        self._syncing.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved if unawaited
        self._syncing.add_done_callback(lambda _: self._spawn(self._release(keeper)))
        try:
            report = await asyncio.shield(self._syncing)
        except IngestLocked as error:
            _log.info("sync skipped: %s", error)
            return None
        except KnowledgeError as error:
            self.sync_skipped = False
            _log.warning("sync failed: %s; the current index keeps serving", error)
            return None
        self.sync_skipped = False
        if report.ingest is not None and not report.ingest.complete:
            _log.warning("sync: %s", unread_sources(report.ingest))
        await self.post_digests()
        return report

    async def wait_for_writes(self, timeout: float) -> bool:
        """Wait until no sync or reindex runs (at most `timeout` s) and their leases are released; True then."""
        running = {task for task in (self._syncing, self._reindex) if task is not None and not task.done()}
        if running:
            await asyncio.wait(running, timeout=timeout)
        if any(not task.done() for task in running):
            return False
        for _ in range(100):  # the sync's lease is released by a task its end spawned
            if not self._keepers:
                break
            await asyncio.sleep(0.01)
        return True

    def stop_writing(self) -> None:
        """Make the running sync or reindex stop at its next batch (its fencing check fails): at shutdown,
        when it outlasts the drain. What it wrote stays; the next start's ingest completes it."""
        for keeper in self._keepers:
            keeper.give_up()

    async def _release(self, keeper: LeaseKeeper) -> None:
        try:
            await keeper.release()
        finally:
            self._keepers.discard(keeper)

    # -- admin -----------------------------------------------------------------------------------
    @property
    def reindex_running(self) -> bool:
        return self._reindex is not None and not self._reindex.done()

    async def start_reindex(self, user: str, *, full: bool = False) -> asyncio.Task[SyncReport]:
        """Start a reindex in the background; raises AlreadyRunning if one is running, here or on another
        replica (the reindex lease, in the state store), and CannotCoordinate when the state store cannot
        be reached to say so.

        A reindex is a sync that indexes whatever changed: it fetches the git sources first, then
        ingests every source (a full rebuild when `full`); the digests it makes due are posted after it.
        Answers keep coming from the current index meanwhile: an incremental ingest updates entries in
        place, and a full rebuild switches to the new collection only once it is complete. Tell the
        user `reindex_started(full=…)` now and `await reindex_outcome(task)` later. A read-only replica
        (`ingest_on_start` false) raises ReadOnlyReplica: it never writes.
        """
        if not self.settings.ingest_on_start:
            raise ReadOnlyReplica()
        if self.reindex_running:
            raise AlreadyRunning()
        try:
            keeper = await LeaseKeeper.take(self.state, REINDEX_LOCK)
        except StateUnavailable as error:
            _log.warning("reindex requested by %s refused: %s", user, error)
            raise CannotCoordinate() from None
        if keeper is None:
            raise AlreadyRunning()
        _log.info("reindex requested by %s (full=%s, lease token %d)", user, full, keeper.lease.token)
        self._keepers.add(keeper)
        task = asyncio.get_running_loop().create_task(self._run_reindex(user, full, keeper))
        # The failure is logged in _run_reindex; retrieving it here keeps asyncio from logging it again
        # when nobody waits for the outcome (e.g. the console quits first).
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._reindex = task
        return task

    @staticmethod
    def reindex_started(*, full: bool, locale: Locale = "en") -> str:
        """What to tell the user who just started a reindex."""
        return texts_for(locale)(texts.FULL_REBUILD_STARTED if full else texts.REINDEX_STARTED)

    async def _run_reindex(self, user: str, full: bool, keeper: LeaseKeeper) -> SyncReport:
        self.metrics.reindex_runs.inc()
        try:
            report = await asyncio.to_thread(self.retriever.sync, force=True, rebuild=full, fence=keeper.fence)
        except KnowledgeError as error:  # expected (locked, unavailable, a mass removal): one line
            self.metrics.reindex_failures.inc()
            _log.warning("reindex requested by %s failed: %s", user, error)
            raise
        except BaseException:
            self.metrics.reindex_failures.inc()
            _log.exception("reindex requested by %s failed", user)
            raise
        finally:
            await self._release(keeper)
        if report.ingest is not None and not report.ingest.complete:
            _log.warning("reindex requested by %s: %s", user, unread_sources(report.ingest))
        _log.info("reindex requested by %s done: %s", user, report.as_dict())
        if self.digest_posters:
            self._spawn(self.post_digests())  # the summary does not wait for the digests
        return report

    @staticmethod
    async def reindex_outcome(task: asyncio.Task[SyncReport], locale: Locale = "en") -> str:
        """Wait for the reindex `task` to finish and say how it went, in `locale`: its summary, or why it
        failed (never the exception's text). Cancelling this wait does not cancel the reindex."""
        await asyncio.wait([task])
        t = texts_for(locale)
        if task.cancelled():
            return t(texts.REINDEX_FAILED)
        error = task.exception()
        if error is None:
            return reindex_summary(task.result(), t)
        if isinstance(error, BotError):
            return error.message_in(t)
        if isinstance(error, KnowledgeError):
            return t(error.user_message)
        return t(texts.REINDEX_FAILED)

    async def stats(self) -> Stats:
        """What the index holds, each source's state, whether a reindex is running, and this week's
        questions and votes; KnowledgeError when the store is unreachable."""
        index = await asyncio.to_thread(self.retriever.stats)
        sources = await asyncio.to_thread(self.retriever.source_status)
        running = self.reindex_running or await self.reindex_elsewhere()
        return Stats(index, running, tuple(sources), await self.activity())

    async def reindex_elsewhere(self) -> bool:
        """Whether the reindex lease is held (by a reindex, sync or start-up ingest, on any replica)."""
        try:
            return await self.state.held(REINDEX_LOCK)
        except StateUnavailable:
            return False

    async def state_health(self) -> dict[str, object]:
        """The state store for /healthz: which one, and whether it answers now."""
        try:
            await self.state.ping()
        except StateUnavailable:
            return {"store": self.state.backend, "reachable": False}
        return {"store": self.state.backend, "reachable": True}

    async def health(self) -> Health:
        """Whether questions can be answered, and from what."""
        return await asyncio.to_thread(self.retriever.health)

    @property
    def embedder_name(self) -> str:
        return self.retriever.embedder_name

    @staticmethod
    def help(locale: Locale = "en", commands: Commands | None = None, *, mentions: bool = False) -> str:
        """How to use the bot, in `locale`, naming the platform's `commands`; `mentions`: the platform
        answers mentions and direct messages too."""
        return help_text(texts_for(locale), commands or Commands(), mentions=mentions)


@dataclass(frozen=True)
class Commands:
    """How a platform spells the bot's commands, for its help and hints; `options`: its ask command has
    real options (Discord) rather than inline ones."""

    ask: str = "/ask"
    more: str = "/more"
    similar: str = "/similar"
    browse: str = "/browse"
    new: str = "/new"
    stats: str = "/stats"
    reindex: str = "/reindex"
    help: str = "/help"
    options: bool = False


def help_text(t: Texts, commands: Commands, *, mentions: bool = False) -> str:
    """The help in `t`'s language, naming `commands`."""
    names = {name: value for name, value in vars(commands).items() if isinstance(value, str)}
    lines = [
        t(texts.HELP_INTRO),
        "",
        t(texts.HELP_ASK, ask=commands.ask, usage=t(texts.USAGE, ask=commands.ask)),
        t(texts.HELP_DISCORD_FILTERS if commands.options else texts.HELP_FILTERS, **names),
        t(texts.HELP_LOOKUP),
        t(texts.HELP_MORE, **names),
        t(texts.HELP_SIMILAR, **names),
        t(texts.HELP_BROWSE, **names),
        t(texts.HELP_NEW, **names),
        t(texts.HELP_STATS, **names),
        t(texts.HELP_REINDEX, **names),
        t(texts.HELP_HELP, **names),
    ]
    if mentions:
        lines.append(t(texts.HELP_MENTION))
    return "\n".join(lines)


def reindex_summary(report: SyncReport, t: Texts | None = None) -> str:
    """One line for the chat when a reindex finishes, in `t`'s language (English by default): what was
    indexed (embedded + unchanged + updated entries make the index; removed ones left it), files skipped,
    entries kept, and the sources that could not be fetched (by name)."""
    t = t or texts_for("en")
    failed = t(texts.REINDEX_FETCH_FAILED, sources=", ".join(s.name for s in report.failed)) if report.failed else ""
    if report.ingest is None:
        return t(texts.SYNC_NOTHING_CHANGED) + failed
    s = report.ingest.summary
    text = t(
        texts.REINDEX_DONE,
        seconds=report.seconds,
        entries=s.entries,
        embedded=s.embedded,
        unchanged=s.unchanged,
        updated=s.updated,
        removed=s.removed,
    )
    skipped = len(report.ingest.parsed.skipped)
    text += t(texts.REINDEX_SKIPPED, skipped=skipped) if skipped else ""
    return text + (t(texts.REINDEX_KEPT, kept=s.kept) if s.kept else "") + failed


def unread_sources(report: IngestReport) -> str:
    """For the log, one line: which sources could not be read or listed, and how many entries were kept."""
    parsed = report.parsed
    problems = [f"{skip.file} ({skip.reason})" for skip in parsed.skipped]
    problems += [f"{folder} (could not be listed)" for folder in parsed.unlisted]
    return (
        f"not every source could be read; {report.summary.kept} entries of theirs were kept as they were: "
        + "; ".join(problems)
    )


def _time(when: datetime | None, t: Texts) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else t(texts.STATS_NEVER)


def source_line(source: SourceStatus, t: Texts) -> str:
    """A source as `/stats` shows it, by its name or public URL (never a path on the server): for a git
    source its branch, the commit the index holds and that commit's date, and the last successful sync;
    and when the last sync failed, when (the reason is for the log and /healthz, not the chat)."""
    if source.kind != "git":
        return f"• {source.name}"
    branch = source.branch or "-"
    if source.commit:
        date = source.commit_date.strftime("%Y-%m-%d") if source.commit_date else "-"
        line = t(
            texts.STATS_GIT_SOURCE,
            name=source.name,
            branch=branch,
            commit=source.commit[:10],
            date=date,
            synced=_time(source.synced_at, t),
        )
    else:
        line = t(texts.STATS_GIT_NOT_INDEXED, name=source.name, branch=branch)
    if source.error:
        line += t(texts.STATS_SYNC_FAILED, when=_time(source.failed_at, t))
    return line


def stats_text(stats: Stats, t: Texts | None = None) -> str:
    """For the chat, in `t`'s language (English by default): what the index holds, since when, whether a
    reindex is running; each source (`source_line`); and this week's questions and votes."""
    t = t or texts_for("en")
    index = stats.index
    lines = [
        t.count(
            texts.STATS,
            index.entries,
            entries=index.entries,
            when=_time(index.indexed_at, t),
            embedder=index.embedder,
            running=t(texts.STATS_REINDEX_RUNNING) if stats.reindex_running else "",
        )
    ]
    if stats.sources:
        lines.append(t(texts.STATS_SOURCES, count=len(stats.sources)))
        lines += [source_line(source, t) for source in stats.sources]
    if stats.activity is not None:
        a = stats.activity
        lines.append(
            t.count(texts.STATS_ACTIVITY, a.answered, answered=a.answered, refused=a.refused, up=a.up, down=a.down)
        )
    return "\n".join(lines)
