"""A fast stand-in for the knowledge core behind the chat core: hand-made entries, word matching, no model.

`FakeRetriever` satisfies `bot.chat.Retriever`. It holds the ten entries of the small collection
(conftest's SMALL_NOTES), and finds the entries that share words with the question: English words of
three or more letters and Chinese character pairs, counted in the title, summary and section path.
Most shared words first; none shared is a refusal. Like the real one, it cuts questions at its
`max_question_chars` and says so in `SearchResult.truncated`. `unreadable` files make its ingest report
them as skipped, with `kept` entries of theirs kept as they were, as the real one does. Its `sync` is that
ingest (no git sources); `first_seen` says when entries were added, for `/new` and digests, and its digest
log is a dict.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from knowledge import (
    Digest,
    Entry,
    Health,
    Hit,
    IngestLocked,
    IngestReport,
    IngestSummary,
    KnowledgeUnavailable,
    Link,
    Lookup,
    Neighbour,
    NewEntry,
    SearchResult,
    SectionTree,
    SourceRef,
    SourceStatus,
    StoreStats,
    SyncReport,
    Where,
)
from knowledge.lookup import IdentifierIndex
from knowledge.parse import ParseResult, Skipped

EMBEDDER = "fake-embedder"
SOURCE = "small-notes"
_WORD = re.compile(r"[a-z]{3,}")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
_STOPWORDS = {"the", "and", "for", "with", "how", "what", "which"}


def _entry(number: int, title: str, url: str, summary: str, section: tuple[str, ...], lang: str = "zh-Hans") -> Entry:
    return Entry.model_validate(
        {
            "id": f"e{number:02d}",
            "title": title,
            "summary": summary,
            "links": [Link(url=url, text=title, role="primary")],
            "section_path": section,
            "source": SourceRef(file="notes.md", line_start=number, line_end=number, format="markdown"),
            "lang": lang,
        }
    )


SMALL_COLLECTION: tuple[Entry, ...] = (
    _entry(
        1,
        "Fixing Weight Decay Regularization in Adam",
        "https://arxiv.org/abs/1711.05101",
        "指出 Adam 中 L2 正则与权重衰减不等价，提出 AdamW。",
        ("深度学习", "优化"),
    ),
    _entry(
        2,
        "Adam: A Method for Stochastic Optimization",
        "https://arxiv.org/abs/1412.6980",
        "自适应学习率的一阶优化方法。",
        ("深度学习", "优化"),
    ),
    _entry(
        3,
        "Momentum Contrast for Unsupervised Visual Representation Learning",
        "https://arxiv.org/abs/1911.05722",
        "何恺明等提出 MoCo，用动量编码器和队列做对比学习。",
        ("深度学习", "自监督"),
    ),
    _entry(
        4,
        "A Simple Framework for Contrastive Learning of Visual Representations",
        "https://arxiv.org/abs/2002.05709",
        "SimCLR：数据增强加对比损失。",
        ("深度学习", "自监督"),
    ),
    _entry(
        5,
        "深度检索：字节跳动提出可学习的召回结构",
        "https://example.com/deep-retrieval",
        "用路径结构代替向量检索做召回。",
        ("推荐", "召回"),
    ),
    _entry(
        6,
        "双塔模型的采样偏差修正",
        "https://example.com/two-tower",
        "谷歌 YouTube 双塔召回的流式采样纠偏。",
        ("推荐", "召回"),
    ),
    _entry(
        7,
        "CTR 预估中的位置偏置消除框架 PAL",
        "https://example.com/pal",
        "华为提出在训练时建模位置偏置。",
        ("推荐", "排序"),
    ),
    _entry(
        8,
        "Attention Is All You Need",
        "https://arxiv.org/abs/1706.03762",
        "The Transformer: attention only, no recurrence.",
        ("NLP",),
        "en",
    ),
    _entry(
        9,
        "BERT: Pre-training of Deep Bidirectional Transformers",
        "https://arxiv.org/abs/1810.04805",
        "Masked language model pre-training.",
        ("NLP",),
        "en",
    ),
    _entry(
        10,
        "非自回歸機器翻譯",
        "https://example.com/nat",
        "一次解碼生成整句翻譯，推理速度大幅提升。",
        ("NLP",),
        "zh-Hant",
    ),
)


def words(text: str) -> set[str]:
    """English words of three or more letters (no stopwords), and every pair of adjacent Chinese characters."""
    lowered = text.lower()
    found = set(_WORD.findall(lowered)) - _STOPWORDS
    for run in _HAN_RUN.findall(lowered):
        found.update(run[i : i + 2] for i in range(len(run) - 1))
    return found


class FakeRetriever:
    """`Retriever` over `entries`, in memory. Records the questions it was asked; `ingest` can be held
    open with `gate` or made to fail with `failure`."""

    def __init__(self, entries: tuple[Entry, ...] = SMALL_COLLECTION, *, max_question_chars: int = 500) -> None:
        self.entries = entries
        self.max_question_chars = max_question_chars
        self.embedder_name = EMBEDDER
        self.questions: list[str] = []
        self.reachable = True
        self.gate = threading.Event()
        self.gate.set()
        self.failure: BaseException | None = None
        self.indexed_at = datetime(2026, 1, 1, tzinfo=UTC)
        self.sources: tuple[str, ...] = (SOURCE,)  # what stats says the last ingest read
        self.unreadable: list[Skipped] = []  # files the next ingest cannot read
        self.kept = 0  # entries of theirs kept as they were
        self.statuses: list[SourceStatus] = [SourceStatus(SOURCE, "folder")]
        self.first_seen: dict[str, datetime] = {}  # entry id -> when it was added (others: the baseline)
        self.sync_key = "index@1"
        self.posted: dict[str, str] = {}  # the digest log: target -> key
        self.synced = 0
        self.fences: list[int] = []  # the lease tokens of the syncs that checked one
        self._tree: tuple[tuple[Entry, ...], SectionTree] | None = None

    async def asearch(
        self, question: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> SearchResult:
        """The entries (under `section`, in `lang`) sharing words with `question`, most first; a refusal
        when none does."""
        await asyncio.sleep(0)  # as the real one, it lets other questions run meanwhile
        self.questions.append(question)
        truncated = len(question) > self.max_question_chars
        query = question[: self.max_question_chars]
        asked = words(query)
        where = Where(lang=lang, section_prefix=tuple(section))
        scored = []
        for entry in self.entries:
            if not where.allows(entry):
                continue
            shared = len(asked & words(" ".join((entry.title, entry.summary, *entry.section_path))))
            if shared:
                scored.append((shared, entry))
        scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the collection's order
        hits = tuple(_hit(entry, shared) for shared, entry in scored[: k or 5])
        return SearchResult(query, hits, refused=not hits, truncated=truncated)

    def lookup(self, text: str) -> Lookup:
        """The entries `text` names by identifier, as the real one finds them."""
        return IdentifierIndex(self.entries).lookup(text)

    def sections(self) -> SectionTree:
        if self._tree is None or self._tree[0] is not self.entries:  # built once per set of entries
            self._tree = (self.entries, SectionTree(self.entries))
        return self._tree[1]

    def similar(
        self, entry_id: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> list[Neighbour] | None:
        """The other entries sharing words with `entry_id`'s title, summary and section, most first."""
        entry = next((entry for entry in self.entries if entry.id == entry_id), None)
        if entry is None:
            return None
        own = words(" ".join((entry.title, entry.summary, *entry.section_path)))
        scored = [
            (len(own & words(" ".join((other.title, other.summary, *other.section_path)))), other)
            for other in self.entries
            if other.id != entry_id and Where(lang=lang, section_prefix=tuple(section)).allows(other)
        ]
        scored.sort(key=lambda pair: -pair[0])
        return [Neighbour(other, float(shared)) for shared, other in scored[: k or 5] if shared]

    def ingest(self, *, rebuild: bool = False) -> IngestReport:
        """Nothing to read: reports every entry as embedded on a rebuild, else as unchanged."""
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if self.failure is not None:
            raise self.failure
        count = len(self.entries)
        embedded = count if rebuild else 0
        summary = IngestSummary(count, embedded, count - embedded, 0, 0.01, "fake-collection", kept=self.kept)
        return IngestReport(summary, ParseResult(list(self.entries), skipped=list(self.unreadable)))

    def sync(
        self, *, force: bool = False, rebuild: bool = False, fence: Callable[[], int | None] | None = None
    ) -> SyncReport:
        """The ingest, as a sync of folders does it; with `fence`, the lease is checked before the (pretend)
        switch at the end, as the real writer does, and its token kept in `fences`."""
        self.synced += 1
        report = SyncReport((), self.ingest(rebuild=rebuild), 0.01, self.sync_key)
        if fence is not None:
            token = fence()
            if token is None:
                raise IngestLocked("the reindex lease was lost before the pointer switch")
            self.fences.append(token)
        return report

    def source_status(self) -> list[SourceStatus]:
        return list(self.statuses)

    def new_entries(self, since: datetime | timedelta, *, limit: int | None = None) -> list[NewEntry]:
        start = datetime.now(UTC) - since if isinstance(since, timedelta) else since
        found = [
            NewEntry(entry, self.first_seen[entry.id])
            for entry in self.entries
            if entry.id in self.first_seen and self.first_seen[entry.id] > start
        ]
        found.sort(key=lambda new: -new.first_seen.timestamp())  # stable: ties keep the collection's order
        return found[:limit] if limit is not None else found

    def pending_digest(self, target: str) -> Digest | None:
        if self.posted.get(target) == self.sync_key:
            return None
        entries = tuple(self.new_entries(datetime.fromtimestamp(0, UTC)))
        return Digest(target, self.sync_key, None, entries) if entries else None

    def claim_digest(self, digest: Digest) -> bool:
        if self.posted.get(digest.target) == digest.key:
            return False
        self.posted[digest.target] = digest.key
        return True

    def release_digest(self, digest: Digest) -> None:
        self.posted.pop(digest.target, None)

    def stats(self) -> StoreStats:
        if not self.reachable:
            raise KnowledgeUnavailable("the fake store is down")
        count = len(self.entries)
        return StoreStats(EMBEDDER, 384, "fake-collection", count, count, self.indexed_at, self.sources)

    def health(self) -> Health:
        stats = self.stats() if self.reachable else None
        return Health(EMBEDDER, stats, 0 if self.reachable else len(self.entries), tuple(self.statuses))


def _hit(entry: Entry, shared: int) -> Hit:
    return Hit(
        entry=entry, score=float(shared), dense=None, margin=None, lexical=float(shared), bm25_rank=None, coverage=1.0
    )
