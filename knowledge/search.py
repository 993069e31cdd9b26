"""A question in, ranked hits out: clean the question, score BM25 while it is embedded, find the dense
neighbours, then rank (`knowledge.ranking`) over the loaded snapshot (`knowledge.live`)."""

from __future__ import annotations

import concurrent.futures
import re
import time
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from knowledge.embed import Embedder
from knowledge.filters import Where
from knowledge.lexical import LexicalScores, unknown_names, with_translations
from knowledge.live import LiveIndex
from knowledge.normalize import has_han, without_escapes
from knowledge.ranking import DenseHit, Hit, Mode, RankingConfig, RefusalModel, Signals, decide, rank, signals
from knowledge.reader import IndexReader

_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]
    refused: bool = False
    truncated: bool = False  # the question was longer than the limit and was cut
    timings: dict[str, float] = field(default_factory=dict)
    signals: Signals | None = None  # what the refusal decision read (hybrid search only)


@dataclass(frozen=True)
class Ranking:
    """A question's candidates in fused order, with the evidence the refusal decision reads."""

    hits: tuple[Hit, ...]
    lexical: LexicalScores
    dense: dict[str, DenseHit]
    timings: dict[str, float]


def question_text(query: str) -> str:
    """What is embedded for a cleaned question: it and the glossary's names in the other language
    (`with_translations`), as for the passages. Every path that embeds a question calls this."""
    return with_translations(query)


def clean_query(text: str, limit: int) -> tuple[str, bool]:
    """NFKC, control and zero-width characters removed, whitespace collapsed, cut to `limit`: (text, was cut)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", without_escapes(text)))
    text = " ".join(text.split())
    if len(text) > limit:
        return text[:limit], True
    return text, False


class Searcher:
    """Answers questions from the live index's snapshot."""

    def __init__(
        self,
        index: LiveIndex,
        reader: IndexReader,
        embedder: Embedder,
        config: RankingConfig,
        *,
        max_question_chars: int,
        refusal: RefusalModel | None = None,
    ) -> None:
        self.index = index
        self.reader = reader
        self.embedder = embedder
        self.config = config
        self.max_question_chars = max_question_chars
        self.refusal = refusal  # None: the relevance floor alone decides
        self._embedding = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-embed")

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        where: Where | None = None,
        vector: np.ndarray | None = None,
    ) -> SearchResult:
        """The best `k` entries for `question`, or a refusal when nothing relevant is in the collection.

        Pass `vector` when the question was embedded elsewhere (the async path embeds off the loop): the
        embedding of `question_text` of the cleaned question, as this method embeds it.
        """
        started = time.perf_counter()
        query, truncated = clean_query(question, self.max_question_chars)
        if not query:
            return SearchResult(question, (), refused=True, truncated=truncated)
        self.index.refresh_soon()
        ranking = self.candidates(query, mode=mode, where=where, vector=vector)
        t = time.perf_counter()
        evidence = None
        if mode == "hybrid":
            names = unknown_names(query, ranking.lexical.known)
            evidence = signals(ranking.hits, ranking.lexical, ranking.dense, han=has_han(query), names=names)
        hits, refused = decide(list(ranking.hits), mode, self.config, evidence, self.refusal)
        timings = ranking.timings
        timings["rank"] += time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        return SearchResult(
            question, tuple(hits[:k]), refused=refused, truncated=truncated, timings=timings, signals=evidence
        )

    def candidates(
        self, query: str, *, mode: Mode = "hybrid", where: Where | None = None, vector: np.ndarray | None = None
    ) -> Ranking:
        """Every candidate for a cleaned `query`, in fused order, before the floor or the refusal decision
        (`search` is this plus `decide`; `eval/tune_fusion.py` scores it alone)."""
        timings: dict[str, float] = {}
        where = where or Where()
        snapshot = self.index.snapshot
        dense: dict[str, DenseHit] = {}
        lexical: LexicalScores | None = None
        if mode != "bm25":
            if vector is None:
                # The embedder runs in C without the GIL: score BM25 meanwhile instead of after it.
                t = time.perf_counter()
                embedding = self._embedding.submit(self.embedder.embed_queries, [question_text(query)])
                lexical = snapshot.lexical.score(query)
                vector = embedding.result()[0]
                timings["embed"] = time.perf_counter() - t
            t = time.perf_counter()
            k_dense = self.config.candidates
            if snapshot.vectors is not None:
                found = snapshot.vectors.nearest(vector, k_dense, snapshot.entries, snapshot.allowed(where))
            else:
                found = self.reader.query(vector, k_dense, where)
                if any(hit.entry_id not in snapshot.position for hit in found):
                    self.index.refresh(force=True)  # the collection changed under us: load the entries it holds
                    snapshot, lexical = self.index.snapshot, None
            dense = {hit.entry_id: hit for hit in found}
            timings["dense"] = time.perf_counter() - t
        t = time.perf_counter()
        lexical = lexical or snapshot.lexical.score(query)
        ranked = rank(
            snapshot.entries,
            lexical,
            dense,
            self.config,
            mode=mode,
            allowed=snapshot.allowed(where),
            position=snapshot.position,
        )
        timings["rank"] = time.perf_counter() - t
        return Ranking(tuple(ranked), lexical, dense, timings)

    def close(self) -> None:
        self._embedding.shutdown(wait=False)
