"""The read path of the index: what the active collection holds, its stats, and Chroma's vector search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from knowledge.chroma import get_all, get_embeddings
from knowledge.entry import Entry
from knowledge.filters import Where
from knowledge.generations import Generations, Pointer
from knowledge.ranking import DenseHit
from knowledge.records import ENTRY_RECORDS, entries_from, record_id, split_record_id

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from numpy.typing import ArrayLike

_T = TypeVar("_T")


@dataclass(frozen=True)
class DenseVectors:
    """The vectors of a collection's records, for exact search in memory: row `i` of `matrix` is
    chunk `chunks[i]` of entry `entry_ids[i]`, scaled to unit length."""

    entry_ids: tuple[str, ...]
    chunks: np.ndarray
    matrix: np.ndarray


@dataclass(frozen=True)
class IndexContents:
    """Everything a searcher loads from the active collection, read from that one collection."""

    collection: str | None
    indexed_at: datetime | None
    entries: list[Entry]  # sorted by id
    vectors: DenseVectors | None  # None when the collection holds more records than asked for


@dataclass(frozen=True)
class IndexVersion:
    """Which collection is active and when it was written: a change means the index changed."""

    collection: str | None
    indexed_at: datetime | None


@dataclass(frozen=True)
class StoreStats:
    """The active collection of one embedder and what the last ingest recorded."""

    embedder: str
    dim: int
    collection: str | None
    entries: int
    records: int
    indexed_at: datetime | None
    sources: tuple[str, ...]


def _when(pointer: Pointer) -> datetime:
    return datetime.fromtimestamp(pointer.indexed_at, UTC)


class IndexReader:
    """Reads one embedder's active collection. Every call maps Chroma failures to KnowledgeUnavailable."""

    def __init__(self, generations: Generations) -> None:
        self.generations = generations
        self.client = generations.client

    def _read(self, action: str, read: Callable[[], _T]) -> _T:
        return self.client.read(action, read, on_retry=self.generations.forget)

    def version(self) -> IndexVersion:
        """The active collection and its time, from the pointer alone (no count, no collection read)."""

        def read() -> IndexVersion:
            pointer = self.generations.pointer()
            if pointer is None:
                return IndexVersion(None, None)
            return IndexVersion(pointer.collection, _when(pointer))

        return self._read("read the pointer", read)

    def load(self, max_vectors: int) -> IndexContents:
        """The active collection's entries, and its vectors when it holds at most `max_vectors` records."""

        def read() -> IndexContents:
            pointer = self.generations.pointer()
            active = self.generations.open(pointer)
            if pointer is None or active is None:
                return IndexContents(None, None, [], None)
            entries = entries_from(m for _, m, _ in get_all(active, where=ENTRY_RECORDS, include=["metadatas"]))
            vectors = _vectors(active, self.generations.dim) if active.count() <= max_vectors else None
            return IndexContents(active.name, _when(pointer), entries, vectors)

        return self._read("load the index", read)

    def stats(self) -> StoreStats:
        """The active collection, its entry and record counts, and the last ingest's time and sources."""
        generations = self.generations

        def read() -> StoreStats:
            pointer = generations.pointer()
            active = generations.open(pointer)
            if pointer is None or active is None:
                return StoreStats(generations.embedder_name, generations.dim, None, 0, 0, None, ())
            return StoreStats(
                embedder=generations.embedder_name,
                dim=generations.dim,
                collection=active.name,
                entries=pointer.entries,
                records=active.count(),
                indexed_at=_when(pointer),
                sources=pointer.sources,
            )

        return self._read("stats", read)

    def vector(self, entry_id: str) -> np.ndarray | None:
        """The vector stored for the first chunk of entry `entry_id` (its titles and summary), or None when
        the active collection has no such record."""

        def read() -> np.ndarray | None:
            active = self.generations.active()
            if active is None:
                return None
            found = active.get(ids=[record_id(entry_id, 0)], include=["embeddings"])  # type: ignore[list-item]
            embeddings = found.get("embeddings")
            if embeddings is None or len(embeddings) == 0:
                return None
            return np.asarray(embeddings[0], dtype=np.float32)

        return self._read("read a vector", read)

    def query(self, vector: ArrayLike, k: int = 10, where: Where | None = None) -> list[DenseHit]:
        """The `k` entries nearest to `vector` by Chroma's index, best first, each scored by its best chunk.

        The language filter runs in Chroma; the section prefix runs here, on an over-fetched
        result, because Chroma metadata filters have no prefix operator.
        """
        query_vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query_vector.shape[0] != self.generations.dim:
            raise ValueError(f"query vector has {query_vector.shape[0]} dimensions, expected {self.generations.dim}")
        if k <= 0:
            return []

        def read() -> list[DenseHit]:
            active = self.generations.active()
            return [] if active is None else _nearest(active, query_vector, k, where or Where())

        return self._read("query", read)


def _nearest(active: Collection, vector: np.ndarray, k: int, where: Where) -> list[DenseHit]:
    fetch = k * 10 if where.section_prefix else k + k // 2  # a few entries have several chunks
    chroma_where = {"lang": {"$in": list(where.langs)}} if where.lang else None
    # Metadata is fetched only to filter on the section: the record id already names the entry and chunk.
    include = ["metadatas", "distances"] if where.section_prefix else ["distances"]
    while True:
        result = active.query(
            query_embeddings=[vector.tolist()],
            n_results=fetch,
            where=chroma_where,  # type: ignore[arg-type]
            include=include,  # type: ignore[arg-type]
        )
        ids = result["ids"][0]
        distances = (result["distances"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0] if where.section_prefix else [None] * len(ids)
        best: dict[str, DenseHit] = {}
        for stored_id, metadata, distance in zip(ids, metadatas, distances, strict=True):
            if metadata is not None and not where.matches_section(str(metadata.get("section", ""))):
                continue
            entry_id, chunk = split_record_id(stored_id)
            hit = DenseHit(entry_id, chunk, 1.0 - float(distance))
            if hit.entry_id not in best or hit.score > best[hit.entry_id].score:
                best[hit.entry_id] = hit
        # Fewer rows than asked for means the collection (or the filter) is exhausted.
        if len(best) >= k or len(ids) < fetch:
            return sorted(best.values(), key=lambda hit: hit.score, reverse=True)[:k]
        fetch *= 4


def _vectors(collection: Collection, dim: int) -> DenseVectors:
    """Every record's vector, scaled to unit length (Chroma's cosine space does the same)."""
    ids, pages = get_embeddings(collection)
    arrays = [np.asarray(page, dtype=np.float32) for page in pages]
    matrix = np.concatenate(arrays) if arrays else np.zeros((0, dim), dtype=np.float32)
    if len(matrix):
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    split = [split_record_id(stored_id) for stored_id in ids]
    entry_ids = tuple(entry_id for entry_id, _ in split)
    return DenseVectors(entry_ids, np.asarray([chunk for _, chunk in split], dtype=np.int32), matrix)
