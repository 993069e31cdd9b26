"""The transport-agnostic chat core: ask, more, similar, browse, reindex, stats, help, feedback. No platform
imports.

The core owns the policy every front-end shares: how a question is cleaned and cut (and that the user is
told), its options and scope, the exact lookup of a paper it names before any search, the order of the
checks before a question is answered, the cooldown, paging, privacy, the language of each reply, vote
recording, and what is said when a reindex starts and ends. Adapters turn platform events into these calls
and render what comes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Literal, Protocol

from bot import i18n, texts
from bot.errors import (
    AlreadyRunning,
    BotError,
    Cooldown,
    EmptyQuestion,
    NoSuchItem,
    NothingMore,
    ReadOnlyReplica,
    UnknownAnswer,
    UnknownSection,
)
from bot.i18n import Locale, Texts, texts_for
from bot.metrics import Metrics
from bot.request import LANGS, read_request
from bot.settings import BotSettings
from knowledge import (
    Entry,
    Health,
    IngestReport,
    KnowledgeError,
    Lookup,
    Neighbour,
    SearchResult,
    Section,
    SectionTree,
    StoreStats,
    arxiv_id,
    section_id,
    without_identifiers,
)

_log = logging.getLogger(__name__)

SUMMARY_CHARS = 180
TITLE_CHARS = 300  # a title longer than this (a parse gone wrong) is cut: a reply stays readable
MAX_SESSIONS = 2000
# Controls, zero-width characters, and bidi marks, embeddings, overrides and isolates.
_INVISIBLE = re.compile(
    r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
Vote = Literal["up", "down"]
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

    def ingest(self, *, rebuild: bool = False) -> IngestReport:
        """Bring the index up to date with the sources (blocking; the core runs it in a thread)."""
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
    """What the index holds (the store's own stats), and whether a reindex is running."""

    index: StoreStats
    reindex_running: bool


@dataclass
class _Session:
    answer: Answer  # every item, as page 1 would show them
    shown: int = 1  # pages shown so far


def clean_question(text: str, limit: int) -> tuple[str, bool]:
    """Trimmed, without control or zero-width characters, cut to `limit` characters: (text, was cut)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _INVISIBLE.sub(" ", unicodedata.normalize("NFC", text))
    text = " ".join(text.split())
    if len(text) > limit:
        return text[:limit].rstrip(), True
    return text, False


def _summary(entry: Entry) -> str:
    text = " ".join((entry.summary or entry.body).split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def other_title(entry: Entry) -> str | None:
    """The first alternative title written in the other script: readers search in Chinese but cite in
    English, so a Chinese headline shows its English paper title, and the other way round."""
    chinese = bool(_HAN.search(entry.title))
    alt = next((alt for alt in entry.alt_titles if bool(_HAN.search(alt)) != chinese), None)
    return _cut(alt, TITLE_CHARS) if alt else None


def to_item(entry: Entry, *, weak: bool = False) -> AnswerItem:
    """How an entry is shown: its primary link (else its code link), a short summary, its section, its
    title in the other language, its arXiv id, and whether it is only a closest match."""
    primary, code = entry.primary_link, entry.code_link
    return AnswerItem(
        entry_id=entry.id,
        title=_cut(entry.title, TITLE_CHARS),
        summary=_summary(entry),
        url=primary.url if primary else (code.url if code else None),
        code_url=code.url if code and primary else None,
        section=entry.section_path,
        other_title=other_title(entry),
        weak=weak,
        arxiv_id=arxiv_id(entry),
    )


class ChatCore:
    """What every front-end calls. Conversations and users are opaque strings chosen by the adapter."""

    def __init__(
        self,
        retriever: Retriever,
        settings: BotSettings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retriever = retriever
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.inflight = 0  # questions being answered now; shutdown waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._last: dict[str, str] = {}  # conversation -> answer id
        self._locales: OrderedDict[str, Locale] = OrderedDict()  # conversation -> the language of its last reply
        self._asked: dict[str, float] = {}  # user -> when they last asked
        self._reindex: asyncio.Task[IngestReport] | None = None
        self._feedback_lock = asyncio.Lock()
        self.feedback_path: Path = settings.data_dir / "feedback.jsonl"

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

    def admit(self, user: str, text: str) -> Question:
        """The question `user` asks, once it may be answered: EmptyQuestion for a blank one, then
        Cooldown when `user` asked less than the cooldown ago (a blank question does not count)."""
        question = self.read_question(text)
        self._check_cooldown(user)
        return question

    def _check_cooldown(self, user: str) -> None:
        now = self._clock()
        last = self._asked.get(user)
        wait = self.settings.cooldown_seconds
        if last is not None and now - last < wait:
            raise Cooldown(wait - (now - last))
        self._asked[user] = now
        if len(self._asked) > 10 * MAX_SESSIONS:  # forget users who asked long ago
            self._asked = {u: t for u, t in self._asked.items() if now - t < wait}

    async def sections(self) -> SectionTree:
        """The collection's sections with their entry counts."""
        return await asyncio.to_thread(self.retriever.sections)

    async def browse(self, section: str | None = None, page: int = 1, *, locale: Locale = "en") -> BrowsePage:
        """A page of the walk through the sections: the top level (no `section`, or `top`), else the
        section `section` names (its id, path or part of its name: UnknownSection when none matches).
        Its subsections come first, up to 25 a page; then its own entries, `answer_size` a page; when the
        subsections fit on one page, its first entries share it. `page` is kept within the pages."""
        tree = await self.sections()
        if section and section.strip() and section.strip() != TOP:
            found = tree.resolve(section)
            if found is None:
                raise UnknownSection(section.strip())
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
        items = tuple(to_item(entry) for entry in listed)
        return BrowsePage(path, count, shown, items, page, len(layout), first, locale)

    async def scope(self, section: str | None = None, lang: str | None = None, *, private: bool = False) -> Scope:
        """The scope a reader asks for: `section` as they name it (part of a section's name in either
        language, its number, or its path: `SectionTree.find`), resolved to the best match (UnknownSection
        when none matches), `lang` (`bot.request.LANGS`), and whether the answer is private."""
        path: tuple[str, ...] = ()
        if section and section.strip():
            found = (await self.sections()).resolve(section)
            if found is None:
                raise UnknownSection(section.strip())
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
        (which win). EmptyQuestion when no question is left, Cooldown when `user` (None: nobody, as on the
        console) asks too quickly, UnknownSection when the section matches none."""
        request = read_request(text)
        question = self.admit(user, request.text) if user is not None else self.read_question(request.text)
        scope = await self.scope(section or request.section, lang or request.lang, private=private or request.private)
        return question, scope

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
        answer_id = self._remember(conversation, _Session(replace(template, items=tuple(items))))
        if not items:
            self.metrics.refusals.inc()
            return replace(template, id=answer_id, refused=template.kind == "search")
        return self._page(answer_id, 1)

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
        answer_id = answer_id or self._last.get(conversation)
        session = self._sessions.get(answer_id) if answer_id else None
        if session is None:
            raise UnknownAnswer() if answer_id else NoSuchItem(number=target)
        items = session.answer.items
        if isinstance(target, int):
            number = target
        else:
            number = next((at for at, item in enumerate(items, 1) if item.entry_id == target), 0)
        if not 1 <= number <= len(items):
            raise NoSuchItem(number=number) if isinstance(target, int) else UnknownAnswer()
        item = items[number - 1]
        neighbours = await asyncio.to_thread(self.retriever.similar, item.entry_id, self.settings.answer_size * 2)
        if neighbours is None:  # the entry left the collection since
            raise UnknownAnswer()
        template = Answer(
            "",
            session.answer.question,
            tuple(to_item(neighbour.entry) for neighbour in neighbours),
            locale=locale or session.answer.locale,
            scope=Scope(private=session.answer.private),
            kind="similar",
            subject=item.title,
            number=number,
        )
        answer_id = self._remember(conversation, _Session(template))
        if not template.items:
            return replace(template, id=answer_id)
        return self._page(answer_id, 1)

    async def drain(self, timeout: float) -> bool:
        """Wait until no question is being answered (at most `timeout` s); True when idle."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def is_private(self, answer_id: str) -> bool:
        """Whether the answer `answer_id` is shown to its asker only (False when it is forgotten)."""
        session = self._sessions.get(answer_id)
        return session is not None and session.answer.private

    async def more(self, conversation: str, answer_id: str | None = None, *, locale: Locale | None = None) -> Answer:
        """The next page of `answer_id`, or of the conversation's last answer; its fixed texts in `locale`,
        by default in the answer's own language."""
        answer_id = answer_id or self._last.get(conversation)
        session = self._sessions.get(answer_id) if answer_id else None
        if answer_id is None or session is None:
            raise UnknownAnswer() if answer_id else NothingMore()
        pages = self._pages(session)
        if session.shown >= pages:
            raise NothingMore()
        session.shown += 1
        return self._page(answer_id, session.shown, locale)

    def _remember(self, conversation: str, session: _Session) -> str:
        answer_id = secrets.token_hex(6)
        self._sessions[answer_id] = session
        if not session.answer.private:  # someone's private answer is not the channel's to page
            self._last[conversation] = answer_id
        while len(self._sessions) > MAX_SESSIONS:
            old, _ = self._sessions.popitem(last=False)
            self._last = {c: a for c, a in self._last.items() if a != old}
        return answer_id

    def _pages(self, session: _Session) -> int:
        size = self.settings.answer_size
        return max(1, -(-len(session.answer.items) // size))

    def _page(self, answer_id: str, page: int, locale: Locale | None = None) -> Answer:
        session = self._sessions[answer_id]
        size = self.settings.answer_size
        items = session.answer.items[(page - 1) * size : page * size]
        return replace(
            session.answer,
            id=answer_id,
            items=items,
            page=page,
            pages=self._pages(session),
            locale=locale or session.answer.locale,
        )

    # -- feedback --------------------------------------------------------------------------------
    async def record_vote(self, answer_id: str, vote: Vote, user: str, platform: str, *, locale: Locale = "en") -> str:
        """Store a 👍/👎 on an answer (question, entry ids shown, vote, time) for later evaluation, and
        return the thanks to show, in `locale`; UnknownAnswer when the answer is forgotten. The file is
        written in a thread, one vote at a time."""
        session = self._sessions.get(answer_id)
        if session is None:
            raise UnknownAnswer()
        shown = session.answer.items[: session.shown * self.settings.answer_size]
        row = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "platform": platform,
            "user": user,
            "question": session.answer.question,
            "entry_ids": [item.entry_id for item in shown],
            "vote": vote,
        }
        line = json.dumps(row, ensure_ascii=False)
        if not self.settings.ingest_on_start:  # a read-only replica never writes: the log keeps the vote
            _log.info("vote (not stored: read-only replica): %s", line)
            return texts_for(locale)(texts.THANKS)
        async with self._feedback_lock:
            try:
                await asyncio.to_thread(self._append_feedback, line)
            except OSError as error:
                _log.warning("could not store a vote in %s (%s): %s", self.feedback_path, error.strerror or error, line)
        return texts_for(locale)(texts.THANKS)

    def _append_feedback(self, line: str) -> None:
        self.feedback_path.parent.mkdir(parents=True, exist_ok=True)
        with self.feedback_path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    # -- admin -----------------------------------------------------------------------------------
    @property
    def reindex_running(self) -> bool:
        return self._reindex is not None and not self._reindex.done()

    def start_reindex(self, user: str, *, full: bool = False) -> asyncio.Task[IngestReport]:
        """Start a reindex in the background; raises AlreadyRunning if one is running.

        Answers keep coming from the current index meanwhile: an incremental ingest updates entries
        in place, and a full rebuild switches to the new collection only once it is complete. Tell the
        user `reindex_started(full=…)` now and `await reindex_outcome(task)` later. A read-only replica
        (`ingest_on_start` false) raises ReadOnlyReplica: it never writes.
        """
        if not self.settings.ingest_on_start:
            raise ReadOnlyReplica()
        if self.reindex_running:
            raise AlreadyRunning()
        _log.info("reindex requested by %s (full=%s)", user, full)
        task = asyncio.get_running_loop().create_task(self._run_reindex(user, full))
        # The failure is logged in _run_reindex; retrieving it here keeps asyncio from logging it again
        # when nobody waits for the outcome (e.g. the console quits first).
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._reindex = task
        return task

    @staticmethod
    def reindex_started(*, full: bool, locale: Locale = "en") -> str:
        """What to tell the user who just started a reindex."""
        return texts_for(locale)(texts.FULL_REBUILD_STARTED if full else texts.REINDEX_STARTED)

    async def _run_reindex(self, user: str, full: bool) -> IngestReport:
        self.metrics.reindex_runs.inc()
        try:
            report = await asyncio.to_thread(self.retriever.ingest, rebuild=full)
        except KnowledgeError as error:  # expected (locked, unavailable, a mass removal): one line
            self.metrics.reindex_failures.inc()
            _log.warning("reindex requested by %s failed: %s", user, error)
            raise
        except BaseException:
            self.metrics.reindex_failures.inc()
            _log.exception("reindex requested by %s failed", user)
            raise
        if not report.complete:
            _log.warning("reindex requested by %s: %s", user, unread_sources(report))
        _log.info("reindex requested by %s done: %s", user, report.as_dict())
        return report

    @staticmethod
    async def reindex_outcome(task: asyncio.Task[IngestReport], locale: Locale = "en") -> str:
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
        """What the index holds, and whether a reindex is running; KnowledgeError when unreachable."""
        return Stats(await asyncio.to_thread(self.retriever.stats), self.reindex_running)

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
        t(texts.HELP_STATS, **names),
        t(texts.HELP_REINDEX, **names),
        t(texts.HELP_HELP, **names),
    ]
    if mentions:
        lines.append(t(texts.HELP_MENTION))
    return "\n".join(lines)


def reindex_summary(report: IngestReport, t: Texts | None = None) -> str:
    """One line for the chat when a reindex finishes, in `t`'s language (English by default)."""
    t = t or texts_for("en")
    s = report.summary
    text = t(
        texts.REINDEX_DONE,
        seconds=s.seconds,
        entries=s.entries,
        embedded=s.embedded,
        unchanged=s.unchanged,
        removed=s.removed,
    )
    skipped = len(report.parsed.skipped)
    text += t(texts.REINDEX_SKIPPED, skipped=skipped) if skipped else ""
    return text + (t(texts.REINDEX_KEPT, kept=s.kept) if s.kept else "")


def unread_sources(report: IngestReport) -> str:
    """For the log, one line: which sources could not be read or listed, and how many entries were kept."""
    parsed = report.parsed
    problems = [f"{skip.file} ({skip.reason})" for skip in parsed.skipped]
    problems += [f"{folder} (could not be listed)" for folder in parsed.unlisted]
    return (
        f"not every source could be read; {report.summary.kept} entries of theirs were kept as they were: "
        + "; ".join(problems)
    )


def source_name(source: str) -> str:
    """A source as chat replies show it: its file or folder name, never the server's path to it."""
    return PurePath(source).name or source


def stats_text(stats: Stats, t: Texts | None = None) -> str:
    """One line for the chat, in `t`'s language (English by default): what the index holds, since when,
    and whether a reindex is running. Sources are shown by name only: chat replies never show server paths."""
    t = t or texts_for("en")
    index = stats.index
    return t(
        texts.STATS,
        entries=index.entries,
        source_count=len(index.sources),
        sources=", ".join(source_name(source) for source in index.sources) or t(texts.STATS_NO_SOURCES),
        when=index.indexed_at.strftime("%Y-%m-%d %H:%M UTC") if index.indexed_at else t(texts.STATS_NEVER),
        embedder=index.embedder,
        running=t(texts.STATS_REINDEX_RUNNING) if stats.reindex_running else "",
    )
