"""Hybrid search end to end: a small collection written by the test, real Chroma, real embedders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Clock, MakeKb

from knowledge.base import KnowledgeBase
from knowledge.cli import main
from knowledge.embed import DEFAULT_SPEC, Embedder
from knowledge.entry import Entry, SourceRef
from knowledge.evaluate import Question, evaluate, is_hit, load_questions
from knowledge.lexical import (
    TRANSLATIONS_MAX,
    LexicalIndex,
    american,
    expand,
    glossary_translations,
    tokenize,
    unknown_names,
    with_translations,
)
from knowledge.live import REFRESH_SECONDS
from knowledge.ranking import Mode
from knowledge.search import clean_query
from knowledge.settings import Settings

QUESTIONS = [
    ("哪篇论文修正了 Adam 的 weight decay?", "1711.05101"),
    ("Which paper fixes weight decay in Adam?", "1711.05101"),
    ("何恺明 动量对比 无监督", "1911.05722"),
    ("contrastive learning with data augmentation", "2002.05709"),
    ("position bias in click-through rate prediction", "example.com/pal"),
    ("attention only transformer without recurrence", "1706.03762"),
    ("如何看待非自回归的机器翻译", "example.com/nat"),
]
OUT_OF_DOMAIN = ["How do I bake sourdough bread at home?", "今天北京的天气怎么样", "best pizza place in New York"]


@pytest.fixture(scope="module")
def notes(small_notes: Path) -> Path:
    return small_notes


def search_entries(kb: KnowledgeBase, question: str, k: int, *, mode: Mode = "hybrid") -> list[Entry]:
    return [hit.entry for hit in kb.search(question, k, mode=mode).hits]


@pytest.mark.parametrize(("question", "url"), QUESTIONS)
def test_questions_in_either_language_find_their_entry(kb: KnowledgeBase, question: str, url: str) -> None:
    result = kb.search(question)
    assert not result.refused
    assert url in result.hits[0].entry.primary_link.url  # type: ignore[union-attr]


@pytest.mark.parametrize("question", OUT_OF_DOMAIN)
def test_out_of_domain_questions_are_refused(kb: KnowledgeBase, question: str) -> None:
    result = kb.search(question)
    assert result.refused
    assert result.hits == ()


@pytest.mark.parametrize("question", ["", "   ", "\u200b\u200e", "\x00\x01"])
def test_empty_questions_are_refused_without_searching(kb: KnowledgeBase, question: str) -> None:
    result = kb.search(question)
    assert result.refused and result.timings == {}


def test_a_huge_question_is_cut_and_still_answered(kb: KnowledgeBase) -> None:
    question = "Which paper fixes weight decay in Adam? " + "padding " * 20_000
    result = kb.search(question)
    assert result.truncated
    assert "1711.05101" in result.hits[0].entry.primary_link.url  # type: ignore[union-attr]
    limit = kb.settings.max_question_chars
    assert clean_query(question, limit)[0] == clean_query(question[:limit], limit)[0].strip()


def test_filters_by_language_and_section(kb: KnowledgeBase) -> None:
    english = kb.search("transformer attention", lang="en")
    assert english.hits and all(hit.entry.lang == "en" for hit in english.hits)
    recall = kb.search("召回", section=("推荐", "召回"), k=10)
    assert {hit.entry.title for hit in recall.hits} <= {
        "深度检索：字节跳动提出可学习的召回结构",
        "双塔模型的采样偏差修正",
    }
    assert recall.hits
    assert kb.search("Adam weight decay", section=("推荐",)).refused


def test_modes_rank_with_one_method_each(kb: KnowledgeBase) -> None:
    for mode in ("dense", "bm25"):
        hits = search_entries(kb, "Adam weight decay regularization", 3, mode=mode)
        assert "1711.05101" in hits[0].primary_link.url  # type: ignore[union-attr]


def test_search_through_minilm(make_kb: MakeKb, notes: Path, tmp_path: Path, minilm_embedder: Embedder) -> None:
    base = make_kb([notes], tmp_path, embedder=minilm_embedder, settings_cls=Settings)
    try:
        base.ingest()
        result = base.search("attention only transformer without recurrence")
        assert "1706.03762" in result.hits[0].entry.primary_link.url  # type: ignore[union-attr]
        assert base.stats().embedder == minilm_embedder.name
    finally:
        base.close()


def test_another_writer_s_ingest_is_picked_up(make_kb: MakeKb, notes: Path, tmp_path: Path) -> None:
    clock = Clock()
    reader = make_kb([notes], tmp_path, settings_cls=Settings, clock=clock)
    writer = make_kb([notes], tmp_path, settings_cls=Settings)
    try:
        writer.ingest()
        assert reader.search("Adam weight decay").hits
        extra = tmp_path / "extra.md"
        extra.write_text(
            "# 新\n\n- [Lookahead Optimizer: k steps forward, 1 step back](https://x.example/la)\n", "utf-8"
        )
        writer.ingest([notes, extra])
        clock.advance(REFRESH_SECONDS)  # the periodic check is due: the next question starts it
        deadline = time.monotonic() + 10
        while not (hits := reader.search("lookahead optimizer k steps forward").hits) or hits[0].entry.title != (
            "Lookahead Optimizer: k steps forward, 1 step back"
        ):
            assert time.monotonic() < deadline, "the other writer's ingest was not picked up in the background"
            time.sleep(0.05)
    finally:
        reader.close()
        writer.close()


def test_dense_search_in_memory_agrees_with_chroma(make_kb: MakeKb, notes: Path, tmp_path: Path) -> None:
    """The exact search over the vectors loaded in memory ranks and scores as Chroma's index does,
    with filters, and with an entry long enough to be stored as several chunks."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.md").write_text((notes / "notes.md").read_text("utf-8"), "utf-8")
    paragraphs = [f"第 {i} 段：关于混合专家路由与负载均衡损失的笔记。" + "细节" * 200 for i in range(4)]
    (tmp_path / "notes" / "long.md").write_text(
        "# 长文\n\n## Mixture-of-Experts notes\n\n" + "\n\n".join(paragraphs) + "\n", "utf-8"
    )
    memory = make_kb([tmp_path / "notes"], tmp_path / "data", settings_cls=Settings)
    chroma = make_kb([tmp_path / "notes"], tmp_path / "data", settings_cls=Settings, memory_vectors=0)
    try:
        memory.ingest()
        chroma.index.refresh(force=True)
        stats = memory.stats()
        assert stats.records > stats.entries  # the long entry has several chunks
        assert memory.health().answerable_offline == stats.entries
        assert chroma.health().answerable_offline == 0  # this one asks Chroma
        cases = [(question, {}) for question, _ in QUESTIONS] + [
            ("混合专家的负载均衡", {}),
            ("transformer attention", {"lang": "en"}),
            ("召回", {"section": ("推荐",)}),
            ("对比学习", {"lang": "zh-Hans", "section": ("深度学习",)}),
        ]
        for question, where in cases:
            for mode in ("dense", "hybrid"):
                ours = memory.search(question, 10, mode=mode, **where)  # type: ignore[arg-type]
                theirs = chroma.search(question, 10, mode=mode, **where)  # type: ignore[arg-type]
                assert [hit.entry.id for hit in ours.hits] == [hit.entry.id for hit in theirs.hits], (question, mode)
                for a, b in zip(ours.hits, theirs.hits, strict=True):
                    assert a.dense == pytest.approx(b.dense, abs=1e-4)
                    assert a.margin == pytest.approx(b.margin, abs=1e-4)
                assert ours.refused == theirs.refused
            assert memory.search(question, 10, mode="dense", **where).hits  # type: ignore[arg-type]
        # the long entry appears once, scored by its best chunk
        hits = memory.search("混合专家的负载均衡", 20, mode="dense").hits
        assert sum(hit.entry.title == "Mixture-of-Experts notes" for hit in hits) == 1
    finally:
        memory.close()
        chroma.close()


# -- evaluation ------------------------------------------------------------------------------------


def _entry(title: str, body: str = "") -> Entry:
    return Entry(
        id=title,
        title=title,
        body=body,
        source=SourceRef(file="t.md", line_start=1, line_end=1, format="markdown"),
        lang="en",
    )


def test_eval_metrics_on_known_answers() -> None:
    a, b, c = _entry("Alpha paper"), _entry("Beta paper", "about beta 150 个 ML 模型"), _entry("Gamma")
    answers = {"qa": [a, b], "qb": [c, a, b], "qc": [c], "qn": [], "qm": [a]}
    questions = [
        Question(id="1", lang="en", query="qa", expect_any=("alpha PAPER",)),  # rank 1
        Question(id="2", lang="zh", query="qb", expect_any=("150个ML模型",)),  # rank 3, spaces ignored
        Question(id="3", lang="en", query="qc", expect_any=("delta",)),  # missed
        Question(id="4", lang="en", query="qn", expect_any=("alpha",)),  # refused: a false refusal
        Question(id="5", lang="en", query="qn", expect_none=True),  # refused: right
        Question(id="6", lang="en", query="qm", expect_none=True),  # answered: wrong
    ]
    report = evaluate(questions, lambda query, k: answers[query][:k], k=10)
    assert report.recall["all"] == {1: 0.25, 5: 0.5, 10: 0.5}
    assert report.recall["en"] == {1: 1 / 3, 5: 1 / 3, 10: 1 / 3}
    assert report.recall["zh"] == {1: 0.0, 5: 1.0, 10: 1.0}
    assert report.mrr10 == pytest.approx((1 + 1 / 3) / 4)
    assert report.refusal_rate == 0.5
    assert report.false_refusal_rate == 0.25
    assert is_hit(b, ["150 个 ml 模型"])


def test_eval_reports_each_kind_and_language_pair() -> None:
    a, b = _entry("Alpha paper"), _entry("Beta paper")
    answers = {"first": [a], "late": [b, b, b, b, b, a], "none": [], "noise": [b]}
    questions = [
        Question(id="1", query="first", expect_any=("alpha",), kind="descriptive", pair="en->zh"),
        Question(id="2", query="late", expect_any=("alpha",), kind="descriptive", pair="zh->en"),  # rank 6
        Question(id="3", query="none", expect_any=("alpha",), kind="keyword", pair="en->zh"),  # refused
        Question(id="4", query="none", expect_none=True, kind="ood-everyday"),
        Question(id="5", query="noise", expect_none=True, kind="ood-everyday"),
        Question(id="6", query="first", expect_any=("alpha",)),  # no kind, no pair: in no group
        Question(id="7", query="first", expect_any=("alpha",), kind="descriptive", pair="zh-tw->zh"),  # not crossing
    ]
    report = evaluate(questions, lambda query, k: answers[query][:k], k=10)
    groups = {name: group.as_dict() for name, group in report.groups.items()}
    assert groups == {
        "kind:descriptive": {"questions": 3, "recall@5": 0.6667, "false_refusals": 0},
        "kind:descriptive cross-lingual": {"questions": 2, "recall@5": 0.5, "false_refusals": 0},
        "kind:keyword": {"questions": 1, "recall@5": 0.0, "false_refusals": 1},
        "kind:keyword cross-lingual": {"questions": 1, "recall@5": 0.0, "false_refusals": 1},
        "kind:ood-everyday": {"out_of_domain": 2, "refused": 1},
        "pair:en->zh": {"questions": 2, "recall@5": 0.5, "false_refusals": 1},
        "pair:zh->en": {"questions": 1, "recall@5": 0.0, "false_refusals": 0},
        "pair:zh-tw->zh": {"questions": 1, "recall@5": 1.0, "false_refusals": 0},
    }
    assert report.as_dict()["groups"] == groups


def test_eval_end_to_end_on_the_small_collection(kb: KnowledgeBase, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": f"q{i}", "lang": "x", "query": q, "expect_any": [u]}) for i, (q, u) in enumerate(QUESTIONS)
    ]
    lines += [json.dumps({"id": f"n{i}", "query": q, "expect_none": True}) for i, q in enumerate(OUT_OF_DOMAIN)]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = evaluate(load_questions(path), lambda q, k: search_entries(kb, q, k))
    assert report.recall["all"][1] == 1.0
    assert report.mrr10 == 1.0
    assert report.refusal_rate == 1.0
    assert report.false_refusal_rate == 0.0


def test_a_malformed_question_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "query": "x", "expect_any": ["y"]}\n{"id": "b", "query": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_questions(path)


# -- lexical -----------------------------------------------------------------------------------------


def test_tokens_are_simplified_lower_case_stemmed_and_without_stopwords() -> None:
    assert tokenize("如何看待非自回歸的機器翻譯") == tokenize("如何看待非自回归的机器翻译")
    assert "interpol" in tokenize("interpolating") and "the" not in tokenize("the paper")
    assert "哪篇" not in tokenize("哪篇论文修正了 Adam")


@pytest.mark.parametrize(
    ("british", "us"),
    [
        ("generalises", "generalizes"),
        ("regularisation", "regularization"),
        ("optimiser", "optimizer"),
        ("tokenised", "tokenized"),
        ("criticise", "criticize"),
        ("analyse", "analyze"),
        ("behaviour", "behavior"),
        ("neighbours", "neighbors"),
        ("standardised", "standardized"),
        ("modernising", "modernizing"),
        ("symbolises", "symbolizes"),
        ("parallelise", "parallelize"),
        ("crystallisation", "crystallization"),
    ],
)
def test_british_spellings_meet_american_ones(british: str, us: str) -> None:
    assert tokenize(british) == tokenize(us)


@pytest.mark.parametrize(
    ("word", "relative"),
    [
        ("supervised", "supervision"),  # -ise words outside the -ize verbs keep meeting their family
        ("precise", "precision"),
        ("revised", "revision"),
        ("promised", "promise"),
        ("merchandise", "merchandising"),
        ("premise", "premises"),
    ],
)
def test_words_that_only_look_british_keep_their_stems(word: str, relative: str) -> None:
    assert tokenize(word) == tokenize(relative)
    assert american(word) == word


def test_glossary_bridges_languages() -> None:
    alternatives = expand(tokenize("hyperparameter optimization framework")).alternatives
    assert "超参" in alternatives["hyperparamet"] and "框架" in alternatives["framework"]
    chinese = expand(tokenize("对比学习"))
    assert "contrast" in chinese.alternatives["对比学习"]
    assert "learn" not in chinese.alternatives["学习"]  # a generic piece of a phrase is no match alone
    assert {"machin", "translat"} <= expand(tokenize("机器翻译")).extra


def test_a_rebuild_tokenizes_only_the_entries_that_changed() -> None:
    """After a sync changes one entry, the new BM25 index reuses the others' token lists (the same objects) and
    scores exactly like an index built from scratch."""
    entries = [_entry("对比学习综述", "SimCLR MoCo"), _entry("Decoupled weight decay", "Adam")]
    first = LexicalIndex.build(entries)
    changed = [entries[0], entries[1].model_copy(update={"body": "AdamW fixes weight decay in Adam"})]
    rebuilt = LexicalIndex.build(changed, previous=first)
    assert rebuilt.documents[0] is first.documents[0]
    assert rebuilt.documents[1] is not first.documents[1] and "adamw" in rebuilt.documents[1]
    fresh = LexicalIndex.build(changed)
    assert rebuilt.documents == fresh.documents
    assert rebuilt.score("AdamW weight decay").scores.tolist() == fresh.score("AdamW weight decay").scores.tolist()


def test_a_word_the_collection_has_only_in_translation_is_known() -> None:
    """An English question about a Chinese collection: "click-through rate" is known through 点击率, while a
    word in neither language is not (the refusal decision reads how much of a question the collection knows)."""
    scores = LexicalIndex.build([_entry("消除点击率预估中的位置偏置")]).score("click-through rate sourdough")
    assert scores.known("click") and scores.coverage(0) > 0
    assert not scores.known("sourdough")


@pytest.mark.parametrize(
    ("question", "count"),
    [
        ("Does TabNet beat XGBoost on tabular data?", 2),  # mixed case, capitals
        ("BERT 和 SMOTE 哪个更适合不平衡数据", 1),  # BERT is in the collection
        ("SMOTE or smote, SMOTE again", 1),  # each name once; "smote" in lower case is not written as a name
        ("How does GPT-4V read images?", 0),  # GPT is known: a new version of a known name is not unknown
        ("How does OpenAI o1 reason?", 2),  # a digit makes a name
        ("An Adam optimizer question", 0),  # one capital is an ordinary word at the start of a sentence
        ("ResNet 的残差连接", 0),  # known through the collection's own word
        ("什么是对比学习", 0),  # Chinese words are not names
    ],
)
def test_unknown_names_count_name_like_words_the_collection_never_uses(question: str, count: int) -> None:
    vocabulary = set(tokenize("BERT GPT-2 ResNet resnet 对比学习"))
    assert unknown_names(question, vocabulary.__contains__) == count


@pytest.mark.parametrize(
    ("text", "added"),
    [
        ("哪篇论文修正了 Adam 的 weight decay?", ["paper", "权重衰减"]),  # in the order the text names them
        ("contrastive learning papers", ["对比学习"]),
        ("对比学习 contrastive learning", []),  # named in both languages: nothing to add
        ("華人博士: 神經網路", ["neural network"]),  # Traditional Chinese is read as Simplified
        ("CONTRASTIVE Learning", ["对比学习"]),  # any case
        ("contrastively trained", []),  # whole words only
        ("", []),
    ],
)
def test_glossary_translations_name_each_notion_in_the_language_the_text_lacks(text: str, added: list[str]) -> None:
    assert glossary_translations(text) == added


def test_warm_up_builds_the_glossary_tables_the_first_question_would_otherwise_build() -> None:
    from knowledge import lexical

    built = (lexical._translations, lexical._expansions, lexical._expansions_by_first_token)
    for table in built:
        table.cache_clear()
    lexical.warm_up()
    assert [table.cache_info().currsize for table in built] == [1, 1, 1]
    assert [table.cache_info().misses for table in built] == [1, 1, 1]
    expand(tokenize("对比学习"))
    glossary_translations("对比学习")
    assert [table.cache_info().misses for table in built] == [1, 1, 1]  # the question built nothing


def test_with_translations_adds_one_line_and_caps_it() -> None:
    assert with_translations("对比学习") == "对比学习\ncontrastive learning"
    assert with_translations("sourdough bread") == "sourdough bread"  # no notion of the glossary
    many = " ".join(
        [
            "对比学习",
            "强化学习",
            "迁移学习",
            "元学习",
            "小样本",
            "零样本",
            "主动学习",
            "深度学习",
            "机器学习",
            "神经网络",
            "监督学习",
            "无监督",
            "半监督",
            "自监督",
            "弱监督",
            "多任务",
            "知识蒸馏",
            "剪枝",
        ]
    )
    assert len(glossary_translations(many)) == TRANSLATIONS_MAX


def test_bm25_index_is_persisted_and_rebuilt_when_entries_change(tmp_path: Path) -> None:
    entries = [_entry("Alpha paper about graphs"), _entry("Beta paper about images")]
    path = tmp_path / "bm25.json"
    first = LexicalIndex.load_or_build(path, entries)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["ids"] == ["Alpha paper about graphs", "Beta paper about images"]
    path.write_text(json.dumps({**saved, "documents": [["marker"], ["other"]]}), encoding="utf-8")
    reused = LexicalIndex.load_or_build(path, entries)
    assert reused.documents == [["marker"], ["other"]]  # same fingerprint: loaded, not rebuilt
    changed = LexicalIndex.load_or_build(path, [*entries, _entry("Gamma")])
    assert len(changed.documents) == 3 and changed.documents != first.documents


@pytest.mark.parametrize(
    "damage",
    [
        lambda saved: {**saved, "ids": saved["ids"][:1], "documents": saved["documents"][:1]},  # an entry short
        lambda saved: {**saved, "ids": saved["ids"][::-1]},  # the entries' order changed
        lambda saved: {**saved, "documents": [["ok"], 7]},
        lambda saved: {**saved, "documents": "tokens"},
    ],
    ids=["entry missing", "reordered", "document not a list", "documents not a list"],
)
def test_a_bm25_cache_altered_under_its_fingerprint_is_rebuilt(
    tmp_path: Path, damage: Callable[[dict[str, object]], dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    entries = [_entry("Alpha paper about graphs"), _entry("Beta paper about images")]
    path = tmp_path / "bm25.json"
    LexicalIndex.load_or_build(path, entries)
    saved = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(damage(saved)), encoding="utf-8")
    with caplog.at_level("WARNING"):
        index = LexicalIndex.load_or_build(path, entries)
    assert index.ids == [entry.id for entry in entries] and len(index.documents) == 2
    assert "rebuilding it" in caplog.text
    assert json.loads(path.read_text(encoding="utf-8")) == saved  # the cache is good again


def test_a_damaged_bm25_cache_does_not_break_questions(make_kb: MakeKb, notes: Path, tmp_path: Path) -> None:
    first = make_kb([notes], tmp_path, settings_cls=Settings)
    collection = first.ingest().summary.collection
    first.close()
    cache = tmp_path / f"bm25-{collection}.json"
    saved = json.loads(cache.read_text(encoding="utf-8"))
    cache.write_text(json.dumps({**saved, "ids": saved["ids"][:3], "documents": saved["documents"][:3]}), "utf-8")
    second = make_kb([notes], tmp_path, settings_cls=Settings)
    hits = second.search("Which paper fixes weight decay in Adam?").hits
    assert hits[0].entry.title == "Fixing Weight Decay Regularization in Adam"
    assert len(json.loads(cache.read_text(encoding="utf-8"))["ids"]) == 10


# -- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KB_SOURCES", str(notes))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_searching_before_any_ingest_says_there_is_no_index(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "Which paper fixes weight decay in Adam?"]) == 1
    captured = capsys.readouterr()
    assert f"no index of {DEFAULT_SPEC}" in captured.err and "run `kb ingest`" in captured.err
    assert "Nothing in the collection matches" not in captured.out


@pytest.mark.parametrize("k", ["0", "-3", "two"])
def test_a_result_count_below_one_is_refused(cli_env: Path, k: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["search", "anything", "-k", k])
    assert exited.value.code == 2 and "argument -k" in capsys.readouterr().err


@pytest.mark.parametrize("question", ["", "   ", "？？？", "\u200b\u202e"])
def test_an_empty_question_is_a_usage_error_not_a_refusal(
    cli_env: Path, question: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was answered 'Nothing in the collection matches that question', as if something had been searched."""
    assert main(["search", question]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: the question is empty: give some words to search for\n" and captured.out == ""


def test_cli_ingest_search_and_batch(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("entries", "embedded", "unchanged", "removed")} == {
        "entries": 10,
        "embedded": 10,
        "unchanged": 0,
        "removed": 0,
    }
    assert isinstance(summary["seconds"], float)
    assert main(["ingest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 0

    assert main(["search", "Which paper fixes weight decay in Adam?", "--json", "-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert set(hits[0]) == {
        "id",
        "title",
        "alt_titles",
        "summary",
        "body",
        "links",
        "section_path",
        "source",
        "lang",
        "location",
        "score",
        "match",
    }
    assert hits[0]["title"] == "Fixing Weight Decay Regularization in Adam"
    assert hits[0]["links"][0] == {
        "url": "https://arxiv.org/abs/1711.05101",
        "text": hits[0]["title"],
        "role": "primary",
    }

    batch = cli_env / "questions.txt"
    batch.write_text(
        "Which paper fixes weight decay in Adam?\nHow do I bake sourdough bread at home?\n何恺明 动量对比\n"
    )
    assert main(["search", "--batch", str(batch)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    assert rows[0][0]["title"].startswith("Fixing Weight Decay")
    assert rows[1] == []
    assert rows[2][0]["title"].startswith("Momentum Contrast")

    assert main(["search", "best pizza place in New York"]) == 0
    assert "Nothing in the collection matches" in capsys.readouterr().out


def test_cli_eval_compare_json(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = cli_env / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "lang": "en", "query": "attention only transformer", "expect_any": ["1706.03762"]})
        + "\n"
        + json.dumps({"id": "n", "lang": "en", "query": "best pizza place in New York", "expect_none": True})
        + "\n",
        encoding="utf-8",
    )
    assert main(["ingest"]) == 0
    capsys.readouterr()
    assert main(["eval", str(questions), "--compare", "--json"]) == 0
    reports = {r["method"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(reports) == {"hybrid", "dense", "bm25"}
    assert reports["hybrid"]["recall"]["all"]["@1"] == 1.0
    assert reports["hybrid"]["refusal_rate"] == 1.0
    assert reports["dense"]["refusal_rate"] == 0.0  # a single method never refuses: that is the floor's job


def test_prompt_ingests_then_answers_piped_questions(cli_env: Path) -> None:
    env = {**os.environ, "KB_SOURCES": os.environ["KB_SOURCES"], "KB_DATA_DIR": os.environ["KB_DATA_DIR"]}
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", "prompt"],
        input="Which paper fixes weight decay in Adam?\n今天北京的天气怎么样\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert "index ready: 10 entries" in done.stdout
    assert "Fixing Weight Decay Regularization in Adam" in done.stdout
    assert "https://arxiv.org/abs/1711.05101" in done.stdout
    assert "Nothing in the collection matches" in done.stdout


def test_deleting_a_source_file_removes_its_entries(make_kb: MakeKb, notes: Path, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.md").write_text((notes / "notes.md").read_text(encoding="utf-8"), encoding="utf-8")
    extra = folder / "extra.md"
    extra.write_text("# 新\n\n- [Lookahead Optimizer: k steps forward, 1 step back](https://x.example/la)\n", "utf-8")
    base = make_kb([folder], tmp_path / "data", settings_cls=Settings)
    try:
        assert base.ingest().summary.entries == 11
        assert base.search("lookahead optimizer k steps forward").hits[0].entry.title.startswith("Lookahead")
        extra.unlink()
        report = base.ingest()
        assert (report.summary.removed, report.summary.embedded, report.summary.entries) == (1, 0, 10)
        hits = base.search("lookahead optimizer k steps forward").hits
        assert all(not hit.entry.title.startswith("Lookahead") for hit in hits)
    finally:
        base.close()


def test_the_command_lines_keep_chatty_libraries_quiet_even_when_one_turns_its_own_logger_up() -> None:
    script = (
        "import logging\n"
        "from knowledge.logs import configure_logging\n"
        "configure_logging(False)\n"
        "logging.getLogger('bm25s').setLevel(logging.DEBUG)  # as `import bm25s` does\n"
        "logging.getLogger('bm25s').debug('building the index')\n"
        "logging.getLogger('bm25s.tokenization').info('tokenizing')\n"
        "logging.getLogger('bm25s').warning('a real problem')\n"
        "logging.getLogger('knowledge.writer').info('ingest done')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING bm25s: a real problem",
        "INFO knowledge.writer: ingest done",
    ]


def test_cli_errors_in_what_it_is_given_are_one_line_and_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest"]) == 0
    capsys.readouterr()
    not_utf8 = cli_env / "gbk.txt"
    not_utf8.write_bytes("召回".encode("gbk"))
    for args, says in (
        (["search", "召回", "--section", "天文学"], "error: --section: no section of the collection matches '天文学'"),
        (["search", "--batch", str(cli_env / "none.txt")], "error: --batch: cannot read"),
        (["search", "--batch", str(cli_env)], "error: --batch: cannot read"),
        (["search", "--batch", str(not_utf8)], "not valid UTF-8 (byte 0)"),
        (["eval", str(cli_env / "none.jsonl")], "error: cannot read the questions in"),
        (["eval", str(not_utf8)], "error: cannot read the questions in"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        (line,) = [line for line in err.splitlines() if line.startswith("error:")]  # (the model's progress aside)
        assert says in line and "Traceback" not in err, (args, err)
    # a section named as in: names it (part of its name)
    assert main(["search", "召回", "--section", "召回", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(hit["section_path"][:2] == ["推荐", "召回"] for hit in hits)


def test_cli_results_show_the_other_title_and_where_an_entry_without_links_is() -> None:
    import io

    from rich.console import Console

    from knowledge.cli import print_result
    from knowledge.ranking import Hit
    from knowledge.search import SearchResult

    source = SourceRef(file="notes.md", line_start=3, line_end=4, format="markdown")
    entry = Entry(
        id="e1",
        title="权重无关神经网络",
        alt_titles=("Weight Agnostic Neural Networks",),
        source=source,
        section_path=("深度学习", "架构"),
        lang="zh-Hans",
    )
    hit = Hit(entry, 1.0, 0.9, 0.1, 2.0, 1, 1.0)
    out = io.StringIO()
    print_result(SearchResult("weight agnostic", (hit,)), Console(file=out, width=60))
    shown = out.getvalue()
    assert "1. 权重无关神经网络" in shown and "Weight Agnostic Neural Networks" in shown
    assert "in the collection: notes.md › 深度学习 › 架构" in shown
    # an entry's text never steers the terminal: a bidi override or an escape in a title is not printed
    hostile = entry.model_copy(update={"title": "\u202e权重\x1b[2J无关", "alt_titles": ("\x1b]8;;x\x07Weight",)})
    out = io.StringIO()
    print_result(
        SearchResult("weight agnostic", (Hit(hostile, 1.0, 0.9, 0.1, 2.0, 1, 1.0),)), Console(file=out, width=60)
    )
    shown = out.getvalue()
    assert "1. 权重无关" in shown and "   Weight" in shown
    assert not {"\u202e", "\x1b"} & set(shown)


def test_cli_sync_says_which_files_it_could_not_read_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\n- [A paper](https://a.example/p) 摘要\n", encoding="utf-8")
    (notes / "b.md").write_bytes("# 乙\n\n- [乙](https://b.example/p)\n".encode("gbk"))
    monkeypatch.setenv("KB_SOURCES", str(notes))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    assert main(["sync"]) == 1  # as ingest says: not every source could be read
    assert "skipped b.md: not valid UTF-8" in capsys.readouterr().err
