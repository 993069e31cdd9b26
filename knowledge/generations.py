"""Which collection is active: collection names and generations, the pointer record, and orphans.

Each embedder has one collection per generation, `kb-<embedder slug>-<dim>-g<N>`. The `kb-meta`
collection holds one pointer record per embedder naming the active collection, with the last
indexed time, entry count and sources. Readers follow the pointer, so a rebuild switches every
reader (other bot replicas included) with one record write. A collection of this embedder that no
pointer names is an orphan, left by an interrupted rebuild.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from knowledge.chroma import ChromaClient
from knowledge.errors import IngestLocked

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

_log = logging.getLogger(__name__)

META_COLLECTION = "kb-meta"
POINTER_TTL = 1.0


def collection_slug(embedder_name: str, dim: int) -> str:
    """The collection name stem of an embedder: lower-case letters, digits and dashes, plus the dim."""
    slug = re.sub(r"[^a-z0-9]+", "-", embedder_name.lower()).strip("-")[:200] or "embedder"
    return f"kb-{slug}-{dim}"


def generation_of(name: str) -> int:
    """`kb-…-g7` -> 7 (0 when the name has no generation)."""
    suffix = name.rsplit("-g", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


@dataclass(frozen=True)
class Pointer:
    """The active collection of one embedder, and what the ingest that wrote it recorded."""

    collection: str
    generation: int
    indexed_at: float
    entries: int
    sources: tuple[str, ...]


class Generations:
    """The collections of one embedder and the pointer to the active one."""

    def __init__(
        self, client: ChromaClient, embedder_name: str, dim: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.embedder_name = embedder_name
        self.dim = dim
        self.stem = collection_slug(embedder_name, dim)
        self._pointer_id = f"active:{embedder_name}"
        self._clock = clock
        self._cached: tuple[float, Pointer | None] | None = None
        self._damage_logged = False

    # -- the pointer -------------------------------------------------------------------------------
    def pointer(self) -> Pointer | None:
        """The pointer as stored now. A damaged pointer record is logged, and the newest complete
        generation stands in for it until the next ingest writes a good one."""
        got = self.client.open_or_create(META_COLLECTION).get(ids=[self._pointer_id], include=["metadatas"])
        if not got["ids"] or not got["metadatas"]:
            return None
        metadata = got["metadatas"][0]
        try:
            pointer = Pointer(
                collection=str(metadata["collection"]),
                generation=int(metadata["generation"]),  # type: ignore[arg-type]
                indexed_at=float(metadata.get("indexed_at") or 0.0),  # type: ignore[arg-type]
                entries=int(metadata.get("entries") or 0),  # type: ignore[arg-type]
                sources=tuple(str(source) for source in json.loads(str(metadata.get("sources") or "[]"))),
            )
        except (KeyError, ValueError, TypeError) as error:
            fallback = self._newest_complete()
            if not self._damage_logged:
                _log.warning(
                    "the pointer record of %s is damaged (%s: %s); using %s until the next ingest rewrites it",
                    self.embedder_name,
                    type(error).__name__,
                    error,
                    fallback.collection if fallback else "no collection (run an ingest)",
                )
                self._damage_logged = True
            return fallback
        self._damage_logged = False
        return pointer

    def _newest_complete(self) -> Pointer | None:
        """A pointer to this embedder's newest collection that an ingest finished, from its own metadata."""
        complete = [
            collection
            for collection in self.client.api().list_collections()
            if collection.name.startswith(f"{self.stem}-g")
            and (collection.metadata or {}).get("embedder") == self.embedder_name
            and (collection.metadata or {}).get("complete")
        ]
        if not complete:
            return None
        newest = max(complete, key=lambda collection: generation_of(collection.name))
        metadata = newest.metadata or {}
        return Pointer(
            collection=newest.name,
            generation=generation_of(newest.name),
            indexed_at=float(metadata.get("indexed_at") or 0.0),  # type: ignore[arg-type]
            entries=int(metadata.get("entries") or 0),  # type: ignore[arg-type]
            sources=(),
        )

    def cached_pointer(self) -> Pointer | None:
        """The pointer, re-read at most every POINTER_TTL seconds: a rebuild's switch reaches every
        reader within that, and a collection dropped meanwhile makes the reader call `forget()`."""
        now = self._clock()
        cached = self._cached
        if cached is None or now - cached[0] > POINTER_TTL:
            cached = self._cached = (now, self.pointer())
        return cached[1]

    def forget(self) -> None:
        """Drop the cached pointer, so the next read sees the stored one."""
        self._cached = None

    def point_to(
        self, collection: Collection, entries: int, sources: Sequence[str], *, fence: int | None = None
    ) -> None:
        """Mark `collection` complete and make it the active one.

        The mark lets a damaged pointer fall back to the newest complete generation. The pointer is
        one record write: readers see the old or the new collection, never a mix. `fence`, the fencing
        token of the lease this ingest holds, is recorded in the pointer; a pointer already written under
        a later lease is not replaced (IngestLocked).
        """
        self._cached = None
        if fence is not None:
            written = self.fence()
            if written is not None and written > fence:
                raise IngestLocked(
                    f"the pointer was written under a later lease (fencing token {written} > {fence}); "
                    f"{collection.name} is not switched to"
                )
        indexed_at = time.time()
        collection.modify(
            metadata={**(collection.metadata or {}), "complete": True, "indexed_at": indexed_at, "entries": entries}
        )
        self.client.open_or_create(META_COLLECTION).upsert(
            ids=[self._pointer_id],
            embeddings=np.ones((1, 1), dtype=np.float32),
            documents=[collection.name],
            metadatas=[
                {
                    "embedder": self.embedder_name,
                    "dim": self.dim,
                    "collection": collection.name,
                    "generation": generation_of(collection.name),
                    "indexed_at": indexed_at,
                    "entries": entries,
                    "sources": json.dumps(list(sources), ensure_ascii=False),
                    "fence": fence if fence is not None else 0,
                }
            ],
        )

    def fence(self) -> int | None:
        """The fencing token recorded in the stored pointer (None: no pointer, or none recorded)."""
        got = self.client.open_or_create(META_COLLECTION).get(ids=[self._pointer_id], include=["metadatas"])
        if not got["ids"] or not got["metadatas"]:
            return None
        value = got["metadatas"][0].get("fence")
        return int(value) if isinstance(value, int | float) and value else None

    def open(self, pointer: Pointer | None) -> Collection | None:
        """The collection `pointer` names, or None (no pointer, or its collection is missing)."""
        if pointer is None:
            return None
        collection = self.client.open(pointer.collection)
        if collection is None:
            _log.warning("the active collection %s is missing", pointer.collection)
        return collection

    def active(self) -> Collection | None:
        """The active collection through the cached pointer."""
        return self.open(self.cached_pointer())

    # -- generations -------------------------------------------------------------------------------
    def create_next(self, pointer: Pointer | None) -> Collection:
        """A new, empty collection one generation above every one this embedder has had."""
        names = [collection.name for collection in self.client.api().list_collections()]
        generations = [generation_of(name) for name in names if name.startswith(f"{self.stem}-g")]
        generation = max([0, pointer.generation if pointer else 0, *generations]) + 1
        metadata = {"embedder": self.embedder_name, "dim": self.dim, "generation": generation}
        return self.client.create(f"{self.stem}-g{generation}", metadata)

    def drop_orphans(self, keep: str | None) -> None:
        """Drop this embedder's collections other than `keep`: leftovers of an interrupted rebuild."""
        for collection in self.client.api().list_collections():
            metadata = collection.metadata or {}
            if (
                collection.name != keep
                and collection.name.startswith(f"{self.stem}-g")
                and metadata.get("embedder") == self.embedder_name
            ):
                _log.info("dropping orphaned collection %s", collection.name)
                self.client.drop(collection.name)
