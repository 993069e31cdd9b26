"""Hybrid search: dense (Chroma) and BM25 ranks fused by reciprocal rank, then a relevance floor."""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from knowledge.embed import Embedder
from knowledge.entry import Entry
from knowledge.errors import KnowledgeUnavailable
from knowledge.lexical import LexicalIndex, LexicalScores
from knowledge.store import SECTION_SEPARATOR, ChromaStore, DenseHit, DenseVectors, Where

_log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]
MAX_QUERY_CHARS = 500
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class SearchConfig:
    """Fusion and relevance parameters (from Settings); the defaults were tuned with `knowledge eval`."""

    rrf_k: int = 10
    dense_weight: float = 0.5
    bm25_weight: float = 1.0
    candidates: int = 50  # dense neighbours fetched: their cosines give the question's background
    fuse_depth: int = 30  # ranks of each method fused: enough for every page of an answer
    # The relevance floor. `margin` is a hit's cosine above the question's background (the mean
    # cosine of dense ranks 6-50); `coverage` is the idf-weighted share of the question's words in
    # the hit. A hit is relevant with strong lexical evidence, or a clear dense margin, or a fair
    # margin that BM25 agrees with. Tuned on shared/eval and tests/data/calibration.jsonl.
    coverage_sure: float = 0.45
    margin_sure: float = 0.045
    margin_agree: float = 0.033
    coverage_agree: float = 0.15
    agree_rank: int = 10
    tail_coverage_gap: float = 0.25  # later hits need coverage within this of the best hit's
    refresh_seconds: float = 5.0
    # Collections of at most this many records are searched exactly in memory; larger ones by
    # Chroma's HNSW index. On 2 cores the product and top-k take 0.2 ms at 5,560 x 384, 1.5 ms at
    # 20,000 and 4.2 ms at 50,000, against about 2.3 ms for a Chroma query of the bundled collection.
    memory_vectors: int = 20_000


@dataclass(frozen=True)
class _Vectors:
    """Every record's unit vector, searched exactly in memory: row `i` is chunk `chunks[i]` of the
    entry at position `rows[i]` of the snapshot's entries."""

    matrix: np.ndarray
    rows: np.ndarray
    chunks: np.ndarray

    @classmethod
    def build(cls, vectors: DenseVectors, position: dict[str, int]) -> _Vectors:
        # Records of entries the snapshot does not hold (an ingest ran between the two reads) are left out.
        keep = np.asarray([entry_id in position for entry_id in vectors.entry_ids], dtype=bool)
        rows = np.asarray([position.get(entry_id, -1) for entry_id in vectors.entry_ids], dtype=np.int64)
        return cls(np.ascontiguousarray(vectors.matrix[keep]), rows[keep], vectors.chunks[keep])

    def nearest(self, vector: np.ndarray, k: int, entries: list[Entry], allowed: np.ndarray | None) -> list[DenseHit]:
        """The `k` entries nearest to `vector` by cosine, each scored by its best chunk, best first."""
        if not len(self.rows) or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        scores = self.matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
        if allowed is not None:
            scores = np.where(allowed[self.rows], scores, -np.inf)
        take = min(len(scores), k + k // 2)  # a few entries have several chunks
        while True:
            top = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            best: dict[int, DenseHit] = {}
            for row in top:
                score = float(scores[row])
                if score == -np.inf:
                    break
                at = int(self.rows[row])
                if at not in best:
                    best[at] = DenseHit(entries[at].id, int(self.chunks[row]), score)
                    if len(best) == k:
                        break
            if len(best) == k or take == len(scores) or score == -np.inf:
                return list(best.values())
            take = min(len(scores), take * 4)


@dataclass(frozen=True)
class _Snapshot:
    """The entries, vectors and BM25 index of one version of the collection, replaced whole on refresh."""

    entries: list[Entry]
    position: dict[str, int]
    lexical: LexicalIndex
    vectors: _Vectors | None = None  # None: the collection is too large, Chroma searches it
    masks: dict[Where, np.ndarray] = field(default_factory=dict)

    def allowed(self, where: Where) -> np.ndarray | None:
        """Which entries pass `where`, or None for every entry."""
        if not where.lang and not where.section_prefix:
            return None
        mask = self.masks.get(where)
        if mask is None:
            if len(self.masks) >= 64:
                self.masks.clear()
            mask = self.masks[where] = np.asarray([_allowed(entry, where) for entry in self.entries], dtype=bool)
        return mask


@dataclass(frozen=True)
class Hit:
    """One entry found for a question, with the evidence that ranked it."""

    entry: Entry
    score: float  # the fused score (or the single method's score)
    dense: float | None  # cosine similarity of the entry's best chunk, if it was a dense candidate
    margin: float | None  # that cosine above the question's background cosine
    lexical: float  # BM25 score
    bm25_rank: int | None  # rank among BM25 candidates, if it was one
    coverage: float  # share of the question's word weight that occurs in the entry


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]
    refused: bool = False
    truncated: bool = False  # the question was longer than MAX_QUERY_CHARS and was cut
    timings: dict[str, float] = field(default_factory=dict)


def clean_query(text: str) -> tuple[str, bool]:
    """NFKC, control and zero-width characters removed, whitespace collapsed, capped in length."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text))
    text = " ".join(text.split())
    if len(text) > MAX_QUERY_CHARS:
        return text[:MAX_QUERY_CHARS], True
    return text, False


class Searcher:
    """Answers questions from the store's active collection; reloads entries when the index changes."""

    def __init__(
        self, store: ChromaStore, embedder: Embedder, config: SearchConfig | None = None, *, cache_dir: Path
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config or SearchConfig()
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._version: tuple[str | None, datetime | None] | None = None
        self._checked = 0.0
        self._index = _Snapshot([], {}, LexicalIndex([], []))
        self._degraded = False
        self._loaded_at = ""
        self._embedding_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-embed")
        self._refresh_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-refresh")
        self._refreshing: concurrent.futures.Future[None] | None = None
        self._lock_pending = threading.Lock()
        self._check_failed = False

    # -- the index -------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Reload entries, vectors and the BM25 index when the store's active collection has changed.

        If the store cannot be reached, the loaded snapshot keeps answering (when it holds the
        vectors) and the check is tried again after `refresh_seconds`; with nothing loaded, or on
        `force`, KnowledgeUnavailable is raised.
        """
        if not force and self._checked_recently():
            return
        with self._lock:
            if not force and self._checked_recently():
                return  # another thread checked while this one waited
            self._checked = time.monotonic()  # one question per interval pays for the check, even a failing one
            try:
                stats = self.store.stats()
                if (stats.collection, stats.indexed_at) == self._version and not force:
                    self._reachable()
                    return
                contents = self.store.load(self.config.memory_vectors)
            except KnowledgeUnavailable:
                if force or self._version is None or self._index.vectors is None:
                    raise
                if not self._degraded:
                    _log.warning("the store is unreachable; answering from the index loaded at %s", self._loaded_at)
                    self._degraded = True
                return
            self._reachable()
            entries = contents.entries
            name = contents.collection or "empty"
            position = {entry.id: i for i, entry in enumerate(entries)}
            lexical = LexicalIndex.load_or_build(self.cache_dir / f"bm25-{name}.json", entries)
            vectors = _Vectors.build(contents.vectors, position) if contents.vectors is not None else None
            # one assignment: a search running in another thread keeps the snapshot it started with
            self._index = _Snapshot(entries, position, lexical, vectors)
            self._version = (contents.collection, contents.indexed_at)  # compared with the stats' pair
            self._loaded_at = time.strftime("%Y-%m-%d %H:%M:%S")
            _log.info(
                "search index loaded: %d entries from %s, vectors %s",
                len(entries),
                name,
                "in memory" if vectors is not None else "searched in Chroma",
            )

    def refresh_soon(self) -> None:
        """Check for a newer index when one is due: at once while nothing is loaded, otherwise in the
        background, so that no question waits for the store or for a reload after a reindex."""
        if self._version is None:
            self.refresh()
            return
        if self._checked_recently():
            return
        with self._lock_pending:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = self._refresh_pool.submit(self._refresh_in_background)

    def _checked_recently(self) -> bool:
        """Whether an index is loaded and the store was checked less than `refresh_seconds` ago."""
        return self._version is not None and time.monotonic() - self._checked < self.config.refresh_seconds

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except KnowledgeUnavailable as error:  # the questions that need the store say so themselves
            _log.log(logging.DEBUG if self._check_failed else logging.WARNING, "index check failed: %s", error)
            self._check_failed = True
            return
        except Exception:  # noqa: BLE001 - nobody awaits this thread: log, and try again at the next check
            _log.exception("index check failed")
            return
        self._check_failed = False

    def _reachable(self) -> None:
        if self._degraded:
            _log.info("the store is reachable again")
            self._degraded = False

    @property
    def degraded(self) -> bool:
        """Whether the last check of the store failed and searches are answered from memory."""
        return self._degraded

    @property
    def answers_without_store(self) -> int:
        """How many entries the loaded snapshot can answer from while the store is unreachable (0: none)."""
        index = self._index
        return len(index.entries) if self._version is not None and index.vectors is not None else 0

    def close(self) -> None:
        self._embedding_pool.shutdown(wait=False)
        self._refresh_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def entries(self) -> list[Entry]:
        return self._index.entries

    # -- search ----------------------------------------------------------------------------------
    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        where: Where | None = None,
        vector: np.ndarray | None = None,
    ) -> SearchResult:
        """The best `k` entries for `question`, or a refusal when nothing relevant is in the collection.

        Pass `vector` when the question was embedded elsewhere (the async path embeds off the loop).
        """
        started = time.perf_counter()
        query, truncated = clean_query(question)
        if not query:
            return SearchResult(question, (), refused=True, truncated=truncated)
        self.refresh_soon()
        timings: dict[str, float] = {}
        where = where or Where()
        dense: dict[str, DenseHit] = {}
        index = self._index
        lexical: LexicalScores | None = None
        if mode != "bm25":
            if vector is None:
                # The embedder runs in C without the GIL: score BM25 meanwhile instead of after it.
                t = time.perf_counter()
                embedding = self._embedding_pool.submit(self.embedder.embed_queries, [query])
                lexical = index.lexical.score(query)
                vector = embedding.result()[0]
                timings["embed"] = time.perf_counter() - t
            t = time.perf_counter()
            if index.vectors is not None:
                found = index.vectors.nearest(vector, self.config.candidates, index.entries, index.allowed(where))
                dense = {h.entry_id: h for h in found}
            else:
                dense = {h.entry_id: h for h in self.store.query(vector, self.config.candidates, where)}
                if any(entry_id not in index.position for entry_id in dense):
                    self.refresh(force=True)  # the collection changed under us: load the entries it holds
                    index, lexical = self._index, None
            timings["dense"] = time.perf_counter() - t
        t = time.perf_counter()
        lexical = lexical or index.lexical.score(query)
        hits = self._rank(index, lexical, dense, where, mode)
        refused = False
        if mode == "hybrid":
            hits = self._relevant(hits)
            refused = not hits
        elif not hits:
            refused = True
        timings["rank"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        return SearchResult(question, tuple(hits[:k]), refused=refused, truncated=truncated, timings=timings)

    def _rank(
        self, index: _Snapshot, lexical: LexicalScores, dense: dict[str, DenseHit], where: Where, mode: Mode
    ) -> list[Hit]:
        config = self.config
        entries, position = index.entries, index.position
        allowed = index.allowed(where)
        scores = lexical.scores if allowed is None else np.where(allowed, lexical.scores, 0.0)
        order = np.argsort(-scores, kind="stable")[: config.fuse_depth]
        bm25_ids = [entries[i].id for i in order if scores[i] > 0]
        ranked = sorted(dense.values(), key=lambda h: -h.score)
        background = _background([h.score for h in ranked])  # from all dense candidates
        dense_ids = [h.entry_id for h in ranked if h.entry_id in position][: config.fuse_depth]
        bm25_rank = {entry_id: rank for rank, entry_id in enumerate(bm25_ids, 1)}
        fused: dict[str, float] = {}
        if mode in ("hybrid", "dense"):
            weight = config.dense_weight if mode == "hybrid" else 1.0
            for rank, entry_id in enumerate(dense_ids, 1):
                fused[entry_id] = fused.get(entry_id, 0.0) + weight / (config.rrf_k + rank)
        if mode in ("hybrid", "bm25"):
            weight = config.bm25_weight if mode == "hybrid" else 1.0
            for rank, entry_id in enumerate(bm25_ids, 1):
                fused[entry_id] = fused.get(entry_id, 0.0) + weight / (config.rrf_k + rank)
        hits = []
        for entry_id, score in sorted(fused.items(), key=lambda item: -item[1]):
            at = position[entry_id]
            dense_hit = dense.get(entry_id)
            hits.append(
                Hit(
                    entry=entries[at],
                    score=score,
                    dense=dense_hit.score if dense_hit else None,
                    margin=dense_hit.score - background if dense_hit else None,
                    lexical=float(lexical.scores[at]) if len(lexical.scores) else 0.0,
                    bm25_rank=bm25_rank.get(entry_id),
                    coverage=lexical.coverage(at),
                )
            )
        return hits

    def _relevant(self, hits: list[Hit]) -> list[Hit]:
        """The hits that clear the relevance floor, in fused order; none means a refusal.

        e5 cosines are compressed (an out-of-domain question's best cosine reaches 0.85), so the
        floor uses the margin over the question's own background, not the raw cosine.
        """
        c = self.config

        def relevant(hit: Hit) -> bool:
            margin = hit.margin if hit.margin is not None else -1.0
            if hit.coverage >= c.coverage_sure or margin >= c.margin_sure:
                return True
            agrees = hit.bm25_rank is not None and hit.bm25_rank <= c.agree_rank
            return agrees and margin >= c.margin_agree and hit.coverage >= c.coverage_agree

        kept = [hit for hit in hits if relevant(hit)]
        if not kept:
            return []
        # Below the best hits, keep only those nearly as well covered, or clearly close in meaning:
        # a question about weight decay in Adam should not list every entry that says "weight".
        best_coverage = max(hit.coverage for hit in kept)
        floor = best_coverage - c.tail_coverage_gap
        return [
            hit
            for rank, hit in enumerate(kept)
            if rank == 0 or hit.coverage >= floor or (hit.margin or -1.0) >= c.margin_sure
        ]


def _allowed(entry: Entry, where: Where) -> bool:
    if not where.lang and not where.section_prefix:
        return True
    if where.lang and entry.lang != where.lang:
        return False
    return where.matches_section(SECTION_SEPARATOR.join(entry.section_path))


def _background(scores: list[float]) -> float:
    """The cosine an unrelated entry gets for this question: the mean below the top five."""
    if len(scores) >= 12:
        return float(np.mean(scores[5:]))
    if len(scores) >= 2:
        return float(np.mean(scores[1:]))
    return 0.0


def search_entries(searcher: Searcher, question: str, k: int, *, mode: Mode = "hybrid") -> Sequence[Entry]:
    """The entries of a search, for evaluation."""
    return [hit.entry for hit in searcher.search(question, k, mode=mode).hits]
