"""The Chroma client: on disk or a server, its failures mapped to `KnowledgeUnavailable`, and paged reads.

Every other module of the index talks to Chroma through one `ChromaClient`. It opens the client
lazily, caches opened collections, and turns connection failures into `KnowledgeUnavailable` (a
collection that a rebuild dropped meanwhile is not a failure: reads are retried once).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from knowledge.errors import KnowledgeUnavailable
from knowledge.logs import RateLimitedLog

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

_log = logging.getLogger(__name__)
FAILURE_LOG_SECONDS = 60.0
_T = TypeVar("_T")

PAGE_SIZE = 1000

Row = tuple[str, dict[str, Any], "str | None"]
"""One record as `(id, metadata, document)`."""


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """`http://127.0.0.1:8000` -> `("127.0.0.1", 8000, False)`; the port defaults to 8000."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:  # a port that is not a number, or out of range
        raise ValueError(f"bad Chroma URL {url!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"bad Chroma URL {url!r}: expected http://host:port")
    return parts.hostname, port or 8000, parts.scheme == "https"


DEFAULT_TIMEOUT = 30.0  # seconds: the longest wait for one answer of a Chroma server
CONNECT_SECONDS = 5.0  # and for a connection


def on_disk_path(data_dir: Path) -> Path:
    """Where the embedded Chroma keeps its database under `data_dir`."""
    return Path(data_dir) / "chroma"


def index_may_exist(data_dir: Path, url: str | None) -> bool:
    """False only when no index can exist yet: no server is configured and the on-disk database was never
    created. Cheap (nothing is opened), for a decision before the embedder and the store are loaded."""
    return url is not None or on_disk_path(data_dir).exists()


class ChromaClient:
    """One Chroma client: `url` None keeps the database on disk under `data_dir / "chroma"`."""

    def __init__(self, data_dir: Path, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """`timeout`: the longest wait, in seconds, for one answer of a Chroma server."""
        self.data_dir = Path(data_dir)
        self.url = url
        self.timeout = timeout
        self._server = parse_chroma_url(url) if url else None
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        # one line a minute while the server is down (each /healthz probe and sync tick would add one)
        self._failures = RateLimitedLog(_log, interval=FAILURE_LOG_SECONDS)

    @property
    def where(self) -> str:
        """The server's URL or the on-disk path, for logs and operators (never for chat users)."""
        return self.url or str(on_disk_path(self.data_dir))

    def api(self) -> ClientAPI:
        """The client, created on first use."""
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings as ChromaSettings

                settings = ChromaSettings(anonymized_telemetry=False)
                if self._server is None:
                    path = on_disk_path(self.data_dir)
                    path.mkdir(parents=True, exist_ok=True)
                    self._client = chromadb.PersistentClient(path=str(path), settings=settings)
                else:
                    self._client = self._connect(settings)
            return self._client

    def _connect(self, settings: Any) -> ClientAPI:
        """A client of the server whose every request gives up after `timeout` seconds.

        chromadb 1.5 builds its httpx session with `timeout=None` and has no setting for it (chroma-core/chroma
        issue 5805), and it makes its first requests while the client is created: a server that accepts
        connections and never answers would hang the bot's start, then every question and ingest. So the
        server is asked for its heartbeat with the timeout first, and the client's session gets it after."""
        import chromadb
        import httpx

        assert self._server is not None
        host, port, ssl = self._server
        no_answer = f"cannot reach Chroma at {self.url}: no answer within {self.timeout:g} s"
        timeout = httpx.Timeout(self.timeout, connect=min(CONNECT_SECONDS, self.timeout))
        address = f"[{host}]" if ":" in host else host  # an IPv6 address
        try:  # through a proxy when the environment names one, as chromadb's client goes
            httpx.get(f"{'https' if ssl else 'http'}://{address}:{port}/api/v2/heartbeat", timeout=timeout)
        except httpx.TimeoutException as error:
            raise KnowledgeUnavailable(no_answer) from error
        except httpx.HTTPError:
            pass  # refused, or not Chroma: chromadb's own check below says which
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
        except ValueError as error:  # raised when the server does not answer as Chroma
            raise KnowledgeUnavailable(f"cannot reach Chroma at {self.url}: {brief(error)}") from error
        except httpx.TimeoutException as error:  # it stopped answering right after the heartbeat
            raise KnowledgeUnavailable(no_answer) from error
        session = getattr(getattr(client, "_server", None), "_session", None)
        if not isinstance(session, httpx.Client):  # a chromadb that is not the pinned one changed its insides
            raise RuntimeError("chromadb's HTTP client has no httpx session to bound: update knowledge.chroma")
        session.timeout = timeout
        return client

    def open(self, name: str) -> Collection | None:
        """The collection `name` (cached), or None when it does not exist."""
        from chromadb.errors import NotFoundError

        collection = self._collections.get(name)
        if collection is None:
            try:
                collection = self.api().get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
            self._collections[name] = collection
        return collection

    def open_or_create(self, name: str) -> Collection:
        """The collection `name`, created (without an embedding function) when missing."""
        collection = self._collections.get(name)
        if collection is None:
            collection = self.api().get_or_create_collection(name, embedding_function=None)
            self._collections[name] = collection
        return collection

    def create(self, name: str, metadata: dict[str, Any]) -> Collection:
        """A new collection in cosine space; we always pass the vectors ourselves."""
        collection = self.api().create_collection(
            name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, metadata=metadata
        )
        self._collections[name] = collection
        return collection

    def drop(self, name: str) -> None:
        self._collections.pop(name, None)
        self.api().delete_collection(name)

    def forget(self) -> None:
        """Forget the opened collections (after one was dropped under us)."""
        self._collections.clear()

    @contextlib.contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Turn Chroma and connection failures into KnowledgeUnavailable."""
        try:
            yield
        except KnowledgeUnavailable:
            raise
        except Exception as error:
            if not _is_unavailable(error):
                raise
            if self._stale(error):  # the next call opens the database as it is now
                self.close()
            self._failures.warning("Chroma %s failed: %s: %s", action, type(error).__name__, brief(error))
            raise KnowledgeUnavailable(
                f"Chroma {action} failed ({self.where}): {type(error).__name__}: {brief(error)}"
            ) from error

    def read(self, action: str, read: Callable[[], _T], *, on_retry: Callable[[], None] | None = None) -> _T:
        """Run `read` under `guard`, once more if a rebuild dropped a collection meanwhile, or if another
        process wrote to the on-disk database since it was opened (`_stale`): then it is opened again."""
        from chromadb.errors import NotFoundError

        with self.guard(action):
            try:
                return read()
            except NotFoundError:
                self.forget()
            except Exception as error:
                if not self._stale(error):
                    raise
                _log.info("the on-disk index was written by another process (an ingest or reindex): reopening it")
                self.close()
            if on_retry is not None:
                on_retry()
            return read()

    def _stale(self, error: Exception) -> bool:
        """Whether `error` is the embedded Chroma reading a database another process has written since this
        one opened it: it keeps its view of the files, and reading vectors then fails ("Error finding id",
        an InternalError) until the database is opened again. `python -m bot reindex` and a second ingest
        write from another process while a bot serves."""
        from chromadb.errors import InternalError

        return self._server is None and isinstance(error, InternalError)

    def close(self) -> None:
        """Release the client (the on-disk database is closed when its last client is)."""
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        close = getattr(client, "close", None)
        if callable(close):
            close()


def get_all(collection: Collection, *, include: list[str], where: dict[str, Any] | None = None) -> list[Row]:
    """Every record of `collection` (matching `where`) as `(id, metadata, document)`, page by page."""
    rows: list[Row] = []
    offset = 0
    while True:
        page = collection.get(where=where, include=include, limit=PAGE_SIZE, offset=offset)  # type: ignore[arg-type]
        ids = page["ids"]
        metadatas = page["metadatas"]
        documents = page["documents"]
        for row, record_id in enumerate(ids):
            metadata = dict(metadatas[row] or {}) if metadatas else {}
            rows.append((record_id, metadata, documents[row] if documents else None))
        if len(ids) < PAGE_SIZE:
            return rows
        offset += PAGE_SIZE


def get_embeddings(collection: Collection) -> tuple[list[str], list[Any]]:
    """Every record's id and vector, page by page, in the same order."""
    ids: list[str] = []
    pages: list[Any] = []
    offset = 0
    while True:
        page = collection.get(include=["embeddings"], limit=PAGE_SIZE, offset=offset)  # type: ignore[list-item]
        ids += page["ids"]
        if page["ids"]:
            pages.append(page["embeddings"])
        if len(page["ids"]) < PAGE_SIZE:
            return ids, pages
        offset += PAGE_SIZE


def brief(error: BaseException, limit: int = 200) -> str:
    """An error's text for one log line: a web page someone else's server sent is named, not dumped."""
    text = str(error)
    if "<html" in text.lower() or "<!doctype" in text.lower():
        return "the server answered with a web page, not Chroma's API (is the URL a Chroma server?)"
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_unavailable(error: Exception) -> bool:
    import httpx
    from chromadb.errors import ChromaError, NotFoundError

    if isinstance(error, httpx.HTTPError | OSError):
        return True
    return isinstance(error, ChromaError) and not isinstance(error, NotFoundError)
