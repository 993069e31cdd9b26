"""The knowledge core as one object: settings in; ingest, search, stats and health out."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge.embed import AsyncEmbedder, Embedder, load_embedder
from knowledge.errors import KnowledgeError, StorageError
from knowledge.filters import Where
from knowledge.lexical import tokenize
from knowledge.live import LiveIndex
from knowledge.parse import ParseResult, parse_sources
from knowledge.ranking import Mode, RankingConfig, RefusalModel
from knowledge.reader import StoreStats
from knowledge.records import PassageText, default_passage_text
from knowledge.search import Searcher, SearchResult, clean_query
from knowledge.settings import Settings
from knowledge.store import ChromaStore
from knowledge.upsert import Progress
from knowledge.writer import IngestSummary

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest parsed, skipped and stored."""

    summary: IngestSummary
    parsed: ParseResult

    def as_dict(self) -> dict[str, object]:
        s = self.summary
        return {
            "entries": s.entries,
            "embedded": s.embedded,
            "unchanged": s.unchanged,
            "removed": s.removed,
            "seconds": s.seconds,
            "collection": s.collection,
            "kept": s.kept,
            "duplicates_merged": self.parsed.merged,
            "skipped": [vars(skip) for skip in self.parsed.skipped],
            "unlisted": list(self.parsed.unlisted),
        }

    @property
    def complete(self) -> bool:
        """Whether every source was listed and every file read: nothing was kept for lack of evidence."""
        return not self.parsed.skipped and self.parsed.complete


@dataclass(frozen=True)
class Health:
    """Whether the knowledge base can answer: the store's stats, or how much it answers without the store."""

    embedder: str
    stats: StoreStats | None  # None: the store is unreachable
    answerable_offline: int  # entries answered from memory while the store is unreachable (0: none)

    @property
    def store_reachable(self) -> bool:
        return self.stats is not None


REFUSAL_MODEL = Path(__file__).resolve().parent / "refusal.json"


def load_refusal_model(embedder: str, path: Path = REFUSAL_MODEL) -> RefusalModel | None:
    """The refusal model shipped with the package, when it was fitted on `embedder`'s signals; otherwise
    None, and the relevance floor decides (fit one with `eval/fit_refusal.py`)."""
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("embedder") != embedder:
        _log.info(
            "the refusal model was fitted for %s, not %s: the relevance floor decides", data.get("embedder"), embedder
        )
        return None
    return RefusalModel.from_dict(data)


def ranking_config(settings: Settings) -> RankingConfig:
    """The ranking parameters that settings expose; the rest keep their tuned defaults."""
    return RankingConfig(rrf_k=settings.rrf_k, dense_weight=settings.dense_weight, bm25_weight=settings.bm25_weight)


class KnowledgeBase:
    """Owns the embedder, the Chroma store, the live index and the searcher built from one `Settings`."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        *,
        passage_text: PassageText = default_passage_text,
        clock: Callable[[], float] = time.monotonic,
        read_only: bool = False,
        refusal: RefusalModel | bool = True,
    ) -> None:
        """`read_only`: a replica that serves an index others write; it never writes to its data folder
        (it may read a BM25 cache there) and refuses to ingest. `refusal`: the refusal model (True: the
        one shipped with the package; False: none, the relevance floor decides)."""
        self.settings = settings
        self.read_only = read_only
        self.embedder = embedder or load_embedder(settings.embedder, threads=settings.embed_threads)
        try:
            if not read_only:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or error
            raise StorageError(f"cannot create the data folder {settings.data_dir}: {reason}") from None
        self.store = ChromaStore(
            settings.data_dir, self.embedder, chroma_url=settings.chroma_url, passage_text=passage_text, clock=clock
        )
        self.index = LiveIndex(
            self.store.reader,
            cache_dir=settings.data_dir,
            memory_vectors=settings.memory_vectors,
            clock=clock,
            save_cache=not read_only,
        )
        self.searcher = Searcher(
            self.index,
            self.store.reader,
            self.embedder,
            ranking_config(settings),
            max_question_chars=settings.max_question_chars,
            refusal=load_refusal_model(self.embedder.name) if refusal is True else refusal or None,
        )

    @property
    def embedder_name(self) -> str:
        return self.embedder.name

    def warm_up(self) -> None:
        """Pay the one-time costs before the first ingest or question rather than during it: open
        the store, load the tokenizer's dictionary (about 1 s) and run the embedder once."""
        self.store.stats()
        tokenize("warm up 预热")
        self.embedder.embed_queries(["warm up"])

    def ingest(
        self,
        sources: Sequence[Path] | None = None,
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        allow_mass_removal: bool = False,
    ) -> IngestReport:
        """Parse the sources and bring the index up to date (or rebuild it); searches keep working.

        Nothing is removed without evidence: entries of a file that could not be read, or of a
        folder that could not be listed, stay as they were. An ingest that would remove more than
        `max_removal_share` of the index raises MassRemoval and changes nothing, unless
        `allow_mass_removal`.
        """
        if self.read_only:
            raise StorageError("this knowledge base is read-only (a replica): ingest from the indexer instead")
        paths = list(sources or self.settings.sources)
        parsed = parse_sources(paths)
        summary = self.store.ingest(
            parsed.entries,
            rebuild=rebuild,
            progress=progress,
            sources=[str(path) for path in paths],
            retain=lambda entry: not parsed.may_remove(entry.source.file),
            max_removal=None if allow_mass_removal else self.settings.max_removal_share,
        )
        self.index.refresh(force=True)
        return IngestReport(summary, parsed)

    def load(self) -> int:
        """Load the active index from the store without writing to it (a replica that does not ingest,
        or when an ingest could not run); returns how many entries it holds (0: no index yet).
        Raises KnowledgeUnavailable when the store cannot be reached."""
        self.index.refresh(force=True)
        return len(self.index.snapshot.entries)

    def search(
        self,
        question: str,
        k: int | None = None,
        *,
        mode: Mode = "hybrid",
        section: Sequence[str] = (),
        lang: str | None = None,
        vector: np.ndarray | None = None,
    ) -> SearchResult:
        """The best entries for `question`, or a refusal; blocks while it embeds and queries."""
        where = Where(lang=lang, section_prefix=tuple(section))
        return self.searcher.search(question, k or self.settings.answer_size, mode=mode, where=where, vector=vector)

    async def asearch(
        self, question: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> SearchResult:
        """`search` for async callers: the question is embedded on the embedding worker (where questions
        that arrive together are batched) and the rest runs in a thread, so the event loop never stalls."""
        query, _ = clean_query(question, self.settings.max_question_chars)
        vector = await self.async_embedder.embed_query(query) if query else None
        return await asyncio.to_thread(self.search, question, k, section=section, lang=lang, vector=vector)

    @functools.cached_property
    def async_embedder(self) -> AsyncEmbedder:
        return AsyncEmbedder(self.embedder)

    def stats(self) -> StoreStats:
        return self.store.stats()

    def health(self) -> Health:
        """The store's stats when it answers; otherwise what the loaded index can still answer."""
        try:
            stats = self.store.stats()
        except KnowledgeError as error:
            _log.warning("health check: %s", error)
            return Health(self.embedder.name, None, self.index.answerable_offline)
        return Health(self.embedder.name, stats, self.index.answerable_offline)

    def close(self) -> None:
        if "async_embedder" in self.__dict__:
            self.async_embedder.close()
        self.searcher.close()
        self.index.close()
        self.store.close()
