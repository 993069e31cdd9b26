"""The transport-agnostic chat core: ask, more, reindex, stats, help, feedback. No platform imports."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from bot.errors import USAGE, AlreadyRunning, Cooldown, EmptyQuestion, NothingMore, UnknownAnswer
from bot.metrics import Metrics
from bot.settings import BotSettings
from knowledge.base import IngestReport, KnowledgeBase
from knowledge.entry import Entry
from knowledge.search import SearchResult
from knowledge.store import StoreStats

_log = logging.getLogger(__name__)

SUMMARY_CHARS = 180
MAX_SESSIONS = 2000
# Controls, zero-width characters, and bidi marks, embeddings, overrides and isolates.
_INVISIBLE = re.compile(
    r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
Vote = Literal["up", "down"]

HELP = f"""\
I answer questions from a curated collection of machine-learning reading notes (paper titles, Chinese
article headlines, summaries and links), in Chinese or English.

• ask: {USAGE}
• more: the next results for the last question
• stats: what the index holds and when it was built
• reindex: re-read the collection (admins only); answers keep coming meanwhile
• help: this text"""


@dataclass(frozen=True)
class AnswerItem:
    """One entry as a reply shows it."""

    entry_id: str
    title: str
    summary: str
    url: str | None
    code_url: str | None
    section: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    """A page of results for a question, or a clear refusal with a hint."""

    id: str
    question: str
    items: tuple[AnswerItem, ...]
    page: int = 1
    pages: int = 1
    truncated: bool = False  # the question was cut to the length limit
    refused: bool = False

    @property
    def has_more(self) -> bool:
        return self.page < self.pages

    @property
    def hint(self) -> str:
        return "Try the other language (中文 / English), or broader words." if self.refused else ""


@dataclass(frozen=True)
class Stats:
    """What the index holds (the store's own stats), and whether a reindex is running."""

    index: StoreStats
    reindex_running: bool


@dataclass
class _Session:
    question: str
    items: list[AnswerItem]
    truncated: bool
    shown: int = 1  # pages shown so far
    created: float = field(default_factory=time.monotonic)


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


def to_item(entry: Entry) -> AnswerItem:
    primary, code = entry.primary_link, entry.code_link
    return AnswerItem(
        entry_id=entry.id,
        title=entry.title,
        summary=_summary(entry),
        url=primary.url if primary else (code.url if code else None),
        code_url=code.url if code and primary else None,
        section=entry.section_path,
    )


class ChatCore:
    """What every front-end calls. Conversations and users are opaque strings chosen by the adapter."""

    def __init__(
        self,
        kb: KnowledgeBase,
        settings: BotSettings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kb = kb
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.inflight = 0  # questions being answered now; shutdown waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._last: dict[str, str] = {}  # conversation -> answer id
        self._asked: dict[str, float] = {}  # user -> when they last asked
        self._reindex: asyncio.Task[IngestReport] | None = None
        self.feedback_path = settings.data_dir / "feedback.jsonl"

    # -- asking ----------------------------------------------------------------------------------
    def check_cooldown(self, user: str) -> None:
        """Raise Cooldown when `user` asked less than the cooldown ago; otherwise note the question."""
        now = self._clock()
        last = self._asked.get(user)
        wait = self.settings.cooldown_seconds
        if last is not None and now - last < wait:
            raise Cooldown(wait - (now - last))
        self._asked[user] = now
        if len(self._asked) > 10 * MAX_SESSIONS:  # forget users who asked long ago
            self._asked = {u: t for u, t in self._asked.items() if now - t < wait}

    def check_question(self, question: str) -> tuple[str, bool]:
        """The question cleaned and cut (text, was cut); EmptyQuestion when nothing is left to search for."""
        text, truncated = clean_question(question, self.settings.max_question_chars)
        if not any(ch.isalnum() for ch in text):  # only punctuation, emoji or invisible characters
            raise EmptyQuestion()
        return text, truncated

    async def ask(self, conversation: str, user: str, question: str, *, cooldown: bool = True) -> Answer:
        """Search the collection and return the first page of the answer.

        Raises EmptyQuestion for a blank question and Cooldown when `user` asks too quickly.
        """
        text, truncated = self.check_question(question)
        if cooldown:
            self.check_cooldown(user)
        size = self.settings.answer_size
        started = time.perf_counter()
        self.inflight += 1
        self._idle.clear()
        try:
            result: SearchResult = await self.kb.asearch(text, size * self.settings.max_pages)
        except BaseException:
            self.metrics.errors.inc()
            raise
        finally:
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()
        self.metrics.questions.inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        items = [to_item(hit.entry) for hit in result.hits]
        answer_id = self._remember(conversation, _Session(text, items, truncated))
        if not items:
            self.metrics.refusals.inc()
            return Answer(answer_id, text, (), truncated=truncated, refused=True)
        return self._page(answer_id, 1)

    async def drain(self, timeout: float) -> bool:
        """Wait until no question is being answered (at most `timeout` s); True when idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def more(self, conversation: str, answer_id: str | None = None) -> Answer:
        """The next page of `answer_id`, or of the conversation's last answer."""
        answer_id = answer_id or self._last.get(conversation)
        session = self._sessions.get(answer_id) if answer_id else None
        if answer_id is None or session is None:
            raise UnknownAnswer() if answer_id else NothingMore()
        pages = self._pages(session)
        if session.shown >= pages:
            raise NothingMore()
        session.shown += 1
        return self._page(answer_id, session.shown)

    def _remember(self, conversation: str, session: _Session) -> str:
        answer_id = secrets.token_hex(6)
        self._sessions[answer_id] = session
        self._last[conversation] = answer_id
        while len(self._sessions) > MAX_SESSIONS:
            old, _ = self._sessions.popitem(last=False)
            self._last = {c: a for c, a in self._last.items() if a != old}
        return answer_id

    def _pages(self, session: _Session) -> int:
        size = self.settings.answer_size
        return max(1, -(-len(session.items) // size))

    def _page(self, answer_id: str, page: int) -> Answer:
        session = self._sessions[answer_id]
        size = self.settings.answer_size
        items = tuple(session.items[(page - 1) * size : page * size])
        return Answer(answer_id, session.question, items, page, self._pages(session), session.truncated)

    # -- feedback --------------------------------------------------------------------------------
    def record_vote(self, answer_id: str, vote: Vote, user: str, platform: str) -> None:
        """Store a 👍/👎 on an answer (question, entry ids shown, vote, time) for later evaluation."""
        session = self._sessions.get(answer_id)
        if session is None:
            raise UnknownAnswer()
        size = self.settings.answer_size
        shown = session.items[: session.shown * size]
        row = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "platform": platform,
            "user": user,
            "question": session.question,
            "entry_ids": [item.entry_id for item in shown],
            "vote": vote,
        }
        self.feedback_path.parent.mkdir(parents=True, exist_ok=True)
        with self.feedback_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")

    # -- admin -----------------------------------------------------------------------------------
    @property
    def reindex_running(self) -> bool:
        return self._reindex is not None and not self._reindex.done()

    def start_reindex(self, user: str, *, full: bool = False) -> asyncio.Task[IngestReport]:
        """Start a reindex in the background; raises AlreadyRunning if one is running.

        Answers keep coming from the current index meanwhile: an incremental ingest updates entries
        in place, and a full rebuild switches to the new collection only once it is complete.
        """
        if self.reindex_running:
            raise AlreadyRunning()
        _log.info("reindex requested by %s (full=%s)", user, full)
        self._reindex = asyncio.get_running_loop().create_task(self._run_reindex(user, full))
        return self._reindex

    async def _run_reindex(self, user: str, full: bool) -> IngestReport:
        self.metrics.reindex_runs.inc()
        try:
            report = await asyncio.to_thread(self.kb.ingest, rebuild=full)
        except BaseException:
            self.metrics.reindex_failures.inc()
            _log.exception("reindex requested by %s failed", user)
            raise
        _log.info("reindex requested by %s done: %s", user, report.as_dict())
        return report

    async def stats(self) -> Stats:
        return Stats(await asyncio.to_thread(self.kb.stats), self.reindex_running)

    @staticmethod
    def help() -> str:
        return HELP


def reindex_summary(report: IngestReport) -> str:
    """One line for the chat when a reindex finishes."""
    s = report.summary
    skipped = len(report.parsed.skipped)
    text = (
        f"Reindex done in {s.seconds:.1f} s: {s.entries} entries ({s.embedded} embedded, "
        f"{s.unchanged} unchanged, {s.removed} removed)."
    )
    return text + (f" {skipped} file(s) skipped; see the log." if skipped else "")


def stats_text(stats: Stats) -> str:
    running = " A reindex is running." if stats.reindex_running else ""
    index = stats.index
    when = index.indexed_at.strftime("%Y-%m-%d %H:%M UTC") if index.indexed_at else "never"
    sources = ", ".join(index.sources) or "none"
    return (
        f"{index.entries} entries from {len(index.sources)} source(s) ({sources}); last indexed {when}; "
        f"embedder {index.embedder}.{running}"
    )
