"""One loaded version of the index: entries, their BM25 index, their vectors in memory, filter masks.

A snapshot is never changed after it is built (but for its cache of filter masks): a refresh
builds a new one and swaps it in whole, so a search keeps the snapshot it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from knowledge.entry import Entry
from knowledge.filters import Where
from knowledge.lexical import LexicalIndex
from knowledge.ranking import DenseHit
from knowledge.reader import DenseVectors

MAX_MASKS = 64


@dataclass(frozen=True)
class MemoryVectors:
    """Every record's unit vector, searched exactly in memory: row `i` is chunk `chunks[i]` of the
    entry at position `rows[i]` of the snapshot's entries."""

    matrix: np.ndarray
    rows: np.ndarray
    chunks: np.ndarray

    @classmethod
    def build(cls, vectors: DenseVectors, position: dict[str, int]) -> MemoryVectors:
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
class Snapshot:
    """The entries, vectors and BM25 index of one version of the collection."""

    entries: list[Entry]
    position: dict[str, int]  # entry id -> its index in `entries`
    lexical: LexicalIndex
    vectors: MemoryVectors | None = None  # None: the collection is too large, Chroma searches it
    masks: dict[Where, np.ndarray] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, entries: list[Entry], lexical: LexicalIndex, vectors: DenseVectors | None) -> Snapshot:
        position = {entry.id: at for at, entry in enumerate(entries)}
        memory = MemoryVectors.build(vectors, position) if vectors is not None else None
        return cls(entries, position, lexical, memory)

    @classmethod
    def empty(cls) -> Snapshot:
        return cls.build([], LexicalIndex([], []), None)

    def allowed(self, where: Where) -> np.ndarray | None:
        """Which entries pass `where`, or None for every entry."""
        if where.everything:
            return None
        mask = self.masks.get(where)
        if mask is None:
            if len(self.masks) >= MAX_MASKS:
                self.masks.clear()
            mask = self.masks[where] = np.asarray([where.allows(entry) for entry in self.entries], dtype=bool)
        return mask
