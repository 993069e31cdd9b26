"""The entries nearest to an entry, by the vector stored for it: "more like this" without embedding anything."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knowledge.entry import Entry
from knowledge.filters import Where
from knowledge.reader import IndexReader
from knowledge.snapshot import Snapshot


@dataclass(frozen=True)
class Neighbour:
    """An entry near another, and the cosine of their stored vectors."""

    entry: Entry
    score: float


def neighbours(
    snapshot: Snapshot, reader: IndexReader, entry_id: str, k: int, where: Where | None = None
) -> list[Neighbour] | None:
    """The `k` entries nearest to entry `entry_id` by the vector of its first chunk (its titles and
    summary, as stored at ingest), best first, never the entry itself; within `where` when given. None
    when the snapshot has no such entry. The vectors in memory are used when the snapshot holds them,
    else the store's (its index answers the query)."""
    position = snapshot.position.get(entry_id)
    if position is None:
        return None
    where = where or Where()
    vectors = snapshot.vectors
    if vectors is not None:
        rows = np.flatnonzero(vectors.rows == position)
        if not len(rows):
            return []
        vector = vectors.matrix[rows[np.argmin(vectors.chunks[rows])]]
        allowed = snapshot.allowed(where)
        mask = np.ones(len(snapshot.entries), dtype=bool) if allowed is None else allowed.copy()
        mask[position] = False
        hits = vectors.nearest(vector, k, snapshot.entries, mask)
    else:
        stored = reader.vector(entry_id)
        if stored is None:
            return []
        hits = [hit for hit in reader.query(stored, k + 1, where) if hit.entry_id != entry_id][:k]
    return [
        Neighbour(snapshot.entries[snapshot.position[hit.entry_id]], hit.score)
        for hit in hits
        if hit.entry_id in snapshot.position
    ]
