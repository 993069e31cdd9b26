"""What is new in the collection: each entry's first-seen time, and which digests were posted.

The first-seen time lives in the index, on each entry's chunk-0 record (`first_seen`, seconds since
the epoch, and `baseline`): every replica reading the store sees it. An ingest keeps it for entries
already stored, whether they changed or not, and a rebuild carries it over from the collection it
replaces, so it is reset only when an entry leaves the collection and comes back. The entries of the
first ingest into an empty index (and entries stored before first-seen times were recorded) are the
`baseline`: they were not added to the collection, the bot just met them, so they are never listed as
new.

The digest log is a small SQLite database under KB_DATA_DIR: one row per (target, key) posted, so a
digest is posted once per sync key (the commits that sync reached) and target (a channel), even across
restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowledge.chroma import Row, get_all
from knowledge.entry import Entry
from knowledge.records import Metadata, Record

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

FIRST_SEEN = "first_seen"
BASELINE = "baseline"


@dataclass(frozen=True)
class NewEntry:
    """An entry and when the index first held it."""

    entry: Entry
    first_seen: datetime


def seen_fields(metadata: dict[str, Any] | Metadata) -> tuple[object, object]:
    """The first-seen fields of a record's metadata, for comparing stored records with new ones."""
    return metadata.get(FIRST_SEEN), metadata.get(BASELINE)


def stamp_first_seen(records: Sequence[Record], rows: Sequence[Row], now: float, *, baseline: bool) -> list[Record]:
    """`records` with `first_seen` and `baseline` on each chunk-0 record: kept from the stored `rows` of the
    same entry, else `now` (an entry stored before first-seen times were recorded is part of the baseline;
    a new one is when `baseline`, the index held no entries before)."""
    stored: dict[str, tuple[object, object]] = {
        str(metadata["entry_id"]): seen_fields(metadata) for _, metadata, _ in rows if metadata.get("chunk") == 0
    }
    stamped = []
    for record in records:
        if record.metadata.get("chunk") != 0:
            stamped.append(record)
            continue
        first_seen, was_baseline = stored.get(record.entry_id, (None, None))
        if isinstance(first_seen, int | float) and not isinstance(first_seen, bool):
            fields: Metadata = {FIRST_SEEN: float(first_seen), BASELINE: bool(was_baseline)}
        else:
            fields = {FIRST_SEEN: now, BASELINE: baseline or record.entry_id in stored}
        stamped.append(dataclasses.replace(record, metadata={**record.metadata, **fields}))
    return stamped


def new_entries(collection: Collection | None, since: datetime, limit: int | None = None) -> list[NewEntry]:
    """The entries of `collection` first seen after `since` (baseline entries never), newest first
    (then in collection order: file and line)."""
    if collection is None:
        return []
    # First-seen times are whole milliseconds: `since` is compared at that precision, so that an entry
    # first seen at a digest's `through` time is not listed again.
    where = {"$and": [{"chunk": 0}, {BASELINE: False}, {FIRST_SEEN: {"$gt": round(since.timestamp(), 3)}}]}
    rows = get_all(collection, where=where, include=["metadatas"])
    found = [
        NewEntry(Entry.model_validate_json(str(metadata["entry"])), _when(metadata[FIRST_SEEN]))
        for _, metadata, _ in rows
    ]
    found.sort(key=lambda new: (-new.first_seen.timestamp(), new.entry.source.file, new.entry.source.line_start))
    return found[:limit] if limit is not None else found


def _when(value: object) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]


def since_days(days: float, now: datetime | None = None) -> datetime:
    """The start of a window of `days` ending now (`/new 7`)."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


# -- the digest log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """The new entries a digest to `target` announces: those first seen after the last digest posted
    there (`since`), up to the sync that reached `key` (the commits of the git sources)."""

    target: str
    key: str
    since: datetime | None  # None: no digest was posted to this target before
    entries: tuple[NewEntry, ...]


@dataclass(frozen=True)
class PostedDigest:
    target: str
    key: str
    through: datetime  # the newest first-seen time the digest covered
    posted_at: datetime


class DigestLog:
    """Which digests were posted to which targets (`discord:<channel>`, `slack:<channel>`), in SQLite.

    `claim` before posting and `release` if the post failed: a digest is then posted at most once per
    key and target, whatever restarts or concurrent callers do.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            # One immediate transaction: a deferred one that reads, then writes, can get "database is
            # locked" at once (SQLite skips the busy handler where waiting could deadlock).
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS digests (target TEXT NOT NULL, key TEXT NOT NULL, "
                    "through REAL NOT NULL, posted_at REAL NOT NULL, PRIMARY KEY (target, key))"
                )
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def last(self, target: str) -> PostedDigest | None:
        """The digest posted last to `target`."""
        if not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT key, through, posted_at FROM digests WHERE target = ? ORDER BY posted_at DESC, rowid DESC",
                (target,),
            ).fetchone()
        return PostedDigest(target, row[0], _when(row[1]), _when(row[2])) if row else None

    def claim(self, digest: Digest, now: float | None = None) -> bool:
        """Record `digest` as posted; False when it already was (by this process or another): do not post."""
        through = max((new.first_seen.timestamp() for new in digest.entries), default=0.0)
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO digests (target, key, through, posted_at) VALUES (?, ?, ?, ?)",
                (digest.target, digest.key, through, time.time() if now is None else now),
            )
            return cursor.rowcount == 1

    def release(self, digest: Digest) -> None:
        """Forget a claimed digest whose post failed, so that the next attempt posts it."""
        with self._connect() as db:
            db.execute("DELETE FROM digests WHERE target = ? AND key = ?", (digest.target, digest.key))
