"""The loaded index, kept current: a snapshot of the active collection, reloaded when it changes.

Questions read `LiveIndex.snapshot` and never wait for the store: the check for a newer index runs
at most every `refresh_seconds` (on the injected clock), in the background once something is
loaded. While the store is unreachable, the loaded snapshot keeps answering when it holds the
vectors ("degraded"); the first load, and a forced one, raise KnowledgeUnavailable instead.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from knowledge.errors import KnowledgeUnavailable
from knowledge.lexical import LexicalIndex
from knowledge.reader import IndexReader, IndexVersion
from knowledge.snapshot import Snapshot

_log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


class LiveIndex:
    """Keeps a `Snapshot` of the reader's active collection current."""

    def __init__(
        self,
        reader: IndexReader,
        *,
        cache_dir: Path,
        memory_vectors: int,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        save_cache: bool = True,
    ) -> None:
        self.reader = reader
        self.cache_dir = cache_dir
        self.save_cache = save_cache  # False: a read-only replica builds its BM25 index in memory only
        self.memory_vectors = memory_vectors
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self.snapshot = Snapshot.empty()
        self._version: IndexVersion | None = None  # of the loaded snapshot; None until the first load
        self._checked: float | None = None  # when the store was last checked, on the clock
        self._loading = threading.Lock()  # one check or load at a time
        self._degraded = False
        self._loaded_at = ""
        self._background = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-refresh")
        self._pending: concurrent.futures.Future[None] | None = None
        self._pending_lock = threading.Lock()  # guards `_pending`
        self._check_failed = False

    @property
    def loaded(self) -> bool:
        return self._version is not None

    @property
    def degraded(self) -> bool:
        """Whether the last check of the store failed and searches are answered from memory."""
        return self._degraded

    @property
    def answerable_offline(self) -> int:
        """How many entries the loaded snapshot can answer from while the store is unreachable (0: none)."""
        snapshot = self.snapshot
        return len(snapshot.entries) if self.loaded and snapshot.vectors is not None else 0

    def _due(self) -> bool:
        """Whether nothing is loaded or the store was last checked `refresh_seconds` ago or more."""
        return self._checked is None or not self.loaded or self._clock() - self._checked >= self.refresh_seconds

    def refresh(self, *, force: bool = False) -> None:
        """Reload the snapshot when the active collection has changed (always, with `force`)."""
        if not force and not self._due():
            return
        with self._loading:
            if not force and not self._due():
                return  # another thread checked while this one waited
            self._checked = self._clock()  # one check per interval, even a failing one
            try:
                version = self.reader.version()
                if version == self._version and not force:
                    self._reachable()
                    return
                contents = self.reader.load(self.memory_vectors)
            except KnowledgeUnavailable:
                if force or not self.loaded or self.snapshot.vectors is None:
                    raise
                if not self._degraded:
                    _log.warning("the store is unreachable; answering from the index loaded at %s", self._loaded_at)
                    self._degraded = True
                return
            self._reachable()
            name = contents.collection or "empty"
            cache = self.cache_dir / f"bm25-{name}.json"
            lexical = LexicalIndex.load_or_build(
                cache, contents.entries, save=self.save_cache, previous=self.snapshot.lexical
            )
            # one assignment: a search running in another thread keeps the snapshot it started with
            self.snapshot = Snapshot.build(contents.entries, lexical, contents.vectors)
            self._version = IndexVersion(contents.collection, contents.indexed_at)
            self._loaded_at = time.strftime("%Y-%m-%d %H:%M:%S")
            _log.info(
                "search index loaded: %d entries from %s, vectors %s",
                len(contents.entries),
                name,
                "in memory" if self.snapshot.vectors is not None else "searched in Chroma",
            )

    def refresh_soon(self) -> None:
        """Check for a newer index when one is due: at once while nothing is loaded, otherwise in the
        background, so that no question waits for the store or for a reload after a reindex."""
        if not self.loaded:
            self.refresh()
            return
        if not self._due():
            return
        with self._pending_lock:
            if self._pending is None or self._pending.done():
                self._pending = self._background.submit(self._refresh_in_background)

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

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)
