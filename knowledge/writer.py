"""The write path: bring the active collection up to date with a list of entries, or rebuild it.

An incremental ingest embeds only entries whose records changed and deletes the records of entries
that are gone. A rebuild fills a new generation and then switches the pointer to it, so searches
keep using the old collection until the new one is complete. Both run under the writer's lock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from knowledge.chroma import get_all
from knowledge.embed import Embedder
from knowledge.entry import Entry
from knowledge.generations import Generations, Pointer
from knowledge.lock import ingest_lock
from knowledge.records import ENTRY_RECORDS, PassageText, Record, default_passage_text, to_records
from knowledge.upsert import Progress, embed_and_upsert

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

_log = logging.getLogger(__name__)

_DELETE_BATCH = 500


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest did; `embedded`, `unchanged` and `removed` count entries, not chunks."""

    entries: int
    embedded: int
    unchanged: int
    removed: int
    seconds: float
    collection: str


class IndexWriter:
    """Writes one embedder's entries into its collections, one ingest at a time (`lock_path`)."""

    def __init__(
        self,
        generations: Generations,
        embedder: Embedder,
        lock_path: Path,
        *,
        passage_text: PassageText = default_passage_text,
        batch_size: int = 32,
    ) -> None:
        self.generations = generations
        self.client = generations.client
        self.embedder = embedder
        self.lock_path = lock_path
        self.passage_text = passage_text
        self.batch_size = batch_size

    def ingest(
        self,
        entries: Sequence[Entry],
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        sources: Sequence[str] | None = None,
    ) -> IngestSummary:
        """Make the index hold exactly `entries`, embedding only new or changed ones.

        `rebuild=True` fills a new collection and then switches the pointer to it; if the rebuild
        fails, the old one stays active and the partial one is dropped (now, or by the next ingest
        after a kill). `sources` is recorded for stats; by default, the entries' source files.
        Raises IngestLocked when another ingest is running and KnowledgeUnavailable when Chroma is.
        """
        started = time.monotonic()
        entries = list(entries)
        records = to_records(entries, self.passage_text)
        recorded = tuple(sources) if sources is not None else tuple(sorted({e.source.file for e in entries}))
        with ingest_lock(self.lock_path), self.client.guard("ingest"):
            pointer = self.generations.pointer()
            active = self.generations.open(pointer)
            self.generations.drop_orphans(keep=active.name if active is not None else None)
            if active is None or rebuild:
                name, removed = self._rebuild(records, entries, pointer, active, progress, recorded)
                embedded, unchanged = len(entries), 0
            else:
                name = active.name
                embedded, unchanged, removed = self._update(active, records, entries, progress)
                self.generations.point_to(name, len(entries), recorded)
        summary = IngestSummary(
            entries=len(entries),
            embedded=embedded,
            unchanged=unchanged,
            removed=removed,
            seconds=round(time.monotonic() - started, 3),
            collection=name,
        )
        _log.info("ingest into %s: %s", name, summary)
        return summary

    def _update(
        self, active: Collection, records: list[Record], entries: list[Entry], progress: Progress | None
    ) -> tuple[int, int, int]:
        """Embed the entries whose records differ from the stored ones; delete records no entry has."""
        stored: dict[str, dict[str, tuple[str, str]]] = {}
        for record_id, metadata, document in get_all(active, include=["metadatas", "documents"]):
            stored.setdefault(str(metadata["entry_id"]), {})[record_id] = (
                str(metadata["content_hash"]),
                document or "",
            )
        wanted: dict[str, dict[str, tuple[str, str]]] = {}
        for record in records:
            wanted.setdefault(record.entry_id, {})[record.id] = (record.content_hash, record.document)
        changed = {entry_id for entry_id, chunks in wanted.items() if stored.get(entry_id) != chunks}
        stale = [
            record_id
            for entry_id, chunks in stored.items()
            for record_id in chunks
            if record_id not in wanted.get(entry_id, {})
        ]
        self._write(active, [record for record in records if record.entry_id in changed], progress)
        for start in range(0, len(stale), _DELETE_BATCH):
            active.delete(ids=stale[start : start + _DELETE_BATCH])
        removed = len(stored.keys() - wanted.keys())
        return len(changed), len(entries) - len(changed), removed

    def _rebuild(
        self,
        records: list[Record],
        entries: list[Entry],
        pointer: Pointer | None,
        old: Collection | None,
        progress: Progress | None,
        sources: Sequence[str],
    ) -> tuple[str, int]:
        """Fill a new generation, switch the pointer to it, drop the old one: (new name, entries removed)."""
        removed = 0
        if old is not None:
            old_ids = {str(m["entry_id"]) for _, m, _ in get_all(old, where=ENTRY_RECORDS, include=["metadatas"])}
            removed = len(old_ids - {entry.id for entry in entries})
        fresh = self.generations.create_next(pointer)
        try:
            self._write(fresh, records, progress)
        except BaseException:
            _log.warning(
                "rebuild of %s failed; %s stays active", fresh.name, old.name if old is not None else "nothing"
            )
            with contextlib.suppress(Exception):
                self.client.drop(fresh.name)
            raise
        # If this write fails, the new collection is an orphan that the next ingest drops, unless the
        # write did land, in which case the next ingest keeps it as the active collection.
        self.generations.point_to(fresh.name, len(entries), sources)
        if old is not None:
            try:
                self.client.drop(old.name)
            except Exception:  # noqa: BLE001 - the switch is done; an orphan is dropped by the next ingest
                _log.warning("could not drop the replaced collection %s; the next ingest will", old.name, exc_info=True)
        return fresh.name, removed

    def _write(self, collection: Collection, records: list[Record], progress: Progress | None) -> None:
        embed_and_upsert(collection, records, self.embedder, batch_size=self.batch_size, progress=progress)
