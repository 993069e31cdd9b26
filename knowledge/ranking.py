"""Ranking as pure functions: reciprocal rank fusion of the dense and BM25 candidates, then the relevance floor.

Nothing here reads a model, an index or a clock: every function is a function of its arguments,
so the fusion order, ties, coverage, each branch of the floor and the tail rule are table-tested.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

from knowledge.entry import Entry

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class RankingConfig:
    """Fusion and relevance parameters (from Settings); the defaults were tuned with `knowledge eval`."""

    rrf_k: int = 5
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 50  # dense neighbours fetched: their cosines give the question's background
    fuse_depth: int = 30  # ranks of each method fused: enough for every page of an answer
    # The relevance floor. `margin` is a hit's cosine above the question's background (the mean
    # cosine of dense ranks 6-50); `coverage` is the idf-weighted share of the question's words in
    # the hit. A hit is relevant with strong lexical evidence, or a clear dense margin, or a fair
    # margin that BM25 agrees with. Tuned on shared/eval and tests/data/calibration.jsonl.
    coverage_sure: float = 0.45
    margin_sure: float = 0.045
    margin_agree: float = 0.033
    coverage_agree: float = 0.15
    agree_rank: int = 10
    tail_coverage_gap: float = 0.25  # later hits need coverage within this of the best hit's
    # With a refusal model: a question every word of which one top candidate contains is answered whatever
    # the model says ("排序", "目标检测": a one-word question is a keyword search). No out-of-domain
    # training question had such a candidate.
    coverage_answer: float = 0.999


@dataclass(frozen=True)
class DenseHit:
    """An entry found by vector search: its best chunk and that chunk's cosine similarity."""

    entry_id: str
    chunk: int
    score: float


class LexicalEvidence(Protocol):
    """BM25's view of one question: a score per entry (in the entries' order) and word coverage."""

    @property
    def scores(self) -> np.ndarray: ...

    @property
    def query_tokens(self) -> list[str]: ...

    @property
    def weights(self) -> dict[str, float]:
        """Each question token's idf (the highest for tokens the collection never uses)."""
        ...

    def known(self, token: str) -> bool:
        """Whether the collection uses `token` (itself or translated)."""
        ...

    @property
    def max_idf(self) -> float:
        """The idf of a word no entry uses: the refusal signals measure idf in units of it, so that they mean
        the same in a collection of ten entries and in one of ten thousand."""
        ...

    def coverage(self, index: int) -> float:
        """The idf-weighted share of the question's words that entry `index` contains."""
        ...

    def matched(self, index: int) -> set[str]:
        """The question tokens entry `index` contains (itself or translated)."""
        ...


@dataclass(frozen=True)
class Hit:
    """One entry found for a question, with the evidence that ranked it."""

    entry: Entry
    score: float  # the fused score (or the single method's score)
    dense: float | None  # cosine similarity of the entry's best chunk, if it was a dense candidate
    margin: float | None  # that cosine above the question's background cosine
    lexical: float  # BM25 score
    bm25_rank: int | None  # rank among BM25 candidates, if it was one
    coverage: float  # share of the question's word weight that occurs in the entry
    matched_idf: float = 0.0  # the idf of the question's words that occur in the entry, summed
    confident: bool = True  # False: a weak match, shown as "may not be exactly what you asked"


def background(scores: Sequence[float]) -> float:
    """The cosine an unrelated entry gets for this question: the mean below the top five (best first)."""
    if len(scores) >= 12:
        return float(np.mean(scores[5:]))
    if len(scores) >= 2:
        return float(np.mean(scores[1:]))
    return 0.0


def fuse(
    dense_ids: Sequence[str], bm25_ids: Sequence[str], config: RankingConfig, mode: Mode
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of two rankings (best first), best fused score first.

    Ties keep the order in which entries were first met: dense candidates before BM25's.
    """
    fused: dict[str, float] = {}
    if mode in ("hybrid", "dense"):
        weight = config.dense_weight if mode == "hybrid" else 1.0
        for rank, entry_id in enumerate(dense_ids, 1):
            fused[entry_id] = fused.get(entry_id, 0.0) + weight / (config.rrf_k + rank)
    if mode in ("hybrid", "bm25"):
        weight = config.bm25_weight if mode == "hybrid" else 1.0
        for rank, entry_id in enumerate(bm25_ids, 1):
            fused[entry_id] = fused.get(entry_id, 0.0) + weight / (config.rrf_k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def rank(
    entries: Sequence[Entry],
    lexical: LexicalEvidence,
    dense: Mapping[str, DenseHit],
    config: RankingConfig,
    *,
    mode: Mode = "hybrid",
    allowed: np.ndarray | None = None,
    position: Mapping[str, int] | None = None,
) -> list[Hit]:
    """Every candidate of either method as a `Hit`, in fused order.

    `entries` are the loaded entries, `lexical.scores[i]` is entry `i`'s BM25 score, `dense` the
    vector search's candidates by entry id, and `allowed` (when given) masks the entries a filter
    lets through; dense candidates are expected to be filtered already. `position` maps entry ids
    to their index in `entries` (a loaded snapshot keeps one; it is built when not given).
    """
    if position is None:
        position = {entry.id: at for at, entry in enumerate(entries)}
    scores = lexical.scores if allowed is None else np.where(allowed, lexical.scores, 0.0)
    order = np.argsort(-scores, kind="stable")[: config.fuse_depth]
    bm25_ids = [entries[at].id for at in order if scores[at] > 0]
    bm25_rank = {entry_id: at for at, entry_id in enumerate(bm25_ids, 1)}
    ranked = sorted(dense.values(), key=lambda hit: -hit.score)
    floor = background([hit.score for hit in ranked])  # from all dense candidates
    dense_ids = [hit.entry_id for hit in ranked if hit.entry_id in position][: config.fuse_depth]
    hits = []
    for entry_id, score in fuse(dense_ids, bm25_ids, config, mode):
        at = position[entry_id]
        dense_hit = dense.get(entry_id)
        hits.append(
            Hit(
                entry=entries[at],
                score=score,
                dense=dense_hit.score if dense_hit else None,
                margin=dense_hit.score - floor if dense_hit else None,
                lexical=float(lexical.scores[at]) if len(lexical.scores) else 0.0,
                bm25_rank=bm25_rank.get(entry_id),
                coverage=lexical.coverage(at),
                matched_idf=sum(lexical.weights[token] for token in lexical.matched(at)),
            )
        )
    return hits


def is_relevant(hit: Hit, config: RankingConfig) -> bool:
    """Strong lexical evidence, or a clear dense margin, or a fair margin that BM25 agrees with.

    e5 cosines are compressed (an out-of-domain question's best cosine reaches 0.85), so the floor
    uses the margin over the question's own background, not the raw cosine.
    """
    margin = hit.margin if hit.margin is not None else -1.0
    if hit.coverage >= config.coverage_sure or margin >= config.margin_sure:
        return True
    agrees = hit.bm25_rank is not None and hit.bm25_rank <= config.agree_rank
    return agrees and margin >= config.margin_agree and hit.coverage >= config.coverage_agree


def relevant(hits: Sequence[Hit], config: RankingConfig) -> list[Hit]:
    """The hits that clear the relevance floor, in their order; none means a refusal.

    Below the best hits, keep only those nearly as well covered, or clearly close in meaning: a
    question about weight decay in Adam should not list every entry that says "weight".
    """
    kept = [hit for hit in hits if is_relevant(hit, config)]
    if not kept:
        return []
    floor = max(hit.coverage for hit in kept) - config.tail_coverage_gap
    return [
        hit
        for at, hit in enumerate(kept)
        if at == 0 or hit.coverage >= floor or (hit.margin if hit.margin is not None else -1.0) >= config.margin_sure
    ]


# -- the refusal decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signals:
    """What a question's best candidates show: the inputs of the refusal decision."""

    coverage: float  # the best idf-weighted coverage among the top candidates
    margin: float  # the best dense margin over the question's background among them (0: none)
    top_dense: float  # the best dense cosine of all
    bm25: float  # log(1 + the best BM25 score / the collection's highest idf)
    agree: float  # 1 when the dense method's first entry is among BM25's first ten
    known_tokens: float  # log(1 + the question's tokens that the collection uses)
    matched_idf: float  # the most idf of question tokens one top candidate contains / the highest idf
    known_share: float  # the share of the question's tokens that the collection uses
    han: float  # 1 when the question is written in Chinese characters
    names: float  # name-like words of the question (SMOTE, TabNet) that the collection never uses

    def vector(self) -> np.ndarray:
        return np.asarray([getattr(self, name) for name in SIGNALS], dtype=np.float64)


SIGNALS = tuple(Signals.__dataclass_fields__)


def signals(
    hits: Sequence[Hit],
    lexical: LexicalEvidence,
    dense: Mapping[str, DenseHit],
    *,
    han: bool,
    names: int = 0,
    top: int = 5,
) -> Signals:
    """The question-level evidence of the fused `hits` (best first) and the dense candidates; `han` and
    `names` (`knowledge.lexical.unknown_names`) are read from the question itself."""
    best = hits[:top]
    first_dense = max(dense.values(), key=lambda hit: hit.score, default=None)
    bm25_rank = {hit.entry.id: hit.bm25_rank for hit in hits}
    agree_rank = bm25_rank.get(first_dense.entry_id) if first_dense is not None else None
    tokens = lexical.query_tokens
    known = sum(1 for token in tokens if lexical.known(token))
    unit = lexical.max_idf if lexical.max_idf > 0 else 1.0
    return Signals(
        coverage=max((hit.coverage for hit in best), default=0.0),
        margin=max((hit.margin for hit in best if hit.margin is not None), default=0.0),
        top_dense=first_dense.score if first_dense is not None else 0.0,
        bm25=math.log1p(max((hit.lexical for hit in hits), default=0.0) / unit),
        agree=1.0 if agree_rank is not None and agree_rank <= 10 else 0.0,
        known_tokens=math.log1p(known),
        matched_idf=max((hit.matched_idf for hit in best), default=0.0) / unit,
        known_share=known / len(tokens) if tokens else 0.0,
        han=1.0 if han else 0.0,
        names=float(names),
    )


Expand = Literal["linear", "quadratic"]


def expand(x: np.ndarray, how: Expand) -> np.ndarray:
    """The model's inputs from standardised signals: themselves, and for "quadratic" then every product of
    two (squares included), in scikit-learn's `PolynomialFeatures(2, include_bias=False)` order."""
    if how == "linear":
        return x
    pairs = [x[i] * x[j] for i, j in itertools.combinations_with_replacement(range(len(x)), 2)]
    return np.concatenate([x, np.asarray(pairs, dtype=np.float64)])


def expanded_size(signals: int, how: Expand) -> int:
    return signals if how == "linear" else signals + signals * (signals + 1) // 2


@dataclass(frozen=True)
class RefusalModel:
    """A logistic regression over `Signals` (or over them and their pairwise products): the probability that
    the collection answers the question.

    Fitted by `eval/fit_refusal.py` (scikit-learn, cross-validated on the tuning questions) and stored as
    a small JSON file; applying it needs only numpy. Below `refuse_below` the question is refused.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    refuse_below: float
    expand: Expand = "linear"

    def __post_init__(self) -> None:
        if self.features != SIGNALS or not len(self.mean) == len(self.scale) == len(SIGNALS):
            raise ValueError(f"a refusal model needs exactly the signals {SIGNALS}, got {self.features}")
        if self.expand not in ("linear", "quadratic"):
            raise ValueError(f"a refusal model expands its signals linearly or quadratically, not {self.expand!r}")
        if len(self.coef) != (size := expanded_size(len(SIGNALS), self.expand)):
            raise ValueError(f"a {self.expand} refusal model needs {size} coefficients, got {len(self.coef)}")

    def probability(self, evidence: Signals) -> float:
        x = (evidence.vector() - np.asarray(self.mean)) / np.asarray(self.scale)
        z = float(expand(x, self.expand) @ np.asarray(self.coef)) + self.intercept
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    @classmethod
    def from_pipeline(cls, pipeline: Any, refuse_below: float) -> RefusalModel:
        """The model of a fitted scikit-learn pipeline: `StandardScaler`, then optionally
        `PolynomialFeatures(2, include_bias=False)` and a second `StandardScaler`, then `LogisticRegression`.
        The second scaler is folded into the coefficients, so applying the model needs numpy alone."""
        first, regression = pipeline[0], pipeline[-1]
        coef, intercept = np.asarray(regression.coef_[0], dtype=np.float64), float(regression.intercept_[0])
        how: Expand = "linear"
        if len(pipeline) == 4:
            how, second = "quadratic", pipeline[2]
            intercept -= float(np.sum(coef * second.mean_ / second.scale_))
            coef = coef / second.scale_
        return cls(
            features=SIGNALS,
            mean=tuple(float(v) for v in first.mean_),
            scale=tuple(float(v) for v in first.scale_),
            coef=tuple(float(v) for v in coef),
            intercept=intercept,
            refuse_below=refuse_below,
            expand=how,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "expand": self.expand,
            "mean": [round(v, 6) for v in self.mean],
            "scale": [round(v, 6) for v in self.scale],
            "coef": [round(v, 8) for v in self.coef],
            "intercept": round(self.intercept, 8),
            "refuse_below": round(self.refuse_below, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefusalModel:
        return cls(
            features=tuple(data["features"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            coef=tuple(float(v) for v in data["coef"]),
            intercept=float(data["intercept"]),
            refuse_below=float(data["refuse_below"]),
            expand=data.get("expand", "linear"),
        )


def has_evidence(hit: Hit) -> bool:
    """Whether a hit is more than a dense neighbour by default: it shares words with the question, or it
    stands above the question's background cosine."""
    return hit.coverage > 0 or (hit.margin is not None and hit.margin > 0)


def decide(
    hits: list[Hit],
    mode: Mode,
    config: RankingConfig,
    evidence: Signals | None = None,
    model: RefusalModel | None = None,
) -> tuple[list[Hit], bool]:
    """The hits to answer with, and whether that is a refusal.

    The single methods (for evaluation) refuse only when they found nothing. Hybrid search with a
    refusal model refuses when the model says the collection does not answer, unless a top candidate contains
    every word of the question (`coverage_answer`); otherwise it answers with
    the hits that clear the relevance floor (`relevant`), then, marked weak, the others that have some
    evidence (`has_evidence`). Without a model, the floor alone decides, as it did before the model existed.
    """
    if mode != "hybrid":
        return hits, not hits
    if model is None or evidence is None:
        hits = relevant(hits, config)
        return hits, not hits
    if not hits:
        return [], True
    if evidence.coverage < config.coverage_answer and model.probability(evidence) < model.refuse_below:
        return [], True
    sure = relevant(hits, config)
    chosen = {id(hit) for hit in sure}
    weak = [hit for hit in hits if id(hit) not in chosen and has_evidence(hit)]
    return sure + [replace(hit, confident=False) for hit in weak], False
