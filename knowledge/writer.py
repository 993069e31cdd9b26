"""The write path: bring the active collection up to date with a list of entries, or rebuild it.

An incremental ingest embeds only entries whose records changed and deletes the records of entries
that are gone. A rebuild fills a new generation and then switches the pointer to it, so searches
keep using the old collection until the new one is complete. Both run under the writer's lock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from knowledge.chroma import Row, get_all
from knowledge.embed import Embedder
from knowledge.entry import Entry
from knowledge.errors import IngestLocked, MassRemoval
from knowledge.generations import Generations, Pointer
from knowledge.lock import Fence, fenced, ingest_lock
from knowledge.records import PassageText, Record, default_passage_text, entries_from, to_records
from knowledge.seen import seen_fields, stamp_first_seen
from knowledge.upsert import UPSERT_BATCH, Progress, embed_and_upsert

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

_log = logging.getLogger(__name__)

_DELETE_BATCH = 500


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest did; `embedded`, `unchanged`, `removed` and `kept` count entries, not chunks.

    `kept` entries were in the index but not in the new list, and stayed because nothing showed
    that they are gone (their source could not be read). `updated` entries changed only in what is
    not embedded (their lines moved, their body or links changed): their records were rewritten and
    their vectors kept. `added` entries were not in the index before.
    """

    entries: int
    embedded: int
    unchanged: int
    removed: int
    seconds: float
    collection: str
    kept: int = 0
    updated: int = 0
    added: int = 0


class IndexWriter:
    """Writes one embedder's entries into its collections, one ingest at a time (`lock_path`)."""

    def __init__(
        self,
        generations: Generations,
        embedder: Embedder,
        lock_path: Path,
        *,
        passage_text: PassageText = default_passage_text,
        batch_size: int = UPSERT_BATCH,
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
        retain: Callable[[Entry], bool] | None = None,
        max_removal: float | None = None,
        fence: Fence | None = None,
    ) -> IngestSummary:
        """Make the index hold exactly `entries`, embedding only new or changed ones.

        `rebuild=True` fills a new collection and then switches the pointer to it; if the rebuild
        fails, the old one stays active and the partial one is dropped (now, or by the next ingest
        after a kill). `sources` is recorded for stats; by default, the entries' source files.

        A stored entry missing from `entries` is kept when `retain(entry)` says so, and removed
        otherwise. When more than `max_removal` (a share) of the stored entries would be removed,
        nothing is written and MassRemoval is raised.
        `fence` checks the lease held for this ingest across machines (`knowledge.lock`): before
        orphans are dropped, after each batch embedded and before the pointer switch.
        Raises IngestLocked when another ingest is running (or the lease was lost) and KnowledgeUnavailable
        when Chroma is unavailable.
        """
        started = time.monotonic()
        entries = list(entries)
        with ingest_lock(self.lock_path), self.client.guard("ingest"):
            fenced(fence, "the ingest started")
            pointer = self.generations.pointer()
            active = self.generations.open(pointer)
            self.generations.drop_orphans(keep=active.name if active is not None else None)
            # The documents serve only the incremental comparison; a rebuild needs the metadata alone.
            include = ["metadatas"] if rebuild else ["metadatas", "documents"]
            rows = get_all(active, include=include) if active is not None else []
            kept = self._retained(rows, entries, retain)
            entries += kept
            removed = len({str(metadata["entry_id"]) for _, metadata, _ in rows} - {entry.id for entry in entries})
            stored = sum(1 for _, metadata, _ in rows if metadata.get("chunk") == 0)
            if max_removal is not None and stored and removed > max_removal * stored:
                raise MassRemoval(removed, stored, max_removal)
            now = round(time.time(), 3)  # whole milliseconds survive the trip through a datetime exactly
            records = stamp_first_seen(to_records(entries, self.passage_text), rows, now, baseline=not stored)
            added = len({entry.id for entry in entries} - {str(metadata["entry_id"]) for _, metadata, _ in rows})
            recorded = tuple(sources) if sources is not None else tuple(sorted({e.source.file for e in entries}))
            if active is None or rebuild:
                name = self._rebuild(records, pointer, active, progress, recorded, len(entries), fence)
                embedded, unchanged, updated = len(entries), 0, 0
            else:
                name = active.name
                embedded, unchanged, updated = self._update(active, rows, records, progress, fence)
                self.generations.point_to(active, len(entries), recorded, fence=fenced(fence, "the pointer switch"))
        summary = IngestSummary(
            entries=len(entries),
            embedded=embedded,
            unchanged=unchanged,
            removed=removed,
            seconds=round(time.monotonic() - started, 3),
            collection=name,
            kept=len(kept),
            updated=updated,
            added=added,
        )
        _log.info("ingest into %s: %s", name, summary)
        return summary

    @staticmethod
    def _retained(rows: list[Row], entries: list[Entry], retain: Callable[[Entry], bool] | None) -> list[Entry]:
        """The stored entries missing from `entries` that `retain` keeps."""
        if retain is None:
            return []
        wanted = {entry.id for entry in entries}
        missing = [
            metadata for _, metadata, _ in rows if metadata.get("chunk") == 0 and metadata["entry_id"] not in wanted
        ]
        kept = [entry for entry in entries_from(missing) if retain(entry)]
        if kept:
            files = sorted({entry.source.file for entry in kept})
            _log.warning("keeping %d entries of sources that could not be read: %s", len(kept), ", ".join(files))
        return kept

    def _update(
        self,
        active: Collection,
        rows: list[Row],
        records: list[Record],
        progress: Progress | None,
        fence: Fence | None = None,
    ) -> tuple[int, int, int]:
        """Embed the entries whose records differ from the stored `rows` in what is embedded, rewrite the
        metadata of those that differ only in the rest; delete records no entry has.
        Returns (entries embedded, entries unchanged, entries updated without embedding)."""
        stored: dict[str, dict[str, tuple[str, str, object]]] = {}
        for record_id, metadata, document in rows:
            chunks = stored.setdefault(str(metadata["entry_id"]), {})
            chunks[record_id] = (str(metadata["content_hash"]), document or "", seen_fields(metadata))
        wanted: dict[str, dict[str, tuple[str, str, object]]] = {}
        for record in records:
            fields = (record.content_hash, record.document, seen_fields(record.metadata))
            wanted.setdefault(record.entry_id, {})[record.id] = fields
        changed = {entry_id for entry_id, chunks in wanted.items() if stored.get(entry_id) != chunks}

        def texts(chunks: dict[str, tuple[str, str, object]]) -> dict[str, str]:
            return {record_id: document for record_id, (_, document, _) in chunks.items()}

        # The same records with the same embedded texts keep their vectors: only their metadata changes.
        relabelled = {entry_id for entry_id in changed if texts(stored.get(entry_id, {})) == texts(wanted[entry_id])}
        stale = [
            record_id
            for entry_id, chunks in stored.items()
            for record_id in chunks
            if record_id not in wanted.get(entry_id, {})
        ]
        self._write(
            active, [r for r in records if r.entry_id in changed and r.entry_id not in relabelled], progress, fence
        )
        relabel = [record for record in records if record.entry_id in relabelled]
        for start in range(0, len(relabel), _DELETE_BATCH):
            batch = relabel[start : start + _DELETE_BATCH]
            active.update(ids=[record.id for record in batch], metadatas=[record.metadata for record in batch])
        for start in range(0, len(stale), _DELETE_BATCH):
            active.delete(ids=stale[start : start + _DELETE_BATCH])
        return len(changed) - len(relabelled), len(wanted) - len(changed), len(relabelled)

    def _rebuild(
        self,
        records: list[Record],
        pointer: Pointer | None,
        old: Collection | None,
        progress: Progress | None,
        sources: Sequence[str],
        entries: int,
        fence: Fence | None = None,
    ) -> str:
        """Fill a new generation, switch the pointer to it, drop the old one; returns the new name."""
        fresh = self.generations.create_next(pointer)
        try:
            self._write(fresh, records, progress, fence)
        except BaseException:
            kept = old.name if old is not None else "nothing"
            _log.warning("rebuild of %s failed; %s stays active", fresh.name, kept)
            with contextlib.suppress(Exception):
                self.client.drop(fresh.name)
            raise
        # If this write fails, the new collection is an orphan that the next ingest drops, unless the
        # write did land, in which case the next ingest keeps it as the active collection.
        try:
            self.generations.point_to(fresh, entries, sources, fence=fenced(fence, "the pointer switch"))
        except IngestLocked:
            _log.warning(
                "rebuild of %s done, but its lease was lost: not switched to; the next ingest drops it", fresh.name
            )
            raise
        if old is not None:
            try:
                self.client.drop(old.name)
            except Exception:  # noqa: BLE001 - the switch is done; an orphan is dropped by the next ingest
                _log.warning("could not drop the replaced collection %s; the next ingest will", old.name, exc_info=True)
        return fresh.name

    def _write(
        self, collection: Collection, records: list[Record], progress: Progress | None, fence: Fence | None = None
    ) -> None:
        """Embed and store `records`, checking `fence` after each batch: an ingest whose lease was lost (or
        given up, by a bot shutting down) stops there, with IngestLocked, instead of writing on."""

        def stored(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)
            if done < total:
                fenced(fence, "the next batch")

        embed_and_upsert(collection, records, self.embedder, batch_size=self.batch_size, progress=stored)
