"""The Chroma index of one embedder: a writer and a reader over one client.

The layout is described where each part lives: records in `knowledge.records`, collections and
the pointer in `knowledge.generations`, the write path in `knowledge.writer`, the read path in
`knowledge.reader`. The same layout serves the on-disk client and a `chroma run` server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from knowledge.chroma import DEFAULT_TIMEOUT, ChromaClient
from knowledge.embed import Embedder
from knowledge.generations import Generations
from knowledge.reader import IndexReader
from knowledge.records import PassageText, default_passage_text
from knowledge.upsert import UPSERT_BATCH
from knowledge.writer import IndexWriter


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
        chroma_timeout: float = DEFAULT_TIMEOUT,
        passage_text: PassageText = default_passage_text,
        batch_size: int = UPSERT_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = ChromaClient(data_dir, chroma_url, timeout=chroma_timeout)
        self.generations = Generations(self.client, embedder.name, embedder.dim, clock=clock)
        self.reader = IndexReader(self.generations)
        self.writer = IndexWriter(
            self.generations,
            embedder,
            Path(data_dir) / "ingest.lock",
            passage_text=passage_text,
            batch_size=batch_size,
        )
        # the two paths, for callers that hold the store
        self.ingest = self.writer.ingest
        self.query = self.reader.query
        self.load = self.reader.load
        self.stats = self.reader.stats
        self.version = self.reader.version

    def close(self) -> None:
        self.client.close()
